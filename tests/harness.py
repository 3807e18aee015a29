"""Run the real daemon on a private session bus, the way power-profiles-daemon's tests do.

Each test's bus is a ``PrivateBus`` (``v2md/privatebus.py``); ``Daemon`` runs
``v2md`` on it as a subprocess — from the source tree, or the installed one
named by the unit's ExecStart when ``V2M_TEST_UNIT`` points at an installed
``v2md.service`` — and keeps its log so a failing test can print it; ``dbusmock``
runs a python-dbusmock stand-in (a notification server, a fake v2md) on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import os
import select
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from dbus_fast import Message, MessageType
from dbus_fast.aio import MessageBus, ProxyInterface

from v2md import INTERFACE
from v2md.client import dictation_proxy, wait_for_name
from v2md.privatebus import PrivateBus

ROOT = Path(__file__).resolve().parent.parent

# A user who pauses, then presses the key: the VAD calls speech over 0.3 s after the last
# word; a Stop 1 s after that.
STOP_AFTER_PAUSE_S = 1.0

# Every process a test started (daemons, mocks), so that a failing test's report carries
# their logs.
STARTED: list[Daemon | DBusMock] = []


def daemon_command() -> list[str]:
    unit = os.environ.get("V2M_TEST_UNIT")
    if not unit:
        return [sys.executable, "-m", "v2md.daemon"]
    for line in Path(unit).read_text().splitlines():
        if line.startswith("ExecStart="):
            return shlex.split(line.split("=", 1)[1])
    raise RuntimeError(f"{unit} has no ExecStart=")


class Daemon:
    """One v2md process with its own XDG directories and configuration."""

    name = "v2md"

    def __init__(self, bus: PrivateBus, home: Path, **settings: str) -> None:
        self.bus = bus
        self.home = home
        home.mkdir(parents=True, exist_ok=True)
        self.log_path = home / "v2md.log"
        self.env = {
            **os.environ,
            "DBUS_SESSION_BUS_ADDRESS": bus.address,
            "XDG_CONFIG_HOME": str(home / "config"),
            "XDG_DATA_HOME": str(home / "data"),
            "XDG_STATE_HOME": str(home / "state"),
            "V2M_OUTPUT__CLIPBOARD": "false",
            "V2M_LOG_LEVEL": "debug",
            "PYTHONPATH": str(ROOT),
            **settings,
        }
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, *args: str) -> Daemon:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [*daemon_command(), *args], env=self.env, stdout=log, stderr=subprocess.STDOUT
        )
        STARTED.append(self)
        return self

    async def wait_ready(self, timeout: float = 60) -> None:
        bus = await MessageBus(bus_address=self.bus.address).connect()
        try:
            await wait_for_name(bus, timeout)
        finally:
            bus.disconnect()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 30) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.terminate()
        return self.proc.wait(timeout=timeout)


@contextlib.asynccontextmanager
async def running_daemon(
    bus: PrivateBus, home: Path, **settings: str
) -> AsyncIterator[tuple[Daemon, ProxyInterface, ProxyInterface]]:
    """A daemon of the test's own and a client of it: (daemon, interface, properties).

    On leaving, the daemon is stopped with SIGTERM unless the test already ended it.
    """
    daemon = Daemon(bus, home, **settings).start()
    await daemon.wait_ready()
    client = await MessageBus(bus_address=bus.address).connect()
    try:
        yield (daemon, *await dictation_proxy(client))
    finally:
        client.disconnect()
        daemon.stop()


class DBusMock:
    """``python -m dbusmock --session *args`` on a private bus, to answer as ``service``."""

    name = "dbusmock"

    def __init__(self, bus: PrivateBus, *args: str, service: str) -> None:
        self.bus = bus
        self.service = service
        fd, path = tempfile.mkstemp(prefix="dbusmock-", suffix=".log")
        self.log_path = Path(path)
        self._kept_log: str | None = None  # the log's text, once the file is removed
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dbusmock", "--session", *args],
            env={**os.environ, "DBUS_SESSION_BUS_ADDRESS": bus.address},
            stdout=fd,
            stderr=subprocess.STDOUT,
        )
        os.close(fd)
        STARTED.append(self)

    async def wait_ready(self, timeout: float = 30) -> None:
        """Wait for the service's name, then for a Ping to come back: dbusmock takes its
        name before it loads its template, and answers calls only once that is done."""
        client = await MessageBus(bus_address=self.bus.address).connect()
        try:
            async with asyncio.timeout(timeout):
                await wait_for_name(client, timeout, self.service)
                reply = await client.call(
                    Message(
                        destination=self.service,
                        path="/",
                        interface="org.freedesktop.DBus.Peer",
                        member="Ping",
                    )
                )
        except TimeoutError:
            raise AssertionError(
                f"dbusmock did not answer as {self.service} within {timeout} s "
                f"(exit status {self.proc.poll()}):\n{self.log()}"
            ) from None
        finally:
            client.disconnect()
        assert reply.message_type == MessageType.METHOD_RETURN, reply.body

    def log(self) -> str:
        if self._kept_log is not None:
            return self._kept_log
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        """End the mock and remove its log file, keeping the text for the test's report."""
        if self.alive():
            self.proc.terminate()
        self.proc.wait(timeout=10)
        if self._kept_log is None:
            self._kept_log = self.log()
            self.log_path.unlink()


@contextlib.asynccontextmanager
async def dbusmock(
    bus: PrivateBus, *args: str, service: str, timeout: float = 30
) -> AsyncIterator[subprocess.Popen[bytes]]:
    """A dbusmock on ``bus`` (``args`` as ``python -m dbusmock`` takes them) answering as
    ``service``: yields its process once it answers calls, stops it on leaving (unless the
    test already ended it). A failing test's report carries its log."""
    mock = DBusMock(bus, *args, service=service)
    try:
        await mock.wait_ready(timeout)
        yield mock.proc
    finally:
        mock.stop()


async def assert_eventually(
    condition: Callable[[], object], timeout: float = 10.0, message: str = ""
) -> None:
    """Wait until ``condition()`` (or what it returns, when awaitable) is truthy.

    Yields to the loop between tries so that signals keep arriving.
    """
    deadline = time.monotonic() + timeout

    async def holds() -> bool:
        result = condition()
        return bool(await result if inspect.isawaitable(result) else result)

    while not await holds():
        if time.monotonic() > deadline:
            raise AssertionError(message or f"condition not met within {timeout} s")
        await asyncio.sleep(0.01)


def read_until_closed(fd: int, timeout: float) -> bytes:
    """All a pseudo-terminal's other end wrote, until its last writer exits."""
    deadline = time.monotonic() + timeout
    data = b""
    while select.select([fd], [], [], max(0.0, deadline - time.monotonic()))[0]:
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: no writer left
            return data
        if not chunk:
            return data
        data += chunk
    raise AssertionError(f"still writing after {timeout} s; so far: {data!r}")


class Watch:
    """What a client of the daemon sees: text updates, Error signals, and (given the
    properties' proxy) the changes of State, SpeechActive, ModelState and ModelProgress."""

    def __init__(self, iface, props=None) -> None:
        self.texts: list[tuple[float, str, bool]] = []
        self.speech: list[tuple[float, bool]] = []
        self.states: list[str] = []
        self.model_states: list[str] = []
        self.progress: list[float] = []  # ModelProgress
        self.errors: list[tuple[str, str]] = []
        iface.on_transcription_updated(lambda t, f: self.texts.append((time.monotonic(), t, f)))
        iface.on_error(lambda n, m: self.errors.append((n, m)))
        if props is not None:
            props.on_properties_changed(self._changed)

    def _changed(self, interface, changed, _invalidated) -> None:
        if interface != INTERFACE:
            return
        if "SpeechActive" in changed:
            self.speech.append((time.monotonic(), changed["SpeechActive"].value))
        if "State" in changed:
            self.states.append(changed["State"].value)
        if "ModelState" in changed:
            self.model_states.append(changed["ModelState"].value)
        if "ModelProgress" in changed:
            self.progress.append(changed["ModelProgress"].value)

    @property
    def finals(self) -> list[str]:
        return [t for _, t, final in self.texts if final]

    @property
    def provisional(self) -> list[str]:
        return [t for _, t, final in self.texts if not final]


async def model_state_is(props, expected: str) -> bool:
    return (await props.call_get(INTERFACE, "ModelState")).value == expected


NOTIFICATIONS = "org.freedesktop.Notifications"


class NotificationServer:
    """dbusmock's notification_daemon on the test's bus, started and stopped on demand."""

    def __init__(self, bus: PrivateBus) -> None:
        self.bus = bus
        self.address = bus.address
        self.mock: DBusMock | None = None

    async def start(self, **parameters: str) -> None:
        args = ("-t", "notification_daemon", "-p", json.dumps(parameters))
        self.mock = DBusMock(self.bus, *args, service=NOTIFICATIONS)
        await self.mock.wait_ready()

    def stop(self) -> None:
        if self.mock is not None:
            self.mock.stop()
            self.mock = None

    async def calls(self, member: str) -> list[list]:
        """The arguments of every ``member`` call the server received, oldest first."""
        bus = await MessageBus(bus_address=self.address).connect()
        try:
            reply = await bus.call(
                Message(
                    destination=NOTIFICATIONS,
                    path="/org/freedesktop/Notifications",
                    interface="org.freedesktop.DBus.Mock",
                    member="GetCalls",
                )
            )
        finally:
            bus.disconnect()
        return [[a.value for a in args] for _, name, args in reply.body[0] if name == member]
