"""Type stubs for the Rust audio engine (engine/src/lib.rs), checked against the built
module by ``python3 -m mypy.stubtest v2md._engine`` in .ci/run."""

from os import PathLike
from pathlib import Path
from typing import final

import numpy as np
import numpy.typing as npt

__all__ = [
    "DEFAULT_DIR",
    "SAMPLE_RATE",
    "DeviceError",
    "InputError",
    "Ring",
    "SegmentError",
    "__version__",
    "input_devices",
    "remove_stale_segments",
]

__version__: str
SAMPLE_RATE: int
DEFAULT_DIR: str

class DeviceError(Exception):
    """The capture device is missing, busy, or refused every format."""

class InputError(Exception):
    """An audio file is missing, unreadable or not a supported format."""

class SegmentError(Exception):
    """A shared-memory segment could not be created, or an existing one was refused."""

_Views = tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]

@final
class Ring:
    """A 16 kHz mono float32 ring in a shared-memory segment, with its producer."""

    def __new__(cls, capacity: int, directory: str | PathLike[str] | None = None) -> Ring:
        """A ring that Python itself writes into with write()."""
    @staticmethod
    def capture(device: str, capacity: int, directory: str | PathLike[str] | None = None) -> Ring:
        """Capture from an ALSA device by name; raises DeviceError naming it."""
    @staticmethod
    def from_wav(
        path: str | PathLike[str],
        capacity: int,
        realtime: bool,
        directory: str | PathLike[str] | None = None,
    ) -> Ring:
        """Play a WAV file (any rate, channels, PCM or float); raises InputError."""
    @staticmethod
    def from_samples(
        samples: npt.NDArray[np.float32],
        capacity: int,
        realtime: bool,
        directory: str | PathLike[str] | None = None,
    ) -> Ring:
        """Play samples already decoded to 16 kHz mono."""
    @staticmethod
    def attach(path: str | PathLike[str]) -> Ring:
        """Read another process's ring; raises SegmentError for a foreign or corrupt header."""
    @property
    def path(self) -> Path: ...
    @property
    def capacity(self) -> int: ...
    @property
    def sample_rate(self) -> int: ...
    @property
    def input_format(self) -> tuple[int, int]:
        """(rate, channels) the source delivers before conversion."""
    @property
    def readable(self) -> int: ...
    @property
    def overruns(self) -> int:
        """Samples dropped because the reader fell behind by more than the capacity."""
    @property
    def level(self) -> tuple[float, float]:
        """(rms, peak) of the most recent chunk written."""
    @property
    def last_write_ns(self) -> int:
        """CLOCK_MONOTONIC ns of the most recent write (compare with time.clock_gettime_ns)."""
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
    def write(self, samples: npt.NDArray[np.float32]) -> int:
        """Append samples (Ring(capacity) only); returns how many fitted."""
    def stop(self) -> None:
        """Stop the producer; what is in the ring stays readable."""
    def close(self) -> None:
        """Stop and unlink the segment; idempotent."""

def input_devices() -> list[str]:
    """ALSA devices that can capture, "default" first."""

def remove_stale_segments(directory: str | PathLike[str] | None = None) -> int:
    """Remove segments whose owning process is gone; returns how many."""
