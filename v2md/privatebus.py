"""A session bus of one's own: a ``dbus-daemon --session`` child process.

``v2m-demo`` runs v2md on one when no usable session bus is reachable, and the
tests run every daemon on one, so that nothing reaches the user's desktop.
"""

from __future__ import annotations

import subprocess
import tempfile


class PrivateBus:
    """A running ``dbus-daemon --session``; ``address`` is what DBUS_SESSION_BUS_ADDRESS takes.

    What dbus-daemon writes to stderr (its own warnings, such as "Failed to set fd limit"
    when it may not raise it) is kept in ``messages`` rather than breaking into the output
    of whoever started it; it is shown when the bus does not start.

    Usable as a context manager: leaving it stops the bus.
    """

    def __init__(self) -> None:
        self._said = ""  # messages, once the bus has stopped
        self._stderr = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 -- closed in close()
        self._proc = subprocess.Popen(
            ["dbus-daemon", "--session", "--nofork", "--print-address=1"],
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
        )
        assert self._proc.stdout is not None
        # The daemon prints its address once it listens, so the bus is usable on return.
        self.address = self._proc.stdout.readline().strip()
        if not self.address:
            self.close()
            said = f": {self.messages}" if self.messages else ""
            raise RuntimeError(
                f"dbus-daemon exited ({self._proc.returncode}) without an address{said}"
            )

    @property
    def messages(self) -> str:
        """What dbus-daemon wrote to stderr so far."""
        if self._stderr.closed:
            return self._said
        self._stderr.seek(0)
        return self._stderr.read().strip()

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.terminate()
        self._proc.wait(timeout=10)
        if self._proc.stdout is not None:
            self._proc.stdout.close()
        if not self._stderr.closed:
            self._said = self.messages
            self._stderr.close()

    def __enter__(self) -> PrivateBus:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
