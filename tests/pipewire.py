"""A headless PipeWire of a test's own, whose default capture device hears what a test plays.

``pipewire``, ``wireplumber`` and ``pipewire-pulse`` run in a fresh runtime directory on
the test's private bus, with their state and configuration in the test's temp directory
(wireplumber remembers the default source, pulse clients write a cookie: none of it may
reach the user's home). A null sink named ``mic`` is loaded and its monitor made the
default source, so that ``paplay -d mic`` plays at real time into what ALSA's ``default``
device (pipewire-alsa) captures: a microphone without a sound card. Runs as root as well.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from harness import STARTED

from v2md.privatebus import PrivateBus

SERVERS = ("pipewire", "wireplumber", "pipewire-pulse")  # in start order
CLIENTS = ("pactl", "paplay")
SINK = "mic"
SOURCE = f"{SINK}.monitor"
# Variables that would send PipeWire and pulse clients to a server other than the test's.
_FOREIGN = ("PIPEWIRE_REMOTE", "PIPEWIRE_RUNTIME_DIR", "PULSE_SERVER", "PULSE_RUNTIME_PATH")


class Server:
    """One PipeWire process and its log, reported by conftest when a test fails."""

    def __init__(self, name: str, env: dict[str, str], log_path: Path) -> None:
        self.name = name
        self.log_path = log_path
        with log_path.open("wb") as log:
            self.proc = subprocess.Popen([name], env=env, stdout=log, stderr=subprocess.STDOUT)
        STARTED.append(self)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 5) -> None:
        """SIGTERM, then SIGKILL if it is still there after ``timeout`` seconds."""
        if self.alive():
            self.proc.terminate()
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=timeout)


class PipeWire:
    """The running stack; ``env`` is what a client (v2md, paplay) needs to reach it."""

    def __init__(self, bus: PrivateBus, root: Path) -> None:
        missing = [name for name in SERVERS + CLIENTS if shutil.which(name) is None]
        if missing:
            pytest.skip(f"{', '.join(missing)} not installed (.ci/setup installs PipeWire)")
        self.runtime = root / "runtime"
        self.runtime.mkdir(mode=0o700, parents=True)
        self.env = {
            **{k: v for k, v in os.environ.items() if k not in _FOREIGN},
            "DBUS_SESSION_BUS_ADDRESS": bus.address,
            "XDG_RUNTIME_DIR": str(self.runtime),
            "XDG_CONFIG_HOME": str(root / "config"),
            "XDG_STATE_HOME": str(root / "state"),
        }
        self.servers: list[Server] = []
        try:
            # wireplumber gives up if PipeWire's socket is not there yet: start in order.
            for name in SERVERS:
                self.servers.append(Server(name, self.env, root / f"{name}.log"))
                if name == "pipewire":
                    self._wait((self.runtime / "pipewire-0").exists, "PipeWire's socket")
            # pactl before pipewire-pulse's socket is there makes runtime/pulse itself, and
            # pipewire-pulse starting then fails on it ("mkdir() …/pulse failed: File exists").
            self._wait((self.runtime / "pulse" / "native").exists, "pipewire-pulse's socket")
            self._wait(lambda: self.pactl("info") is not None, "pipewire-pulse to answer")
            self.pactl("load-module", "module-null-sink", f"sink_name={SINK}", check=True)
            self._wait(lambda: SOURCE in (self.pactl("list", "short", "sources") or ""), SOURCE)
            # Setting a default is "Not supported" until wireplumber has published its
            # metadata; it then turns the configured default into the default (a session
            # manager is there to link streams).
            self._wait(
                lambda: self.pactl("set-default-source", SOURCE) is not None,
                "wireplumber to take a default source",
            )
            self._wait(
                lambda: (self.pactl("get-default-source") or "").strip() == SOURCE,
                f"{SOURCE} as the default source",
            )
        except BaseException:
            self.stop()
            raise

    def pactl(self, *args: str, check: bool = False) -> str | None:
        """pactl's output, or None when it failed (the server is not up yet)."""
        done = subprocess.run(
            ["pactl", *args], env=self.env, capture_output=True, text=True, timeout=10
        )
        if done.returncode != 0:
            if check:
                raise AssertionError(f"pactl {' '.join(args)}: {done.stderr.strip()}")
            return None
        return done.stdout

    def _wait(self, ready, what: str, timeout: float = 30) -> None:
        """Poll ``ready()`` until it holds; fail at once if a server exited."""
        deadline = time.monotonic() + timeout
        while not ready():
            if dead := [s.name for s in self.servers if not s.alive()]:
                raise AssertionError(f"{', '.join(dead)} exited while waiting for {what}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no {what} within {timeout} s")
            time.sleep(0.1)

    def capturing(self) -> bool:
        """Whether a stream records from the default source, with audio flowing."""
        for line in (self.pactl("list", "short", "sources") or "").splitlines():
            fields = line.split("\t")
            if fields[1:2] == [SOURCE]:
                return fields[-1] == "RUNNING"
        return False

    def stop(self) -> None:
        for server in reversed(self.servers):
            server.stop()
