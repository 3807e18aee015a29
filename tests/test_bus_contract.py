"""The live daemon against its contract: introspection, properties, named errors, fuzzing."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys

import pytest
from dbus_fast import DBusError, Variant
from dbus_fast.aio import MessageBus
from dbus_fast.introspection import Node
from harness import ROOT, assert_eventually
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from v2md import BUS_NAME, INTERFACE, OBJECT_PATH
from v2md.client import dictation_proxy
from v2md.errors import ERROR_NAMES, ERROR_PREFIX

CONTRACT = ROOT / "v2md" / "data" / "org.v2m.Dictation.xml"


def _shape(node: Node) -> dict:
    """What a client depends on: members, argument types, directions and names.

    dbus-fast names in-arguments after the Python parameters; the service names
    out-arguments and signal arguments as the contract does (busctl and d-feet show them).
    """
    (iface,) = [i for i in node.interfaces if i.name == INTERFACE]
    return {
        "methods": {
            m.name: (
                [(a.name, a.signature) for a in m.in_args],
                [(a.name, a.signature) for a in m.out_args],
            )
            for m in iface.methods
        },
        "signals": {s.name: [(a.name, a.signature) for a in s.args] for s in iface.signals},
        "properties": {p.name: (p.signature, p.access.value) for p in iface.properties},
    }


async def test_live_introspection_matches_the_contract(daemon):
    bus = await MessageBus(bus_address=daemon.bus.address).connect()
    try:
        live = await bus.introspect(BUS_NAME, OBJECT_PATH)
    finally:
        bus.disconnect()
    contract = Node.parse(CONTRACT.read_text())
    assert _shape(live) == _shape(contract)


async def test_properties_have_their_documented_values(client):
    _, props = client
    values = {k: v.value for k, v in (await props.call_get_all(INTERFACE)).items()}
    assert values["State"] == "idle"
    assert values["ModelState"] in {"unloaded", "loading", "ready"}
    assert values["Language"] == "auto"
    assert values["SpeechActive"] is False
    assert values["Version"]


async def test_language_is_writable_validated_and_announced(client):
    _, props = client
    changes = []
    props.on_properties_changed(lambda i, changed, _: changes.append(changed))
    await props.call_set(INTERFACE, "Language", Variant("s", "en"))
    await assert_eventually(lambda: any("Language" in c for c in changes))
    assert (await props.call_get(INTERFACE, "Language")).value == "en"
    with pytest.raises(DBusError) as info:
        await props.call_set(INTERFACE, "Language", Variant("s", "xx-not-a-language"))
    assert info.value.type == ERROR_PREFIX + "InvalidArgument"
    await props.call_set(INTERFACE, "Language", Variant("s", "auto"))


async def test_wrong_state_calls_get_named_errors(client):
    iface, _ = client
    for call in (iface.call_stop, iface.call_cancel):
        with pytest.raises(DBusError) as info:
            await call()
        assert info.value.type == ERROR_PREFIX + "InvalidState"


async def test_llm_without_provider_is_a_named_error(client):
    iface, _ = client
    with pytest.raises(DBusError) as info:
        await iface.call_refine("hello there")
    assert info.value.type == ERROR_PREFIX + "LLM"
    assert "provider" in info.value.text


async def test_transcribe_file_rejects_bad_files(client, tmp_path):
    iface, _ = client
    not_audio = tmp_path / "notes.wav"
    not_audio.write_text("this is not audio")
    for path in ("relative.wav", str(tmp_path / "missing.wav"), str(not_audio)):
        with pytest.raises(DBusError) as info:
            await iface.call_transcribe_file(path)
        assert info.value.type == ERROR_PREFIX + "InvalidArgument", path


# D-Bus strings are UTF-8 without NUL; everything else is fair game.
texts = st.text(
    st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), max_size=300
)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    method=st.sampled_from(["TranscribeFile", "Refine", "Translate", "Language", "GetHistory"]),
    a=texts,
    b=texts,
    n=st.integers(0, 2**32 - 1),
)
def test_fuzzed_arguments_get_named_errors_and_the_daemon_survives(daemon, method, a, b, n):
    async def call() -> None:
        bus = await MessageBus(bus_address=daemon.bus.address).connect()
        try:
            iface, props = await dictation_proxy(bus)
            try:
                if method == "TranscribeFile":
                    await iface.call_transcribe_file(a)
                elif method == "Refine":
                    await iface.call_refine(a)
                elif method == "GetHistory":
                    entries = await iface.call_get_history(n)
                    assert n == 0 or len(entries) <= n, (n, len(entries))  # 0: all
                elif method == "Translate":
                    await iface.call_translate(a, b)
                else:
                    await props.call_set(INTERFACE, "Language", Variant("s", a))
            except DBusError as exc:
                # A named error of the contract; never "Failed", which only a bug raises.
                name = exc.type.removeprefix(ERROR_PREFIX)
                assert name in ERROR_NAMES - {"Failed"}, (exc.type, exc.text)
                assert exc.text
            assert (await props.call_get(INTERFACE, "State")).value == "idle"
        finally:
            bus.disconnect()

    asyncio.run(call())
    assert daemon.alive()


def _run_cli(daemon, *argv: str) -> str:
    env = {**os.environ, "DBUS_SESSION_BUS_ADDRESS": daemon.bus.address}
    return subprocess.run(argv, env=env, check=True, capture_output=True, text=True).stdout


@pytest.mark.skipif(shutil.which("busctl") is None, reason="busctl (systemd) is not installed")
def test_busctl_is_a_real_client(daemon):
    out = _run_cli(
        daemon, "busctl", "--user", "get-property", BUS_NAME, OBJECT_PATH, INTERFACE, "State"
    )
    assert out.strip() == 's "idle"'
    out = _run_cli(daemon, "busctl", "--user", "call", BUS_NAME, OBJECT_PATH, INTERFACE, "Toggle")
    assert out.strip() == 's "recording"'
    _run_cli(daemon, "busctl", "--user", "call", BUS_NAME, OBJECT_PATH, INTERFACE, "Cancel")


@pytest.mark.skipif(shutil.which("gdbus") is None, reason="gdbus (libglib2.0-bin) is not installed")
def test_gdbus_is_a_real_client(daemon):
    base = ["gdbus", "call", "--session", "--dest", BUS_NAME, "--object-path", OBJECT_PATH]
    assert _run_cli(daemon, *base, "--method", f"{INTERFACE}.Toggle").strip() == "('recording',)"
    _run_cli(daemon, *base, "--method", f"{INTERFACE}.Cancel")
    out = _run_cli(
        daemon, *base, "--method", "org.freedesktop.DBus.Properties.Get", INTERFACE, "State"
    )
    assert out.strip() == "(<'idle'>,)"


def test_v2mctl_status_talks_to_the_daemon(daemon):
    out = _run_cli(daemon, sys.executable, "-m", "v2md.ctl", "status")
    assert "State: idle" in out
    (iface,) = Node.parse(CONTRACT.read_text()).interfaces
    for prop in iface.properties:  # every property the contract lists, none forgotten
        assert re.search(rf"^{prop.name}: ", out, re.MULTILINE), prop.name


def test_the_contract_lists_exactly_the_errors_the_code_raises():
    text = CONTRACT.read_text()
    listing = text.split("Errors are named", 1)[1].split("-->", 1)[0]
    documented = set(re.findall(r"^    (\w+) {2,}", listing, re.MULTILINE))
    assert documented == ERROR_NAMES
