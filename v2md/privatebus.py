"""A session bus of one's own: a ``dbus-daemon --session`` child process.

``v2m-demo`` runs v2md on one when no usable session bus is reachable, and the
tests run every daemon on one, so that nothing reaches the user's desktop.
"""

from __future__ import annotations

import subprocess


class PrivateBus:
    """A running ``dbus-daemon --session``; ``address`` is what DBUS_SESSION_BUS_ADDRESS takes.

    Usable as a context manager: leaving it stops the bus.
    """

    def __init__(self) -> None:
        self._proc = subprocess.Popen(
            ["dbus-daemon", "--session", "--nofork", "--print-address=1"],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._proc.stdout is not None
        # The daemon prints its address once it listens, so the bus is usable on return.
        self.address = self._proc.stdout.readline().strip()
        if not self.address:
            self.close()
            raise RuntimeError(f"dbus-daemon exited ({self._proc.returncode}) without an address")

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.terminate()
        self._proc.wait(timeout=10)
        if self._proc.stdout is not None:
            self._proc.stdout.close()

    def __enter__(self) -> PrivateBus:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
