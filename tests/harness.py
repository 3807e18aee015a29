"""Run the real daemon on a private session bus, the way power-profiles-daemon's tests do.

``PrivateBus`` is a ``dbus-daemon --session`` of the test's own; ``Daemon`` runs
``v2md`` on it as a subprocess — from the source tree, or the installed one
named by the unit's ExecStart when ``V2M_TEST_UNIT`` points at an installed
``v2md.service`` — and keeps its log so a failing test can print it.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import shlex
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from dbus_fast.aio import MessageBus, ProxyInterface

from v2md.client import dictation_proxy, wait_for_name

ROOT = Path(__file__).resolve().parent.parent

# Every daemon a test started, so that a failing test's report carries their logs.
STARTED: list[Daemon] = []


class PrivateBus:
    def __init__(self) -> None:
        self._proc = subprocess.Popen(
            ["dbus-daemon", "--session", "--nofork", "--print-address=1"],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._proc.stdout is not None
        self.address = self._proc.stdout.readline().strip()
        if not self.address:
            raise RuntimeError("dbus-daemon did not print an address")

    def close(self) -> None:
        self._proc.terminate()
        self._proc.wait(timeout=10)


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
