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

import numpy as np

from .config import xdg_dir

log = logging.getLogger(__name__)


def recordings_dir() -> Path:
    return xdg_dir("state") / "v2m" / "recordings"


def save_recording(audio: np.ndarray, sample_rate: int, reason: str) -> Path:
    """Write ``audio`` (float32 mono) atomically as WAV and return its path."""
    directory = recordings_dir()
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = directory / f"recording-{stamp}-{os.getpid()}-{time.monotonic_ns() % 10**6}.wav"
    pcm = (np.clip(audio, -1.0, 1.0) * 32767.0).astype("<i2")
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".wav")
    try:
        with os.fdopen(fd, "wb") as raw:
            with wave.open(raw, "wb") as out:
                out.setnchannels(1)
                out.setsampwidth(2)
                out.setframerate(sample_rate)
                out.writeframes(pcm.tobytes())
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    log.warning("kept %.1f s of audio in %s (%s)", len(audio) / sample_rate, path, reason)
    return path
