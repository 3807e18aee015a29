"""A headless desktop for the IBus tests: Xvfb, a real ibus-daemon, a real text window
of one toolkit: GTK 3, GTK 4 or Qt 5.

ibus-daemon runs with its own configuration directory on the test's session bus, as
GNOME runs it (no panel of its own; its emoji extension, ibus-extension-gtk3, started
by default). The GTK windows (tests/gtk_text_widget.py, tests/gtk4_text_widget.py) use
IBus's GTK modules; the Qt window (tests/qt_text_widget.py) Qt's own IBus input context.
"""

from __future__ import annotations

import asyncio
import glob
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

# PyGObject and PyQt5 come with the system's Python (python3-gi, python3-pyqt5), not
# with v2m's.
SYSTEM_PYTHON = "/usr/bin/python3"
HERE = Path(__file__).parent


class Toolkit:
    """A kind of text window: its script, its environment, and how to tell it is there."""

    def __init__(
        self, name: str, script: str, env: dict[str, str], probe: str, module: str, packages: str
    ) -> None:
        self.name = name
        self.id = name.replace(" ", "").lower()  # a test's parameter: gtk3, gtk4, qt5
        self.script = HERE / script
        self.env = env
        self.probe = probe  # Python the system's interpreter runs without error
        self.module = module  # IBus's input method module for it, a glob
        self.packages = packages  # the Debian packages that bring both

    def __str__(self) -> str:
        return self.id

    def missing(self) -> str | None:
        """Why this window cannot open here; None if it can."""
        probe = subprocess.run([SYSTEM_PYTHON, "-c", self.probe], capture_output=True)
        if probe.returncode != 0 or not glob.glob(self.module):
            return f"{self.name} with IBus is missing (apt-get install {self.packages})"
        return None


GTK3 = Toolkit(
    "GTK 3",
    "gtk_text_widget.py",
    {"GTK_IM_MODULE": "ibus"},
    "import gi; gi.require_version('Gtk', '3.0'); from gi.repository import Gtk",
    "/usr/lib/*/gtk-3.0/3.0.0/immodules/im-ibus.so",
    "python3-gi gir1.2-gtk-3.0 ibus-gtk3",
)
GTK4 = Toolkit(
    "GTK 4",
    "gtk4_text_widget.py",
    {"GTK_IM_MODULE": "ibus"},
    "import gi; gi.require_version('Gtk', '4.0'); from gi.repository import Gtk",
    "/usr/lib/*/gtk-4.0/4.0.0/immodules/libim-ibus.so",
    "python3-gi gir1.2-gtk-4.0 ibus-gtk4",
)
QT5 = Toolkit(
    "Qt 5",
    "qt_text_widget.py",
    {"QT_IM_MODULE": "ibus", "QT_QPA_PLATFORM": "xcb"},
    "from PyQt5.QtWidgets import QApplication",
    "/usr/lib/*/qt5/plugins/platforminputcontexts/libibusplatforminputcontextplugin.so",
    "python3-pyqt5 libqt5gui5",
)
TOOLKITS = (GTK3, GTK4, QT5)


def need_desktop(toolkit: Toolkit = GTK3) -> None:
    missing = [t for t in ("Xvfb", "ibus-daemon", "ibus", "xclip") if not shutil.which(t)]
    if missing:
        pytest.skip(f"{' '.join(missing)} not installed (apt-get install xvfb ibus xclip)")
    reason = toolkit.missing()
    if reason is not None:
        pytest.skip(reason)


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


class TextWindow:
    """A toolkit's text window (tests/gtk_text_widget.py and its twins), its reports read
    as they come."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.reports: list[list] = []
        self.stamps: list[float] = []  # when each report was made (time.monotonic())
        self._reader = asyncio.ensure_future(self._read())

    @classmethod
    async def open(cls, display: str, ibus: IBusDaemon, toolkit: Toolkit = GTK3) -> TextWindow:
        env = {**ibus.env, **toolkit.env, "NO_AT_BRIDGE": "1"}
        proc = await asyncio.create_subprocess_exec(
            SYSTEM_PYTHON,
            str(toolkit.script),
            "v2m IBus target",
            env=env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=1024 * 1024,  # a report holds a field's whole text
        )
        window = cls(proc)
        await assert_eventually(lambda: window.focused == "first", timeout=20)
        return window

    async def _read(self) -> None:
        while line := await self.proc.stdout.readline():
            stamp, *report = json.loads(line)
            self.stamps.append(stamp)
            self.reports.append(report)

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
