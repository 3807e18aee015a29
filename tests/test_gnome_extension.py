"""The GNOME Shell extension: valid modules, proper metadata, only contract members, and its
D-Bus client run under gjs against a dbusmock daemon."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import pytest
from dbus_fast import Message, MessageType, Variant
from dbus_fast.aio import MessageBus
from dbus_fast.introspection import Node
from harness import ROOT, dbusmock

EXTENSION = ROOT / "data" / "gnome-shell-extension"
CONTRACT = ROOT / "v2md" / "data" / "org.v2m.Dictation.xml"
BUS_NAME = "org.v2m.Dictation"
SOURCE = "\n".join((EXTENSION / name).read_text() for name in ("dictation.js", "extension.js"))


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
@pytest.mark.parametrize("name", ["extension.js", "dictation.js"])
def test_module_is_valid_es_module_syntax(tmp_path, name):
    module = tmp_path / name.replace(".js", ".mjs")
    module.write_text((EXTENSION / name).read_text())
    proc = subprocess.run(["node", "--check", str(module)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


# What the extension uses (PanelMenu.Button, PopupMenuItem and setSensitive, St.Icon,
# Main.notifyError, Main.panel.addToStatusArea, Extension.uuid) was read at the 45.0 to 50.4
# tags of gnome-shell: unchanged. 51 is not out.
SHELLS = ["45", "46", "47", "48", "49", "50"]
# What gjs.guide's "Port Extensions to GNOME Shell 49" and "... 50" list as removed, as it
# would be spelled here; an extension using one fails on the shells that removed it.
REMOVED = {
    "Meta.Rectangle": "49",
    "Clutter.ClickAction": "49",
    "Clutter.TapAction": "49",
    "DoNotDisturbSwitch": "49",
    "Meta.MaximizeFlags": "49",
    "set_pointer_visible": "49",
    "holdKeyboard": "50",
    "releaseKeyboard": "50",
    "show-restart-message": "50",
    "_restart(": "50",
}


def test_metadata_declares_uuid_and_the_shells_it_is_checked_against():
    meta = json.loads((EXTENSION / "metadata.json").read_text())
    assert meta["uuid"] == "v2m@v2m.org"
    assert meta["shell-version"] == SHELLS
    assert meta["name"] and meta["description"]


def test_the_extension_uses_nothing_the_declared_shells_removed():
    used = {name: shell for name, shell in REMOVED.items() if name in SOURCE}
    assert not used, f"removed in these GNOME Shell versions: {used}"


def test_every_bus_member_the_extension_uses_is_in_the_contract():
    (iface,) = Node.parse(CONTRACT.read_text()).interfaces
    members = {m.name for m in iface.methods} | {s.name for s in iface.signals}
    members |= {p.name for p in iface.properties}
    used = set(re.findall(r"connectSignal\('(\w+)'", SOURCE))
    used |= set(re.findall(r"INTERFACE, '(\w+)'", SOURCE))
    used |= set(re.findall(r"_proxy\??\.([A-Z]\w*)", SOURCE))
    assert used == {"TranscriptionUpdated", "Toggle", "State", "DeliveryPath"}
    assert used <= members
    assert f"const INTERFACE = '{iface.name}';" in SOURCE


def test_there_is_an_icon_for_every_documented_state():
    documented = re.search(r"<!-- State: ([^.]+)\. -->", CONTRACT.read_text()).group(1)
    states = set(re.split(r", | or ", documented))
    icons = re.search(r"const ICONS = \{(.*?)\};", SOURCE, re.S).group(1)
    assert set(re.findall(r"^\s*(\w+): '[\w-]+-symbolic',$", icons, re.M)) == states


def test_every_proxy_connection_is_kept_and_released_on_destroy():
    client = (EXTENSION / "dictation.js").read_text()
    connects = re.findall(r"^\s*(.*)proxy\.(connect|connectSignal)\(", client, re.M)
    assert connects, "the client connects to the proxy"
    kept = {"connect": "this._handlerIds.push(", "connectSignal": "this._signalIds.push("}
    for prefix, method in connects:
        assert prefix == kept[method], f"proxy.{method} result not kept: {prefix!r}"
    destroy = client[client.index("    destroy() {") :]
    assert "this._handlerIds.forEach(id => this._proxy.disconnect(id))" in destroy
    assert "this._signalIds.forEach(id => this._proxy.disconnectSignal(id))" in destroy
    assert "this._cancellable.cancel()" in destroy
    indicator = (EXTENSION / "extension.js").read_text()
    assert "this._client.destroy();" in indicator[indicator.index("_onDestroy() {") :]


# Runs dictation.js under plain gjs against a dbusmock daemon: it prints each State it
# sees (null: not running), toggles once when idle, and exits when the daemon is gone.
PROBE = """
import GLib from 'gi://GLib';
const {DictationClient, readInterfaceXml} = await import(`file://${ARGV[0]}/dictation.js`);
const xml = readInterfaceXml();
print(JSON.stringify({xml: xml !== null}));
if (xml) {
    const loop = new GLib.MainLoop(null, false);
    const seen = [];
    const client = new DictationClient(xml, {
        onChange: () => {
            const state = client.state;
            if (seen.at(-1) === state)
                return;
            seen.push(state);
            print(JSON.stringify({state}));
            if (state === 'idle')
                client.toggle(message => print(JSON.stringify({error: message})));
            if (state === null && seen.includes('recording')) {
                client.destroy();
                loop.quit();
            }
        },
        onText: (text, final) => print(JSON.stringify({text, final})),
    });
    loop.run();
}
"""


async def mock_call(address: str, member: str, signature: str, body: list):
    bus = await MessageBus(bus_address=address).connect()
    try:
        reply = await bus.call(
            Message(
                destination=BUS_NAME,
                path="/org/v2m/Dictation",
                interface="org.freedesktop.DBus.Mock",
                member=member,
                signature=signature,
                body=body,
            )
        )
    finally:
        bus.disconnect()
    assert reply.message_type == MessageType.METHOD_RETURN, reply.body
    return reply.body


@pytest.fixture
async def dictation_mock(own_bus):
    """A stand-in daemon: State starts idle, Toggle switches it to recording."""
    path = "/org/v2m/Dictation"
    async with dbusmock(own_bus, BUS_NAME, path, BUS_NAME, service=BUS_NAME) as proc:
        await mock_call(
            own_bus.address, "AddProperty", "ssv", [BUS_NAME, "State", Variant("s", "idle")]
        )
        code = f"self.Set('{BUS_NAME}', 'State', 'recording'); ret = 'recording'"
        await mock_call(own_bus.address, "AddMethod", "sssss", [BUS_NAME, "Toggle", "", "s", code])
        yield proc


def start_probe(tmp_path, address: str, data_dir) -> subprocess.Popen:
    (tmp_path / "probe.js").write_text(PROBE)
    env = {
        **os.environ,
        "DBUS_SESSION_BUS_ADDRESS": address,
        "XDG_DATA_HOME": str(tmp_path / "no-user-data"),
        "XDG_DATA_DIRS": str(data_dir),
    }
    # timeout: a broken probe ends with EOF on stdout instead of hanging the test
    argv = ["timeout", "60", "gjs", "-m", str(tmp_path / "probe.js"), str(EXTENSION)]
    return subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, text=True)


def next_event(probe: subprocess.Popen) -> dict:
    line = probe.stdout.readline()
    assert line, f"gjs probe ended early (exit {probe.wait()})"
    return json.loads(line)


needs_gjs = pytest.mark.skipif(shutil.which("gjs") is None, reason="gjs is not installed")


@needs_gjs
async def test_client_follows_state_toggles_shows_text_and_notices_the_daemon_leaving(
    tmp_path, own_bus, dictation_mock
):
    data_dir = tmp_path / "share"
    (data_dir / "dbus-1" / "interfaces").mkdir(parents=True)
    shutil.copy(CONTRACT, data_dir / "dbus-1" / "interfaces" / CONTRACT.name)
    probe = start_probe(tmp_path, own_bus.address, data_dir)
    assert next_event(probe) == {"xml": True}
    assert next_event(probe) == {"state": "idle"}
    assert next_event(probe) == {"state": "recording"}
    calls = (await mock_call(own_bus.address, "GetCalls", "", []))[0]
    assert [name for _, name, _ in calls] == ["Toggle"]

    signal = [
        BUS_NAME,
        "TranscriptionUpdated",
        "sb",
        [Variant("s", "hello world"), Variant("b", True)],
    ]
    await mock_call(own_bus.address, "EmitSignal", "sssav", signal)
    assert next_event(probe) == {"text": "hello world", "final": True}

    dictation_mock.terminate()
    assert next_event(probe) == {"state": None}
    assert probe.wait() == 0


@needs_gjs
def test_client_without_the_installed_contract_says_so(tmp_path, own_bus):
    probe = start_probe(tmp_path, own_bus.address, tmp_path / "empty")
    assert next_event(probe) == {"xml": False}
    assert probe.wait() == 0
