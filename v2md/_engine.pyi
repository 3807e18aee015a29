"""Type stubs for the Rust audio engine (engine/src/lib.rs), checked against the built
module by ``python3 -m mypy.stubtest v2md._engine`` in .ci/run.

The surface is what the daemon uses (v2md/audio/capture.py). A ring is written only by
the engine thread it is created with (capture device, WAV file or decoded samples) and
read by Python in the same process; nothing writes into it from Python."""

from os import PathLike
from pathlib import Path
from typing import final

import numpy as np
import numpy.typing as npt

__all__ = [
    "SAMPLE_RATE",
    "DeviceError",
    "InputError",
    "Ring",
    "SegmentError",
    "input_devices",
    "remove_stale_segments",
]

SAMPLE_RATE: int

class DeviceError(Exception):
    """The capture device is missing, busy, or refused every format."""

class InputError(Exception):
    """An audio file is missing, unreadable or not a supported format."""

class SegmentError(Exception):
    """A ring's shared-memory segment could not be created or removed, or its directory read."""

_Views = tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]

@final
class Ring:
    """A 16 kHz mono float32 ring in a shared-memory segment under /dev/shm, written by the
    engine thread it was created with and read from Python. No public constructor: use
    capture(), from_wav() or from_samples()."""

    @staticmethod
    def capture(device: str, capacity: int) -> Ring:
        """Capture from an ALSA device by name on a cpal thread; raises DeviceError naming it."""
    @staticmethod
    def from_wav(path: str | PathLike[str], capacity: int, realtime: bool) -> Ring:
        """Play a WAV file (any rate, channels, PCM or float) from an engine thread; raises
        InputError. realtime=False waits for the reader instead of dropping samples."""
    @staticmethod
    def from_samples(samples: npt.NDArray[np.float32], capacity: int, realtime: bool) -> Ring:
        """Play samples already decoded to 16 kHz mono (copied first) from an engine thread."""
    @property
    def path(self) -> Path:
        """The segment's file, named for this process (for logs; unlinked on close)."""
    @property
    def input_format(self) -> tuple[int, int]:
        """(rate, channels) the source delivers before conversion."""
    @property
    def overruns(self) -> int:
        """Samples dropped because the reader fell behind by more than the capacity."""
    @property
    def ended(self) -> bool:
        """The producer stopped, reached the end, or failed; read it before views()."""
    @property
    def error(self) -> str | None:
        """Why the source failed, if it did."""
    def fileno(self) -> int:
        """The eventfd that becomes readable when samples arrive or the source ends."""
    def drain_wakeups(self) -> None: ...
    def views(self) -> _Views:
        """Read-only zero-copy views of the readable span (second non-empty only on wrap)."""
    def consume(self, n: int) -> None:
        """Release n samples to the producer; ValueError if fewer are readable."""
    def stop(self) -> None:
        """Stop the producer; what is in the ring stays readable."""
    def close(self) -> None:
        """Stop and unlink the segment; idempotent."""

def input_devices() -> list[str]:
    """ALSA devices that can capture, "default" first."""

def remove_stale_segments() -> int:
    """Remove segments in /dev/shm whose owning process is gone; returns how many."""
