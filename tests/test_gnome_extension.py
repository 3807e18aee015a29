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


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_extension_is_a_valid_es_module(tmp_path):
    module = tmp_path / "extension.mjs"
    module.write_text((EXTENSION / "extension.js").read_text())
    proc = subprocess.run(["node", "--check", str(module)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_metadata_declares_uuid_and_supported_shells():
    meta = json.loads((EXTENSION / "metadata.json").read_text())
    assert meta["uuid"] == "v2m@v2m.org"
    assert {"45", "46", "47", "48"} <= set(meta["shell-version"])
    assert meta["name"] and meta["description"]


def test_every_bus_member_the_extension_uses_is_in_the_contract():
    source = (EXTENSION / "extension.js").read_text()
    (iface,) = Node.parse(CONTRACT.read_text()).interfaces
    members = {m.name for m in iface.methods} | {s.name for s in iface.signals}
    members |= {p.name for p in iface.properties}
    used = set(re.findall(r"connectSignal\('(\w+)'", source))
    used |= set(re.findall(r"'org\.v2m\.Dictation', '(\w+)'", source))
    used |= set(re.findall(r"_proxy\?\.([A-Z]\w*)", source))
    assert used == {"TranscriptionUpdated", "Toggle", "State"}
    assert used <= members
