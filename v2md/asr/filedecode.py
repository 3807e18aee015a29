"""Decoding an audio file a piece at a time, and the checks on what callers hand in.

A file is read and decoded one block of about FILE_BLOCK_S at a time, each ended at
its quietest moment, so memory stays that of one block whatever the file's length;
``FileProgress`` turns the decoded length into the fraction callers hear.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

import numpy as np

from v2md.audio import files as audiofile
from v2md.audio.format import SAMPLE_RATE
from v2md.errors import InvalidArgumentError
from v2md.progress import Rising

log = logging.getLogger(__name__)

# A long decode is set up (features, VAD) a block at a time, so that no one job holds the
# inference thread long: measured on two cores, 0.25 s for 60 s of audio, 1.6 s for 300 s.
FILE_BLOCK_S = 60
BLOCK_SEARCH_S = 5


# Decodes one piece of a file (16 kHz mono float32) and tells its second argument how far
# into the piece it got, in seconds.
PieceDecoder = Callable[[np.ndarray, Callable[[float], None]], Awaitable[str]]


async def decode_file(
    path: str | Path,
    max_file_s: int,
    decode: PieceDecoder,
    on_progress: Callable[[float], None] | None = None,
) -> str:
    """Transcribe a file with ``decode``, one piece of about FILE_BLOCK_S at a time, each
    ended at its quietest moment so that no word is cut in two: memory stays that of one
    piece whatever the file's length, and the file is refused once it passes ``max_file_s``.
    ``on_progress`` hears how much of the file is decoded (see ``FileProgress``)."""
    path = check_file(Path(path))
    loop = asyncio.get_running_loop()
    total_s = await loop.run_in_executor(None, audiofile.duration_s, path)
    if total_s > max_file_s:  # stated by the header: refused before decoding any of it
        raise InvalidArgumentError(
            f"{path} is {total_s:.0f} s long, longer than [whisper] max_file_s = {max_file_s} s"
        )
    reader = audiofile.blocks(path, FILE_BLOCK_S * SAMPLE_RATE, max_file_s * SAMPLE_RATE)
    log.info("transcribing %s (%.1f s of audio)", path, total_s)
    progress = FileProgress(total_s, on_progress or (lambda _fraction: None))
    texts: list[str] = []
    carry = np.zeros(0, np.float32)
    done = 0  # samples decoded
    try:
        while True:
            block = await loop.run_in_executor(None, next, reader, None)
            audio = carry if block is None else np.concatenate([carry, block])
            cut = audio.size if block is None else _quiet_cut(audio)
            if cut:
                start_s = done / SAMPLE_RATE
                texts.append(await decode(audio[:cut], progress.within(start_s)))
                done += cut
                progress.at(done / SAMPLE_RATE)
            carry = audio[cut:]
            if block is None:
                progress.finished()
                return " ".join(text for text in texts if text)
    finally:
        reader.close()


class FileProgress:
    """How much of a file is decoded, as a fraction of the length its container states.

    Passes on 0 at the start, then each fraction larger than the last and short of 1,
    then 1 once all the audio is decoded. Where the stated length is missing (0) or
    too short, nothing more is passed on until the end: 1 always means done.
    """

    def __init__(self, total_s: float, report: Callable[[float], None]) -> None:
        self._total_s = total_s
        self._fraction = Rising(report)
        self._fraction(0.0)

    def at(self, decoded_s: float) -> None:
        """The audio is decoded up to ``decoded_s`` seconds into the file."""
        self._fraction(decoded_s / self._total_s if self._total_s > 0 else 0.0)

    def within(self, start_s: float) -> Callable[[float], None]:
        """``at`` for a piece of the file that starts ``start_s`` seconds into it."""
        return lambda decoded_s: self.at(start_s + decoded_s)

    def finished(self) -> None:
        self._fraction.done()


def _quiet_cut(audio: np.ndarray) -> int:
    """Where to end a block of a long decode: at the quietest 100 ms of its last
    BLOCK_SEARCH_S, so that no word is cut in two."""
    frame = SAMPLE_RATE // 10
    search = audio[-BLOCK_SEARCH_S * SAMPLE_RATE :]
    energy = np.square(search[: search.size // frame * frame]).reshape(-1, frame).sum(axis=1)
    if energy.size == 0:
        return audio.size
    return audio.size - search.size + int(np.argmin(energy)) * frame + frame // 2


def check_audio(audio: np.ndarray) -> np.ndarray:
    if not isinstance(audio, np.ndarray) or audio.ndim != 1:
        raise InvalidArgumentError("audio must be a one-dimensional numpy array (16 kHz mono)")
    if not np.issubdtype(audio.dtype, np.floating):
        raise InvalidArgumentError(f"audio must be float samples in [-1, 1], not {audio.dtype}")
    return audio.astype(np.float32, copy=False)


def check_file(path: Path) -> Path:
    """Reject what the daemon must not or cannot read on a caller's behalf."""
    try:
        path = path.expanduser()
    except RuntimeError:  # ~name of a user that does not exist
        raise InvalidArgumentError(f"{path}: no such user's home directory") from None
    if not path.is_absolute():
        raise InvalidArgumentError(f"{path}: give an absolute path")
    try:
        info = path.stat()
    except FileNotFoundError:
        raise InvalidArgumentError(f"{path}: no such file") from None
    except OSError as exc:
        raise InvalidArgumentError(f"{path}: cannot access: {exc.strerror}") from None
    if not path.is_file():
        raise InvalidArgumentError(f"{path}: not a regular file")
    # The daemon acts for its own user only: never read another user's files.
    if info.st_uid != os.getuid():
        raise InvalidArgumentError(f"{path}: not owned by the daemon's user")
    if not os.access(path, os.R_OK):
        raise InvalidArgumentError(f"{path}: not readable (permission denied)")
    return path
