"""A headless desktop for the IBus tests: Xvfb, a real ibus-daemon, a real GTK 3 window.

ibus-daemon runs with its own configuration directory on the test's session bus, as
GNOME runs it (no panel of its own; its emoji extension, ibus-extension-gtk3, started
by default). The GTK window (tests/gtk_text_widget.py) uses IBus's GTK module.
"""

from __future__ import annotations

import asyncio
import json
import os
import select
import shutil
import subprocess
from pathlib import Path

import pytest
from dbus_fast import Message
from dbus_fast.aio import MessageBus
from harness import STARTED, assert_eventually

from v2md.desktop.ibus import EXTENSION_NAME

# PyGObject with GTK 3 comes with the system's Python (python3-gi), not with v2m's.
SYSTEM_PYTHON = "/usr/bin/python3"
WIDGET = Path(__file__).with_name("gtk_text_widget.py")


def need_desktop() -> None:
    missing = [t for t in ("Xvfb", "ibus-daemon", "ibus", "xclip") if not shutil.which(t)]
    if missing:
        pytest.skip(f"{' '.join(missing)} not installed (apt-get install xvfb ibus xclip)")
    probe = "import gi; gi.require_version('Gtk', '3.0'); from gi.repository import Gtk"
    if subprocess.run([SYSTEM_PYTHON, "-c", probe], capture_output=True).returncode != 0:
        pytest.skip(
            "GTK 3 for the system Python is missing (apt-get install python3-gi "
            "gir1.2-gtk-3.0 ibus-gtk3)"
        )


class Xvfb:
    def __init__(self) -> None:
        ready, write_end = os.pipe()
        self.proc = subprocess.Popen(
            ["Xvfb", "-displayfd", str(write_end), "-nolisten", "tcp"],
            pass_fds=(write_end,),
            stderr=subprocess.DEVNULL,
        )
        os.close(write_end)
        # Kept open while Xvfb runs: it exits when that pipe's reader is gone.
        self._ready = ready
        assert select.select([ready], [], [], 20)[0], "Xvfb did not start within 20 s"
        number = os.read(ready, 16).decode().strip()
        assert number, "Xvfb exited before it was ready"
        self.display = f":{number}"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait()
        os.close(self._ready)


class IBusDaemon:
    """ibus-daemon on the test's session bus and display; ``address`` is its own bus."""

    name = "ibus-daemon"

    def __init__(self, home: Path, display: str, session_bus: str) -> None:
        home.mkdir(parents=True, exist_ok=True)
        self.log_path = home / "ibus-daemon.log"
        self.env = {
            **os.environ,
            "DISPLAY": display,
            "DBUS_SESSION_BUS_ADDRESS": session_bus,
            "XDG_CONFIG_HOME": str(home / "config"),
            "XDG_CACHE_HOME": str(home / "cache"),
        }
        self.env.pop("IBUS_ADDRESS", None)
        self.env.pop("WAYLAND_DISPLAY", None)
        self.proc: subprocess.Popen | None = None
        self.address = ""

    async def start(self) -> IBusDaemon:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                ["ibus-daemon", "--panel", "disable", "--config", "disable", "--verbose"],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        STARTED.append(self)

        def address() -> str:
            answer = subprocess.run(["ibus", "address"], env=self.env, capture_output=True)
            return answer.stdout.decode().strip() if answer.returncode == 0 else ""

        await assert_eventually(lambda: address().startswith("unix:"), timeout=20)
        self.address = address()
        # The emoji extension has its name: ibus-daemon is up, as on a desktop.
        await assert_eventually(
            lambda: self.name_owner(EXTENSION_NAME), timeout=20, message="no emoji extension"
        )
        return self

    async def name_owner(self, name: str) -> str:
        bus = await MessageBus(bus_address=self.address).connect()
        try:
            reply = await bus.call(
                Message(
                    destination="org.freedesktop.DBus",
                    path="/org/freedesktop/DBus",
                    interface="org.freedesktop.DBus",
                    member="GetNameOwner",
                    signature="s",
                    body=[name],
                )
            )
            return reply.body[0] if reply.body and isinstance(reply.body[0], str) else ""
        finally:
            bus.disconnect()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class GtkWindow:
    """tests/gtk_text_widget.py, its reports read as they come."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.reports: list[list] = []
        self._reader = asyncio.ensure_future(self._read())

    @classmethod
    async def open(cls, display: str, ibus: IBusDaemon) -> GtkWindow:
        env = {**ibus.env, "GTK_IM_MODULE": "ibus", "NO_AT_BRIDGE": "1"}
        proc = await asyncio.create_subprocess_exec(
            SYSTEM_PYTHON,
            str(WIDGET),
            "v2m IBus target",
            env=env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        window = cls(proc)
        await assert_eventually(lambda: window.focused == "first", timeout=20)
        return window

    async def _read(self) -> None:
        while line := await self.proc.stdout.readline():
            self.reports.append(json.loads(line))

    @property
    def focused(self) -> str | None:
        focus = [r[1] for r in self.reports if r[0] == "focus"]
        return focus[-1] if focus else None

    def text(self, field: str = "first") -> str:
        texts = [r[2] for r in self.reports if r[0] == "changed" and r[1] == field]
        return texts[-1] if texts else ""

    def preedits(self, field: str = "first") -> list[str]:
        return [r[2] for r in self.reports if r[0] == "preedit" and r[1] == field]

    def keys(self) -> list[list]:
        return [r for r in self.reports if r[0] == "key"]

    async def command(self, line: str) -> None:
        self.proc.stdin.write(line.encode() + b"\n")
        await self.proc.stdin.drain()

    async def close(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
        await self.proc.wait()
        self._reader.cancel()


def clipboard(display: str) -> str:
    answer = subprocess.run(
        ["xclip", "-selection", "clipboard", "-out"],
        env={**os.environ, "DISPLAY": display},
        capture_output=True,
        timeout=10,
    )
    return answer.stdout.decode()


def set_clipboard(display: str, text: str) -> None:
    subprocess.run(
        ["xclip", "-selection", "clipboard", "-in"],
        input=text.encode(),
        env={**os.environ, "DISPLAY": display},
        timeout=10,
        check=True,
    )
