"""The GNOME Shell extension parses, declares itself properly, and uses only the contract."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest
from dbus_fast.introspection import Node
from harness import ROOT

EXTENSION = ROOT / "data" / "gnome-shell-extension"
CONTRACT = ROOT / "data" / "org.v2m.Dictation.xml"
SOURCE = (EXTENSION / "extension.js").read_text()


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_extension_is_a_valid_es_module(tmp_path):
    module = tmp_path / "extension.mjs"
    module.write_text(SOURCE)
    proc = subprocess.run(["node", "--check", str(module)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_metadata_declares_uuid_and_supported_shells():
    meta = json.loads((EXTENSION / "metadata.json").read_text())
    assert meta["uuid"] == "v2m@v2m.org"
    assert {"45", "46", "47", "48"} <= set(meta["shell-version"])
    assert meta["name"] and meta["description"]


def test_every_bus_member_the_extension_uses_is_in_the_contract():
    (iface,) = Node.parse(CONTRACT.read_text()).interfaces
    members = {m.name for m in iface.methods} | {s.name for s in iface.signals}
    members |= {p.name for p in iface.properties}
    used = set(re.findall(r"connectSignal\('(\w+)'", SOURCE))
    used |= set(re.findall(r"INTERFACE, '(\w+)'", SOURCE))
    used |= set(re.findall(r"_proxy\??\.([A-Z]\w*)", SOURCE))
    assert used == {"TranscriptionUpdated", "Toggle", "State"}
    assert used <= members
    assert f"const INTERFACE = '{iface.name}';" in SOURCE


def test_there_is_an_icon_for_every_documented_state():
    documented = re.search(r"<!-- State: ([^.]+)\. -->", CONTRACT.read_text()).group(1)
    states = set(re.split(r", | or ", documented))
    icons = re.search(r"const ICONS = \{(.*?)\};", SOURCE, re.S).group(1)
    assert set(re.findall(r"^\s*(\w+): '[\w-]+-symbolic',$", icons, re.M)) == states


def test_every_proxy_connection_is_kept_and_released_on_destroy():
    connects = re.findall(r"^\s*(.*)proxy\.(connect|connectSignal)\(", SOURCE, re.M)
    assert connects, "the extension connects to the proxy"
    kept = {"connect": "this._handlerIds.push(", "connectSignal": "this._signalIds.push("}
    for prefix, method in connects:
        assert prefix == kept[method], f"proxy.{method} result not kept: {prefix!r}"
    on_destroy = SOURCE[SOURCE.index("_onDestroy() {") :]
    assert "this._handlerIds.forEach(id => this._proxy.disconnect(id))" in on_destroy
    assert "this._signalIds.forEach(id => this._proxy.disconnectSignal(id))" in on_destroy
    assert "this._cancellable.cancel()" in on_destroy
