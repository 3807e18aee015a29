"""The private bus keeps dbus-daemon's own warnings out of its starter's output."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from harness import ROOT

STARTS = """
from v2md.privatebus import PrivateBus
with PrivateBus() as bus:
    print("bus at", bus.address)
print("it said:", bus.messages)
"""

FAILS = """
from v2md.privatebus import PrivateBus
try:
    PrivateBus()
except RuntimeError as exc:
    print(exc)
"""


def fake_dbus_daemon(directory: Path, *, address: bool) -> dict[str, str]:
    """A ``dbus-daemon`` first on PATH that warns as the real one does without the right to
    raise its descriptor limit, then listens (prints an address) or exits."""
    script = directory / "dbus-daemon"
    listens = "echo unix:path=/nonexistent/bus; exec sleep 60" if address else "exit 1"
    script.write_text(
        "#!/bin/sh\n"
        "echo 'dbus-daemon[1]: Failed to set fd limit to 65536: Operation not permitted' >&2\n"
        f"{listens}\n"
    )
    script.chmod(0o755)
    path = f"{directory}{os.pathsep}{os.environ['PATH']}"
    return {**os.environ, "PATH": path, "PYTHONPATH": str(ROOT)}


def test_dbus_daemon_warnings_stay_out_of_the_output_and_are_kept(tmp_path):
    env = fake_dbus_daemon(tmp_path, address=True)
    result = subprocess.run(
        [sys.executable, "-c", STARTS], capture_output=True, text=True, timeout=60, env=env
    )
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert "bus at unix:path=/nonexistent/bus" in result.stdout
    assert "it said: dbus-daemon[1]: Failed to set fd limit" in result.stdout


def test_a_bus_that_does_not_start_says_what_dbus_daemon_said(tmp_path):
    env = fake_dbus_daemon(tmp_path, address=False)
    result = subprocess.run(
        [sys.executable, "-c", FAILS], capture_output=True, text=True, timeout=60, env=env
    )
    assert result.stderr == "", result.stderr
    assert "exited (1) without an address: dbus-daemon[1]: Failed to set fd limit" in result.stdout
