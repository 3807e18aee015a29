"""Audio files read for TranscribeFile: in blocks, and only by demuxers that read one file.

FFmpeg probes a file's format from its content, and some formats are lists of other
files or URLs (``ffconcat``, HLS playlists, ``tee``): a caller's own small file could
then make the daemon read another. Only the demuxers named below may open a file, and
only through the ``file`` protocol. The file is decoded a block at a time, so memory
does not grow with its length, and a file longer than the configured bound is refused
by name as soon as the bound is reached.
"""

from __future__ import annotations

import contextlib
from collections.abc import Generator, Iterator
from pathlib import Path

import av
import numpy as np

from v2md.audio.format import SAMPLE_RATE
from v2md.errors import InvalidArgumentError

# FFmpeg demuxer names of audio (and audio-and-video) formats that hold their own samples.
DEMUXERS = (
    "wav,w64,aiff,caf,au,flac,mp3,ogg,matroska,webm,mov,mp4,m4a,3gp,aac,ac3,eac3,amr,"
    "wv,ape,tta,mpc,mpc8,dsf,asf,avi,flv,mpeg,mpegts,gsm,voc,sox"
)


def duration_s(path: Path) -> float:
    """The file's duration as its container states it; 0.0 when it does not say."""
    try:
        with _open(path) as container:
            return max(0.0, (container.duration or 0) / av.time_base)
    except InvalidArgumentError:
        return 0.0


def blocks(path: Path, block_samples: int, max_samples: int) -> Generator[np.ndarray]:
    """16 kHz mono float32 blocks of ``block_samples`` (the last one shorter).

    Raises InvalidArgumentError for what cannot be read as audio, and once the audio
    passes ``max_samples``."""
    with _open(path) as container:
        if not container.streams.audio:
            raise InvalidArgumentError(f"{path} holds no audio stream")
        yield from _blocks(path, container, block_samples, max_samples)


def _open(path: Path) -> av.container.InputContainer:
    try:
        container = av.open(
            str(path),
            mode="r",
            metadata_errors="ignore",
            options={"format_whitelist": DEMUXERS, "protocol_whitelist": "file"},
        )
    except (av.FFmpegError, ValueError, OSError) as exc:
        raise InvalidArgumentError(not_audio(path, exc)) from None
    return container


def _blocks(
    path: Path, container: av.container.InputContainer, block_samples: int, max_samples: int
) -> Iterator[np.ndarray]:
    resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
    pending: list[np.ndarray] = []
    held = total = 0
    try:
        for frame in _frames(container, resampler):
            samples = frame.to_ndarray().reshape(-1).astype(np.float32) / 32768.0
            total += samples.size
            if total > max_samples:
                raise InvalidArgumentError(
                    f"{path} is longer than [whisper] max_file_s = {max_samples // SAMPLE_RATE} s"
                )
            pending.append(samples)
            held += samples.size
            while held >= block_samples:
                joined = np.concatenate(pending)
                yield joined[:block_samples]
                pending, held = [joined[block_samples:]], joined.size - block_samples
    except av.FFmpegError as exc:
        raise InvalidArgumentError(f"{path}: cannot decode: {_reason(exc)}") from None
    if total == 0:
        raise InvalidArgumentError(f"{path} holds no audio samples")
    if held:
        yield np.concatenate(pending)


def _frames(
    container: av.container.InputContainer, resampler: av.AudioResampler
) -> Iterator[av.AudioFrame]:
    for frame in container.decode(audio=0):
        with contextlib.suppress(ValueError):  # a frame whose layout changed mid-stream
            yield from resampler.resample(frame)
    yield from resampler.resample(None)  # flush


def not_audio(path: Path, exc: Exception) -> str:
    """The message for a file FFmpeg could not open as audio."""
    # InvalidData: no format recognised; Argument (EINVAL): one recognised but not allowed.
    if isinstance(exc, (av.error.InvalidDataError, av.error.ArgumentError)):
        return (
            f"{path} is not audio v2m can read (it reads WAV, FLAC, MP3, Ogg, Opus, M4A, "
            "WebM and other audio formats)"
        )
    return f"{path} is not audio v2m can read: {_reason(exc)}"


def _reason(exc: Exception) -> str:
    """FFmpeg's message without its errno (``[Errno 1094995529]`` means nothing to users)."""
    return getattr(exc, "strerror", None) or str(exc)
