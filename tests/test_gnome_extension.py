"""The GNOME Shell extension run under gjs against the live daemon.

What runs here, on a private bus with a real v2md that records from a speech file:

* ``dictation.js``, the extension's client of org.v2m.Dictation and what the panel shows
  for it (``indicatorView``, ``textView``), driven by ``tests/gjs/client.js``: the State,
  DeliveryPath and panel view through a dictation started and stopped with the client's
  toggle(), the live and final text (the final one equal to LastText) as the menu line
  shows them, a failed toggle's message, the daemon going away, and a destroyed client
  no longer reacting to the daemon;
* ``extension.js`` itself, enabled by ``tests/gjs/panel.js`` with stand-ins for the
  Shell's modules (St, Main, PanelMenu, PopupMenu, Extension: ``tests/gjs/shell/``, which
  model only what the extension uses of them): the icon and menu a user sees through a
  dictation clicked from the menu, the notification of a failed click, and disabling it.

What does not: the Shell's own widgets, drawing and the extension manager; the stand-ins
follow what the extension uses of the Shell as read at the GNOME Shell tags that
metadata.json declares. Both modules are also parsed as ES modules by node.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import speech
from dbus_fast import DBusError, Variant
from harness import ROOT, Watch, assert_eventually, running_daemon

from v2md import INTERFACE

EXTENSION = ROOT / "data" / "gnome-shell-extension"
CONTRACT = ROOT / "v2md" / "data" / "org.v2m.Dictation.xml"
CLIENT = ROOT / "tests" / "gjs" / "client.js"
VIEWS = ROOT / "tests" / "gjs" / "views.js"
PANEL = ROOT / "tests" / "gjs" / "panel.js"
ADWAITA = Path("/usr/share/icons/Adwaita")
MAX_WER = 20.0  # as tests/test_dictation.py: tiny.en on espeak speech
PREVIEW_CHARS = 80  # the menu shows the end of a longer text

needs_gjs = pytest.mark.skipif(shutil.which("gjs") is None, reason="gjs is not installed")


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


def test_metadata_declares_uuid_and_the_shells_it_is_checked_against():
    meta = json.loads((EXTENSION / "metadata.json").read_text())
    assert meta["uuid"] == "v2m@v2m.org"
    assert meta["shell-version"] == SHELLS
    assert meta["name"] and meta["description"]


def documented_states() -> list[str]:
    documented = re.search(r"<!-- State: ([^.]+)\. -->", CONTRACT.read_text()).group(1)
    return re.split(r", | or ", documented)


@needs_gjs
def test_every_documented_state_has_its_own_icon_from_the_standard_theme():
    states = documented_states()
    assert states == ["idle", "recording", "transcribing", "processing"]
    out = subprocess.run(
        ["gjs", "-m", str(VIEWS), str(EXTENSION), *states],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    views = json.loads(out)
    icons = {state: view["icon"] for state, view in views.items()}
    assert len(set(icons.values())) == len(states) + 1, icons  # one more: not running
    for state, icon in icons.items():
        assert list(ADWAITA.glob(f"*/*/{icon}.*")), f"{state}: no {icon} in {ADWAITA}"
    # The toggle stays usable where Toggle can act: idle, recording, or not running
    # (Toggle starts the daemon by D-Bus activation).
    usable = {state for state, view in views.items() if view["toggleSensitive"]}
    assert usable == {"idle", "recording", "null"}


class Probe:
    """A script of tests/gjs running: the events it printed so far, its stdin, its stderr."""

    def __init__(self, proc: asyncio.subprocess.Process, stderr: Path) -> None:
        self.proc = proc
        self.stderr = stderr
        self.events: list[dict] = []
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            self.events.append(json.loads(line))

    def send(self, command: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{command}\n".encode())

    def mark(self) -> int:
        """Where the events printed from now on begin, for ``until``."""
        return len(self.events)

    def since(self, mark: int, key: str) -> list:
        return [event[key] for event in self.events[mark:] if key in event]

    async def until(
        self, matches: Callable[[dict], object], after: int = 0, timeout: float = 30
    ) -> dict:
        """The first event from ``after`` on that ``matches``, waiting for it to come."""

        def found() -> dict | None:
            return next((e for e in self.events[after:] if matches(e)), None)

        try:
            await assert_eventually(lambda: found() or self._reader.done(), timeout)
        except AssertionError:
            raise AssertionError(f"not seen in {timeout} s; {self.said()}") from None
        event = found()
        assert event is not None, f"gjs ended ({await self.proc.wait()}); {self.said()}"
        return event

    def said(self) -> str:
        return f"gjs printed {self.events}, and on stderr: {self.stderr.read_text()}"

    async def close(self) -> int:
        """Ends it with EOF on stdin; its exit status."""
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        code = await asyncio.wait_for(self.proc.wait(), 10)
        await self._reader
        return code


@contextlib.asynccontextmanager
async def gjs_probe(
    script: Path, tmp_path: Path, address: str, contract: bool = True
) -> AsyncIterator[Probe]:
    """``script`` on the bus at ``address``, finding the contract where meson installs it
    (unless ``contract`` is false), and no other XDG data dir."""
    data_dir = tmp_path / "share"
    if contract:
        (data_dir / "dbus-1" / "interfaces").mkdir(parents=True)
        shutil.copy(CONTRACT, data_dir / "dbus-1" / "interfaces" / CONTRACT.name)
    work = tmp_path / script.stem
    work.mkdir()
    env = {
        **os.environ,
        "DBUS_SESSION_BUS_ADDRESS": address,
        "XDG_DATA_HOME": str(tmp_path / "no-user-data"),
        "XDG_DATA_DIRS": str(data_dir),
    }
    stderr = tmp_path / f"{script.stem}.stderr"
    with stderr.open("wb") as err:
        proc = await asyncio.create_subprocess_exec(
            "gjs",
            "-m",
            str(script),
            str(EXTENSION),
            str(work),
            env=env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=err,
        )
    probe = Probe(proc, stderr)
    try:
        yield probe
        assert await probe.close() == 0, probe.said()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        probe._reader.cancel()


@contextlib.asynccontextmanager
async def gjs_beside_daemon(
    script: Path, own_bus, tmp_path: Path, audio: Path
) -> AsyncIterator[tuple[Any, Any, Any, Probe]]:
    """The live daemon, its microphone ``audio`` played at real time, and ``script`` under
    gjs on its bus: (daemon, interface, properties, probe)."""
    async with (
        running_daemon(
            own_bus, tmp_path / "home", V2M_AUDIO__FILE=str(audio), V2M_AUDIO__REALTIME="true"
        ) as (daemon, iface, props),
        gjs_probe(script, tmp_path, own_bus.address) as probe,
    ):
        yield daemon, iface, props, probe


def menu_line(text: str, final: bool) -> str:
    shown = text if len(text) <= PREVIEW_CHARS else f"…{text[-PREVIEW_CHARS:]}"
    return f"✔ {shown}" if final else shown


def distinct(values: list) -> list:
    """``values`` without repeats in a row."""
    return [v for i, v in enumerate(values) if i == 0 or v != values[i - 1]]


@needs_gjs
@pytest.mark.slow
async def test_the_panel_follows_a_dictation_toggled_from_it_then_the_daemon_leaving(
    own_bus, tmp_path, speech_file
):
    async with gjs_beside_daemon(CLIENT, own_bus, tmp_path, speech_file.path) as (
        daemon,
        iface,
        props,
        client,
    ):
        watch = Watch(iface, props)
        assert (await client.until(lambda e: "xml" in e)) == {"xml": True}
        # DeliveryPath is "" until the daemon has looked, then the panel names it.
        idle = await client.until(lambda e: e.get("state") == "idle" and e["deliveryPath"])
        path = (await props.call_get(INTERFACE, "DeliveryPath")).value
        assert path and idle["deliveryPath"] == path  # "none" here: no clipboard, no tool
        assert idle["panel"] == {
            "icon": "audio-input-microphone-symbolic",
            "status": f"v2m: idle · typing via {path}",
            "toggleLabel": "Start dictation",
            "toggleSensitive": True,
        }

        start = client.mark()
        client.send("toggle")
        started = time.monotonic()
        recording = await client.until(lambda e: e.get("state") == "recording", start)
        assert recording["panel"] == {
            "icon": "media-record-symbolic",
            "status": f"v2m: recording · typing via {path}",
            "toggleLabel": "Stop dictation",
            "toggleSensitive": True,
        }
        live = await client.until(lambda e: e.get("text") and e["final"] is False, start)
        assert live["line"] == {"label": menu_line(live["text"], False), "visible": True}

        # Stop once the speech is over and the daemon has heard its end, as a user would.
        speech_over = started + speech_file.speech_s
        await assert_eventually(
            lambda: any(t > speech_over and not active for t, active in watch.speech), timeout=30
        )
        stop = client.mark()
        client.send("toggle")
        final = await client.until(lambda e: e.get("final") is True, stop)
        last_text = (await props.call_get(INTERFACE, "LastText")).value
        assert final["text"] == last_text
        assert speech.wer(speech_file.text, final["text"]) <= MAX_WER, final["text"]
        assert final["line"] == {"label": menu_line(last_text, True), "visible": True}
        await client.until(lambda e: e.get("state") == "idle", stop)
        assert distinct(client.since(start, "state")) == [
            "recording",
            "transcribing",
            "idle",
        ]
        finals = client.since(start, "final")
        assert finals[-1] is True and True not in finals[:-1]  # one final text, the last
        assert client.since(0, "error") == []

        gone = client.mark()
        assert daemon.stop() == 0
        left = await client.until(lambda e: "state" in e and e["state"] is None, gone)
        assert left == {
            "state": None,
            "deliveryPath": None,
            "panel": {
                "icon": "microphone-disabled-symbolic",
                "status": "v2m is not running",
                "toggleLabel": "Start dictation",
                "toggleSensitive": True,
            },
        }


@needs_gjs
async def test_a_failed_toggle_shows_the_daemons_error_and_a_destroyed_client_stops_listening(
    own_bus, tmp_path
):
    missing = tmp_path / "missing.wav"
    async with gjs_beside_daemon(CLIENT, own_bus, tmp_path, missing) as (
        _daemon,
        iface,
        props,
        client,
    ):
        await client.until(lambda e: e.get("state") == "idle")
        client.send("toggle")
        shown = (await client.until(lambda e: "error" in e))["error"]
        with pytest.raises(DBusError) as failed:
            await iface.call_toggle()
        assert shown == f"GDBus.Error:{failed.value.type}: {failed.value.text}"
        assert str(missing) in shown
        assert (await props.call_get(INTERFACE, "State")).value == "idle"

        # Disabling the extension destroys the client: the daemon's changes reach it no more.
        destroyed = client.mark()
        client.send("destroy")
        await client.until(lambda e: e.get("destroyed"), destroyed)
        language = (await props.call_get(INTERFACE, "Language")).value
        other = "en" if language == "auto" else "auto"
        await props.call_set(INTERFACE, "Language", Variant("s", other))
        await client.until(lambda e: e.get("signal") == "PropertiesChanged", destroyed)
        assert [e for e in client.events[destroyed:] if "state" in e or "text" in e] == []


@needs_gjs
async def test_without_the_installed_contract_the_client_says_so_and_ends(own_bus, tmp_path):
    async with gjs_probe(CLIENT, tmp_path, own_bus.address, contract=False) as client:
        assert (await client.until(lambda e: "xml" in e)) == {"xml": False}
        assert (await asyncio.wait_for(client.proc.wait(), 30)) == 0
        assert client.events == [{"xml": False}]


async def delivery_path(props) -> str:
    """The daemon's DeliveryPath, once it has looked ("" before)."""

    async def current() -> str:
        return (await props.call_get(INTERFACE, "DeliveryPath")).value

    await assert_eventually(current, timeout=30, message="DeliveryPath stays empty")
    return await current()


def shown(event: dict) -> list[str]:
    """The labels of the menu's visible items, top down, as a user reads them."""
    return [item["label"] for item in event["panel"]["menu"] if item["visible"]]


def icons(event: dict) -> list[str]:
    return event["panel"]["icons"]


def toggle_item(event: dict) -> dict:
    (item,) = [i for i in event["panel"]["menu"] if i["label"].endswith(" dictation")]
    return item


@needs_gjs
@pytest.mark.slow
async def test_the_extension_itself_shows_a_dictation_clicked_from_its_menu(
    own_bus, tmp_path, speech_file
):
    async with gjs_beside_daemon(PANEL, own_bus, tmp_path, speech_file.path) as (
        _daemon,
        iface,
        props,
        panel,
    ):
        watch = Watch(iface, props)
        path = await delivery_path(props)
        idle = await panel.until(lambda e: "panel" in e and "typing via" in shown(e)[0])
        assert shown(idle) == [f"v2m: idle · typing via {path}", "Start dictation"]
        assert icons(idle) == ["audio-input-microphone-symbolic"]

        start = panel.mark()
        panel.send("click Start dictation")
        started = time.monotonic()
        recording = await panel.until(
            lambda e: "panel" in e and "Stop dictation" in shown(e), start
        )
        assert shown(recording)[0] == f"v2m: recording · typing via {path}"
        assert icons(recording) == ["media-record-symbolic"]
        live = await panel.until(lambda e: "panel" in e and len(shown(e)) == 3, start)
        assert not shown(live)[2].startswith("✔")

        speech_over = started + speech_file.speech_s
        await assert_eventually(
            lambda: any(t > speech_over and not active for t, active in watch.speech), timeout=30
        )
        stop = panel.mark()
        panel.send("click Stop dictation")
        # The final text and the idle state come in either order; the user sees both.
        done = await panel.until(
            lambda e: (
                "panel" in e
                and shown(e)[0].startswith("v2m: idle")
                and shown(e)[-1].startswith("✔ ")
            ),
            stop,
        )
        last_text = (await props.call_get(INTERFACE, "LastText")).value
        assert last_text
        assert shown(done) == [
            f"v2m: idle · typing via {path}",
            "Start dictation",
            menu_line(last_text, True),
        ]
        assert icons(done) == ["audio-input-microphone-symbolic"]
        # While the text is made final, the panel says so and its toggle cannot be clicked.
        transcribing = [
            e for e in panel.events[stop:] if "panel" in e and "transcribing" in shown(e)[0]
        ]
        assert transcribing, panel.said()
        assert {toggle_item(e)["sensitive"] for e in transcribing} == {False}
        assert icons(transcribing[0]) == ["content-loading-symbolic"]
        assert panel.events[-1]["notifications"] == []

        # Disabled, the extension takes its indicator away and listens to the daemon no more.
        disabled = panel.mark()
        panel.send("disable")
        assert (await panel.until(lambda e: "disabled" in e, disabled))["destroyed"] is True
        language = (await props.call_get(INTERFACE, "Language")).value
        other = "en" if language == "auto" else "auto"
        await props.call_set(INTERFACE, "Language", Variant("s", other))
        await panel.until(lambda e: e.get("signal") == "PropertiesChanged", disabled)
        assert panel.since(disabled, "changedAfterDisable") == []


@needs_gjs
async def test_the_extension_notifies_a_failed_toggle_with_the_daemons_error(own_bus, tmp_path):
    missing = tmp_path / "missing.wav"
    async with gjs_beside_daemon(PANEL, own_bus, tmp_path, missing) as (
        _daemon,
        iface,
        props,
        panel,
    ):
        await panel.until(lambda e: "panel" in e and shown(e)[0].startswith("v2m: idle"))
        clicked = panel.mark()
        panel.send("click Start dictation")
        shown_error = await panel.until(lambda e: e.get("notifications"), clicked)
        with pytest.raises(DBusError) as failed:
            await iface.call_toggle()
        assert shown_error["notifications"] == [
            {
                "title": "v2m dictation",
                "body": f"GDBus.Error:{failed.value.type}: {failed.value.text}",
            }
        ]
        path = await delivery_path(props)
        assert shown(shown_error) == [f"v2m: idle · typing via {path}", "Start dictation"]


@needs_gjs
async def test_without_the_installed_contract_the_extension_adds_no_indicator_and_says_why(
    own_bus, tmp_path
):
    async with gjs_probe(PANEL, tmp_path, own_bus.address, contract=False) as panel:
        panel.send("click Start dictation")
        assert (await panel.until(lambda e: "noSuchItem" in e)) == {"noSuchItem": "Start dictation"}
        assert panel.events == [{"noSuchItem": "Start dictation"}]
        assert "is in no XDG data dir; install v2m with meson" in panel.stderr.read_text()
