"""Keep audio the user spoke when it could not be turned into text.

A recording whose transcription fails (or that is interrupted by shutdown) is
written as a 16-bit WAV under ``$XDG_STATE_HOME/v2m/recordings/`` so that the
user can transcribe it later; nothing said is ever silently dropped.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
import wave
from pathlib import Path
from typing import BinaryIO

import numpy as np

from v2md.config import xdg_dir

log = logging.getLogger(__name__)


def state_dir(*names: str) -> Path:
    """``$XDG_STATE_HOME/v2m/<names…>``, each level v2m creates made private (0700): audio
    and tokens live there. ``mkdir(parents=True, mode=…)`` gives the mode to the last
    level only, the others get the umask's."""
    base = xdg_dir("state")
    base.mkdir(parents=True, exist_ok=True)  # the user's own, made by whoever came first
    path = base
    for part in ("v2m", *names):
        path = path / part
        path.mkdir(mode=0o700, exist_ok=True)
    return path


def recordings_dir() -> Path:
    return xdg_dir("state") / "v2m" / "recordings"


def new_recording_path() -> Path:
    """A fresh name under ``recordings_dir()``, which is made private if it is new."""
    directory = state_dir("recordings")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return directory / f"recording-{stamp}-{os.getpid()}-{time.monotonic_ns() % 10**6}.wav"


def create_private(path: Path) -> int:
    """Create ``path`` for writing, readable by the user only (0600), never an existing file
    or a link someone put there; its descriptor."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)


def _pcm(audio: np.ndarray) -> bytes:
    pcm: bytes = (np.clip(audio, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()
    return pcm


def _open_wav(raw: BinaryIO, sample_rate: int) -> wave.Wave_write:
    out = wave.open(raw, "wb")  # noqa: SIM115 -- the caller closes it
    out.setnchannels(1)
    out.setsampwidth(2)
    out.setframerate(sample_rate)
    return out


def save_recording(audio: np.ndarray, sample_rate: int, reason: str) -> Path:
    """Write ``audio`` (float32 mono) atomically as WAV and return its path."""
    path = new_recording_path()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".wav")
    try:
        with os.fdopen(fd, "wb") as raw:
            with _open_wav(raw, sample_rate) as out:
                out.writeframes(_pcm(audio))
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    log.warning("kept %.1f s of audio in %s (%s)", len(audio) / sample_rate, path, reason)
    return path


class GrowingRecording:
    """One WAV that audio is appended to as it comes: a recording that keeps falling
    behind keeps all its overflow in one file, instead of a file (and a report) per spill.
    The header is rewritten and the file synced after every append, so what is on disk is
    always a complete WAV. Appends must not run concurrently."""

    def __init__(self, sample_rate: int, reason: str) -> None:
        self._rate = sample_rate
        self._reason = reason
        self._raw: BinaryIO | None = None
        self._wav: wave.Wave_write | None = None
        self.path: Path | None = None
        self.samples = 0

    def append(self, audio: np.ndarray) -> Path:
        """Add ``audio`` (float32 mono) at the end; the file it is in."""
        if self._wav is None or self._raw is None or self.path is None:
            self.path = new_recording_path()
            self._raw = os.fdopen(create_private(self.path), "wb")  # open until close()
            self._wav = _open_wav(self._raw, self._rate)
        self._wav.writeframes(_pcm(audio))  # patches the header's lengths
        self._raw.flush()
        os.fsync(self._raw.fileno())
        self.samples += audio.size
        log.warning(
            "kept %.1f s of audio in %s (%s)", self.samples / self._rate, self.path, self._reason
        )
        return self.path

    def close(self) -> None:
        if self._wav is not None and self._raw is not None:
            self._wav.close()
            self._raw.close()
            self._wav = None
