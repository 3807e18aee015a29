"""A dictation survives the daemon's death: its audio is on disk as it is captured.

Every sample a live session takes from its source is appended, as 16-bit PCM, to a
*capture file* ``$XDG_STATE_HOME/v2m/capture/capture-<pid>-<n>.wav`` (0600, in a 0700
directory) before the VAD or the decoder see it. The file goes once the recording's
text is in the history or its audio kept as a recording. One that outlives its daemon
(SIGKILL, the kernel's OOM killer, a crash inside CTranslate2) is found at the next
start, transcribed into the history marked as recovered, and said once: a notification
and a log line; the file is deleted once its text is stored (kept as a recording when
it cannot be transcribed).

Why a file written as the audio comes rather than salvaging the dead daemon's ring in
``/dev/shm``: the ring holds at most ``[audio] capacity_s`` and its reader has already
released what it read, so a dictation longer than that (or one whose first sentences
were already final) would come back cut; it lives in RAM, so a reboot after a kernel
panic or a frozen desktop loses it; and the ``sounddevice`` backend has no ring at all.
The capture file holds the whole recording whatever the backend, and a write into the
page cache survives the death of the process by construction (the kernel writes it out);
``fdatasync`` every ``SYNC_S`` bounds what a power cut can take. It costs 32 kB/s of disk
and one ``write`` per half second of audio, on the thread that already runs the VAD.

A live file is held with ``flock``: the lock goes with the process however it dies, so
"nobody holds it" means "its daemon is dead", whatever pid a new process has been given.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import logging
import os
import struct
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from v2md.audio.recordings import create_private, new_recording_path, state_dir

log = logging.getLogger(__name__)

SYNC_S = 2.0  # at most this much captured audio is only in the page cache (a power cut)
PREFIX = "capture-"
_HEADER = 44  # a canonical PCM WAV header
_STREAMING = 0xFFFFFFFF  # the RIFF and data sizes of a WAV whose end is not known yet
_sequence = itertools.count()


def _wav_header(rate: int, data_bytes: int) -> bytes:
    riff = _STREAMING if data_bytes == _STREAMING else 36 + data_bytes
    return b"".join(
        (
            b"RIFF",
            struct.pack("<I", riff),
            b"WAVEfmt ",
            struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16),  # PCM, mono, 16-bit
            b"data",
            struct.pack("<I", data_bytes),
        )
    )


def capture_dir() -> Path:
    return state_dir("capture")


class CaptureFile:
    """The audio of one recording on disk as it comes (``append``), until ``discard``.

    ``append`` runs on one thread at a time (the session's capture thread). A write that
    fails (disk full) is logged once and ends the file: the dictation goes on without it,
    and what is already on disk is still recovered should the daemon die."""

    def __init__(self, rate: int) -> None:
        self.path = capture_dir() / f"{PREFIX}{os.getpid()}-{next(_sequence)}.wav"
        self._fd = create_private(self.path)
        self._kept = True
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.write(self._fd, _wav_header(rate, _STREAMING))
        except OSError:
            self.discard()
            raise
        self._synced_at = time.monotonic()
        self.samples = 0

    def append(self, audio: np.ndarray) -> None:
        """Add float32 samples at the end (16-bit, as recordings are kept)."""
        if self._fd < 0:
            return
        pcm = (np.clip(audio, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()
        try:
            view = memoryview(pcm)
            while view:  # a write to a regular file is whole unless the disk is full
                view = view[os.write(self._fd, view) :]
            if time.monotonic() - self._synced_at >= SYNC_S:
                os.fdatasync(self._fd)
                self._synced_at = time.monotonic()
        except OSError as exc:
            log.error(
                "cannot write the captured audio to %s (%s): this dictation would not survive "
                "a crash of v2md",
                self.path,
                exc,
            )
            self._close()
            return
        self.samples += audio.size

    def discard(self) -> None:
        """The recording's text is stored, or its audio kept elsewhere: delete the file.
        Idempotent."""
        if self._kept:
            self._kept = False
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
        self._close()

    def _close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)  # releases the lock
            self._fd = -1


@dataclass(frozen=True)
class Orphan:
    """A capture file whose daemon died: what it holds, and when it was last written."""

    path: Path
    samples: int
    rate: int
    written_at: float  # seconds since the epoch

    @property
    def duration_s(self) -> float:
        return self.samples / self.rate


def orphans() -> list[Orphan]:
    """Capture files no live process holds, oldest first. Each is turned into a complete
    WAV in place (its sizes written into the header), so that it can be read like any
    recording. A file that is not one (no WAV header) is moved out of the way."""
    try:
        candidates = sorted(capture_dir().glob(f"{PREFIX}*.wav"))
    except OSError as exc:
        log.error("cannot look for dictations interrupted by a crash: %s", exc)
        return []
    found = []
    for path in candidates:
        with contextlib.suppress(FileNotFoundError):
            orphan = _claim(path)
            if orphan is not None:
                found.append(orphan)
    return sorted(found, key=lambda o: o.written_at)


def _claim(path: Path) -> Orphan | None:
    """Finish the WAV at ``path`` if its writer is dead; None while one holds it."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        log.error("cannot read the interrupted dictation %s: %s", path, exc)
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return None  # a live daemon is writing it
        info = os.fstat(fd)
        header = os.pread(fd, _HEADER, 0)
        if len(header) < _HEADER or header[:4] != b"RIFF" or header[36:40] != b"data":
            log.error("%s is no capture file v2m wrote; left alone", path)
            return None
        rate = struct.unpack_from("<I", header, 24)[0]
        data = (info.st_size - _HEADER) // 2 * 2
        os.ftruncate(fd, _HEADER + data)  # a half-written last sample
        os.pwrite(fd, _wav_header(rate, data), 0)
        os.fsync(fd)
        return Orphan(path, data // 2, rate, info.st_mtime)
    finally:
        os.close(fd)


def keep(orphan: Orphan) -> Path:
    """Move an orphan among the kept recordings (it could not be transcribed)."""
    target = new_recording_path()
    os.replace(orphan.path, target)
    return target
