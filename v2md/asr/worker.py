"""The warm Whisper worker: its models and inference threads, loaded once and kept ready.

Every decode runs on an inference thread of the worker's, so the event loop never
waits on inference. Final text (a dictation's, and files') is decoded on one thread,
live text on another (``[whisper] parallel_decodes``, the default): on two cores or
more a final decode never waits behind a live one, and a Stop's decode starts at
once. Jobs on a thread wait by priority, then arrival: the final text a person is
waiting for goes first, provisional text next (where one thread runs both), and a
file last. A file is decoded one 30 s window per job, so a dictation never waits
behind a whole file, only behind the window in progress (the thread is
``scheduler.InferenceThread``, the file's pieces come from ``filedecode.decode_file``).

Final text may come from a model of its own (``[whisper] final_model``, e.g. tiny.en
live and base final) and with beam search (``[whisper] beam_size``); live text is
always decoded greedily by ``[whisper] model``. Both models load together and unload
together. The worker
unloads the models under memory pressure (or after an optional idle time) and
reloads them on the next use; each state change is reported through ``on_state``
on the event loop thread. A model that is not on this machine is downloaded first
(state ``downloading``), and how much of it has arrived goes to ``on_download``; the
worker also fetches, lists and removes models for the daemon's model methods.

An idle daemon must not wake periodically, so nothing polls: memory is checked
after each use, the idle timer is armed only after a use, and while idle the
kernel's memory-stall notification (Linux PSI trigger) prompts a check.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import os
import select
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import threadpoolctl

from v2md.asr import downloads, models
from v2md.asr.filedecode import check_audio, decode_file
from v2md.asr.scheduler import InferenceThread, Priority
from v2md.asr.types import DecodeOptions, ModelState, Word
from v2md.audio.format import SAMPLE_RATE
from v2md.config import WhisperConfig, is_english_only
from v2md.errors import BusyError, InvalidArgumentError, InvalidStateError, ModelError
from v2md.languages import check_language_for_model, validate_language

log = logging.getLogger(__name__)

PSI_MEMORY = "/proc/pressure/memory"
# Some task stalled on memory for 100 ms within 2 s: worth a look at psutil's figure.
# (2 s is the shortest window unprivileged processes may ask for.)
PSI_TRIGGER = b"some 100000 2000000\0"
# Silence the decoder sees after the audio in a shortened window. Without enough, it
# runs on past the speech, repeating it in words stamped at one instant: over 184
# streaming decodes of espeak speech, 573 such words with 0.5 s, 191 with 2 s.
WINDOW_MARGIN_S = 2.0
# Speech a dictation's final decode must have for the language it heard to be kept for the
# rest of the dictation: a word or two is too little to tell a language by.
KEEP_LANGUAGE_AFTER_S = 2.0


def system_memory_percent() -> float:
    return psutil.virtual_memory().percent


class WhisperWorker:
    """Owns the Whisper model and serialises all inference on one thread."""

    def __init__(
        self,
        cfg: WhisperConfig,
        on_state: Callable[[ModelState, str], None] | None = None,
        *,
        on_download: Callable[[float], None] | None = None,
        on_language: Callable[[str], None] | None = None,
        bias: Callable[[str], str] | None = None,
        memory_percent: Callable[[], float] = system_memory_percent,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._cfg = cfg
        self._spec = models.resolve(cfg)
        # The model of final text where it is not the live one; None: the live one.
        final = cfg.final_model.strip()
        self._final_spec = (
            models.resolve(cfg, final) if final and final != cfg.model.strip() else None
        )
        self._on_state = on_state
        self._on_download = on_download or (lambda _fraction: None)
        self._downloading: str | None = None  # the model being downloaded, one at a time
        self._on_language = on_language or (lambda _code: None)
        # What the decoder is told before complete speech besides [whisper] initial_prompt
        # (spoken-command words, the user's vocabulary), asked at each decode: a word added
        # applies to the next one.
        self._bias = bias or (lambda _language: "")
        self._memory_percent = memory_percent
        self._clock = clock
        self._inference = InferenceThread()  # final text, files, loading
        # Live text: a thread of its own where decodes run side by side.
        self._live = InferenceThread("whisper-live") if cfg.parallel_decodes else self._inference
        self._model: models.WindowedWhisperModel | None = None
        self._final_model: models.WindowedWhisperModel | None = None  # None: self._model
        self._threads = cfg.cpu_threads or decode_threads(cfg.parallel_decodes)
        # The decodes' own threads are the parallelism. numpy's OpenBLAS (faster-whisper's
        # mel spectrogram) kept a thread per core beside them that spins after each call:
        # through the daemon, a third of a dictation's CPU (audiobook 60 s: 0.34 -> 0.20 s
        # per audio second with one; benchmarks/README.md).
        threadpoolctl.threadpool_limits(1, user_api="blas")
        self._load_lock = asyncio.Lock()
        self._in_flight = 0
        self._last_used = clock()
        self._idle_timer: asyncio.TimerHandle | None = None
        self._stall_watch: Callable[[], None] | None = None
        self._language = cfg.language
        self._dictating = False
        self._heard: str | None = None  # the language of the dictation in progress, once heard
        self.model_name = self._spec.display_name
        if self._final_spec is not None:
            self.model_name += f", final text {self._final_spec.display_name}"
        self.state = ModelState.UNLOADED

    @property
    def language(self) -> str:
        return self._language

    @language.setter
    def language(self, code: str) -> None:
        try:
            code = validate_language(code)
            check_language_for_model(code, english_only=self.english_only)
        except ValueError as exc:
            raise InvalidArgumentError(str(exc)) from None
        self._language = code

    @property
    def english_only(self) -> bool:
        """Whether the model knows English only: the loaded model says; before, its name."""
        if self._model is not None:
            held = [m for m in (self._model, self._final_model) if m is not None]
            return any(not m.model.is_multilingual for m in held)
        return any(is_english_only(m) for m in (self._cfg.model, self._cfg.final_model) if m)

    def _set_state(self, state: ModelState, detail: str) -> None:
        if state == self.state:
            return
        self.state = state
        log.info("model %s: %s (%s)", self.model_name, state, detail)
        if self._on_state is not None:
            self._on_state(state, detail)

    async def load(self) -> None:
        """Load the model in the background executor; ModelError (state FAILED) if it cannot."""
        async with self._load_lock:
            if self._model is not None:
                return
            # The log line and systemd's status name the model and state already.
            self._set_state(ModelState.LOADING, f"on {self._spec.device}/{self._spec.compute_type}")
            started = time.perf_counter()
            arrived = _on_loop(self._load_download_progress)
            # One model making both texts serves two decodes at once where they run side by
            # side (the weights are shared); a final model of its own serves final text.
            shared = self._final_spec is None and self._live is not self._inference
            try:
                model = await self._inference.submit(
                    Priority.FINAL,
                    lambda: models.load(
                        self._spec, self._threads, arrived, workers=2 if shared else 1
                    ),
                )
                final_spec = self._final_spec
                if final_spec is not None:
                    self._final_model = await self._inference.submit(
                        Priority.FINAL,
                        lambda: models.load(final_spec, self._threads, arrived),
                    )
                self._model = model
            except ModelError as exc:
                self._final_model = None
                self._set_state(ModelState.FAILED, str(exc))
                raise
            finally:
                if self._downloading == self._spec.source:
                    self._downloading = None
            self._last_used = self._clock()
            self._set_state(
                ModelState.READY,
                f"on {self._model.model.device}/{self._model.model.compute_type}, "
                f"loaded in {time.perf_counter() - started:.1f} s",
            )
            self._arm_idle_timer()
            if self._stall_watch is None:
                self._stall_watch = watch_memory_stalls(self.maintain)

    def _load_download_progress(self, fraction: float) -> None:
        """The model being loaded is not on this machine: it is downloading, then loading."""
        if fraction < 1.0:
            self._downloading = self._spec.source
            self._set_state(ModelState.DOWNLOADING, f"fetching {self._spec.source}")
        else:
            self._set_state(ModelState.LOADING, "downloaded")
        self._on_download(fraction)

    async def pull_model(self, name: str) -> str:
        """Download a model into the cache (what it lacks of it); return its directory.

        The model in use stays as it is, whether this works or fails."""
        if self._downloading is not None:
            raise BusyError(f"Whisper model {self._downloading!r} is downloading: wait for it")
        self._downloading = name
        try:
            path = await asyncio.get_running_loop().run_in_executor(
                None, downloads.pull, name, _on_loop(self._on_download)
            )
        finally:
            self._downloading = None
        return str(path)

    async def list_models(self) -> list[downloads.LocalModel]:
        """The models that load without a download: bundled and cached."""
        return await asyncio.get_running_loop().run_in_executor(None, models.available)

    async def remove_model(self, name: str) -> int:
        """Delete a model from the download cache; return the bytes freed. The configured
        model and one downloading are refused: the daemon would fetch it again."""
        # By name first: the configured model may be bundled (tiny.en) or a directory.
        for key, spec in (("model", self._spec), ("final_model", self._final_spec)):
            if spec is None:
                continue
            configured = name == getattr(self._cfg, key).strip()
            repo = None if configured else downloads.repo_id(name)
            if configured or (not spec.local and downloads.repo_id(spec.source) == repo):
                raise InvalidStateError(
                    f"Whisper model {name!r} is the one in use ([whisper] {key} = "
                    f"{getattr(self._cfg, key)!r}): set another model and restart v2md before "
                    "removing it"
                )
        repo = downloads.repo_id(name)
        if self._downloading is not None and downloads.repo_id(self._downloading) == repo:
            raise BusyError(f"Whisper model {name!r} is downloading: wait for it")
        return await asyncio.get_running_loop().run_in_executor(None, downloads.remove, name)

    async def transcribe(
        self, audio: np.ndarray, *, prompt: str = "", window_s: float | None = None
    ) -> list[Word]:
        """Decode 16 kHz mono float32 audio into words.

        ``prompt`` is prior text for context (appended to the configured
        initial prompt). ``window_s`` shortens the encoder window to at least that
        many seconds, always covering the audio plus a margin, and decodes that one
        window (a streaming tail); None keeps 30 s windows, as many as the audio needs.
        """
        audio = check_audio(audio)
        if audio.size == 0:
            return []
        frames = models.window_frames(window_s, audio.size, WINDOW_MARGIN_S)
        initial_prompt = " ".join(p for p in (self._cfg.initial_prompt, prompt.strip()) if p)
        # Greedy only: temperature fallback re-decodes cut-off audio up to five more
        # times (measured: 13 s for one 3 s tail) and samples words out of silence.
        # No 4-token sequence twice: a decode that runs past the speech repeats it until
        # the token budget ends (191 such words in 184 decodes of espeak speech, 69 with).
        options = DecodeOptions(
            beam_size=1,  # live text is greedy: [whisper] beam_size is for final text
            language=self._decode_language(dictation=True),
            initial_prompt=initial_prompt or None,
            hotwords=self._cfg.hotwords or None,
            word_timestamps=True,
            vad_filter=False,
            temperature=0.0,
            max_new_tokens=_token_budget(audio.size / SAMPLE_RATE),
            no_repeat_ngram_size=4,
        )
        # One window: faster-whisper would go on to a second from the last word's end to
        # the audio's, the half-heard edge the next update decodes anyway. Measured on the
        # accuracy test's streaming: 85% of decodes did, for 24% of the CPU and no word.
        windows = 1 if window_s is not None else None
        segments = await self._run(
            Priority.LIVE,
            lambda model: model.segments(audio, frames, windows, options),
            final=False,
        )
        words = [
            Word(float(w.start), float(w.end), w.word) for seg in segments for w in seg.words or ()
        ]
        return _before_runaway(words)

    def dictating(self) -> Callable[[], None]:
        """A dictation begins; call the result when it ends. Meanwhile file transcription
        waits, so a dictation's decodes never wait behind a file window (measured: Stop took
        up to 6.2 s during a long TranscribeFile when file windows ran between them). Where
        Language is auto, the language the dictation's first final decode of at least
        KEEP_LANGUAGE_AFTER_S heard is kept for the rest of it: detecting it runs a full 30 s
        encoder window at every decode (base on Spanish speech: Stop 2.0 s after the last
        word, 1.3 s for the last utterance alone; benchmarks/README.md)."""
        release_files = self._inference.hold_files()
        self._dictating, self._heard = True, None

        def end() -> None:
            self._dictating, self._heard = False, None
            release_files()

        return end

    async def transcribe_speech(self, audio: np.ndarray, *, in_speech: bool = False) -> str:
        """Decode complete speech the way a file is decoded (long silences skipped), in one
        job of the highest priority. The final text of a dictation comes from here, as
        accurate as one batch decode; the language it was decoded in goes to
        ``on_language``. ``in_speech``: the audio ends in mid speech (a confirmation,
        whose words after the last pause are not kept), so it is decoded at temperature 0
        only: its cut last word sent faster-whisper up its fallback ladder, each step a
        decode again (base, Spanish prompts: a 9 s confirmation took 1.3-2.6 s, not 0.6,
        and a Stop waited for it).

        Speech that fits one window is decoded in an encoder window cut to the speech plus
        WINDOW_MARGIN_S, with a token budget from its length: the encoder's cost falls with
        its input, and the final pass decodes short stretches, so a Stop right after the
        last word waits for a short window instead of a 30 s one (measured on recorded
        speech: the same words, in about half the time; benchmarks/README.md). Longer
        speech goes in 30 s windows, as many as it needs."""
        audio = check_audio(audio)
        if audio.size == 0:
            return ""
        seconds = audio.size / SAMPLE_RATE
        frames = models.window_frames(0.0, audio.size, WINDOW_MARGIN_S)
        fallback = not in_speech
        if frames < models.FULL_WINDOW_FRAMES:
            options = self._file_options(
                max_new_tokens=_token_budget(seconds), dictation=True, fallback=fallback
            )

            def decode(model: models.WindowedWhisperModel) -> tuple[list[str], str]:
                found = model.segments(audio, frames, None, options)
                return [segment.text for segment in found], model.language

        else:
            options = self._file_options(dictation=True, fallback=fallback)

            def decode(model: models.WindowedWhisperModel) -> tuple[list[str], str]:
                return [text for text, _end in model.windows(audio, options)], model.language

        texts, language = await self._run(Priority.FINAL, decode)
        self._on_language(language)  # detected, where Language is auto
        if self._dictating and self._heard is None and seconds >= KEEP_LANGUAGE_AFTER_S:
            self._heard = language
        return "".join(texts).strip()

    async def transcribe_file(
        self, path: str | Path, on_progress: Callable[[float], None] | None = None
    ) -> str:
        """Transcribe an audio file, read and decoded a block at a time.

        Each 30 s window is an inference job of its own, so a dictation's decodes run
        between them; memory stays that of one block whatever the file's length.
        ``on_progress`` hears how much of the file is decoded (see ``FileProgress``)."""
        return await decode_file(
            path, self._cfg.max_file_s, self.transcribe_file_piece, on_progress
        )

    async def transcribe_file_piece(self, audio: np.ndarray, at: Callable[[float], None]) -> str:
        """One piece of a file, set up as one job and decoded a window per job, each at file
        priority; ``at`` hears how far into the piece each segment ends, in seconds."""
        options = self._file_options()
        steps = await self._run(Priority.FILE, lambda model: model.windows(audio, options))
        step = partial(next, steps, None)
        pieces = []
        while (found := await self._run(Priority.FILE, lambda _model: step())) is not None:
            text, end_s = found
            pieces.append(text)
            at(end_s)
        return "".join(pieces).strip()

    def _file_options(
        self,
        max_new_tokens: int | None = None,
        *,
        dictation: bool = False,
        fallback: bool = True,
    ) -> DecodeOptions:
        """Options for complete speech, a file's or (``dictation``) a dictation's final
        text: long silences skipped by faster-whisper's VAD; with ``fallback``,
        faster-whisper's temperature fallback, else temperature 0 only."""
        prompt = " ".join(p for p in (self._cfg.initial_prompt, self._bias(self._language)) if p)
        return DecodeOptions(
            beam_size=self._cfg.beam_size,  # final text's; live decodes are greedy
            language=self._decode_language(dictation=dictation),
            initial_prompt=prompt or None,
            hotwords=self._cfg.hotwords or None,
            word_timestamps=False,
            vad_filter=True,
            max_new_tokens=max_new_tokens,
            temperature=None if fallback else 0.0,
        )

    def _decode_language(self, *, dictation: bool = False) -> str | None:
        """The language to decode in; None where it is to be detected. A dictation's
        decodes keep the language it was heard in (see ``dictating``); a file's detect
        their own."""
        language: str | None = None if self._language == "auto" else self._language
        if language is None and dictation:
            language = self._heard
        if language is None and self._final_spec is not None and self.english_only:
            # An English-only live model beside a multilingual final one (tiny.en, base):
            # the speech is English, and detecting it would cost each final decode a full
            # 30 s window on top of its cut one.
            language = "en"
        return language

    async def _run(
        self,
        priority: Priority,
        fn: Callable[[models.WindowedWhisperModel], Any],
        *,
        final: bool = True,
    ) -> Any:
        """Run ``fn(model)`` on its inference thread, loading the models first if needed:
        the final text's model and thread, or (``final=False``) live text's."""
        if self._model is None:
            await self.load()
        # Held by the job: an unload meanwhile cannot free it mid-decode.
        model = (self._final_model or self._model) if final else self._model
        assert model is not None  # load() sets it or raises
        lane = self._inference if final else self._live
        self._in_flight += 1
        self._disarm_idle_timer()
        try:
            started = time.perf_counter()
            result = await lane.submit(priority, lambda: fn(model))
            log.debug(
                "%s job done in %.0f ms",
                priority.name.lower(),
                1000 * (time.perf_counter() - started),
            )
            return result
        except Exception as exc:
            raise ModelError(f"Whisper decoding failed: {exc}") from exc
        finally:
            self._in_flight -= 1
            self._last_used = self._clock()
            self.maintain()
            self._arm_idle_timer()

    def maintain(self) -> None:
        """Unload the model if memory is short or it has been idle too long.

        Runs after every use and on memory-stall notifications; callers may add more.
        """
        if self._model is None or self._in_flight:
            return
        percent = self._memory_percent()
        if percent >= self._cfg.memory_threshold_percent:
            self._unload(
                f"system memory at {percent:.0f}% (threshold "
                f"{self._cfg.memory_threshold_percent:.0f}%); reloads on next use"
            )
            return
        idle = self._clock() - self._last_used
        if self._cfg.idle_unload_s and idle >= self._cfg.idle_unload_s:
            self._unload(f"idle for {idle:.0f} s; reloads on next use")

    def _unload(self, reason: str) -> None:
        log.warning("unloading model %s: %s", self.model_name, reason)
        self._model = self._final_model = None
        self._disarm_idle_timer()
        self._set_state(ModelState.UNLOADED, reason)

    def _arm_idle_timer(self) -> None:
        """One timer per idle stretch, only when idle unload is configured and a model is held."""
        self._disarm_idle_timer()
        if self._cfg.idle_unload_s and self._model is not None and not self._in_flight:
            self._idle_timer = asyncio.get_running_loop().call_later(
                self._cfg.idle_unload_s, self._idle_expired
            )

    def _idle_expired(self) -> None:
        # Any use cancels the timer: firing means a full idle_unload_s without one.
        self._idle_timer = None
        if self._model is not None and not self._in_flight:
            self._unload(f"idle for {self._cfg.idle_unload_s} s; reloads on next use")

    def _disarm_idle_timer(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None

    async def close(self) -> None:
        """Stop watching, drop the model and let the inference thread finish."""
        self._disarm_idle_timer()
        if self._stall_watch is not None:
            self._stall_watch()
            self._stall_watch = None
        self._model = self._final_model = None
        loop = asyncio.get_running_loop()
        if self._live is not self._inference:
            await loop.run_in_executor(None, self._live.close)
        await loop.run_in_executor(None, self._inference.close)
        if self.state != ModelState.FAILED:
            self._set_state(ModelState.UNLOADED, "worker closed")


def decode_threads(parallel: bool, cores: int | None = None) -> int:
    """Inference threads per decode where ``[whisper] cpu_threads`` is 0: with decodes side
    by side, half the cores each, so that a live and a final decode together fit them (on
    two cores a thread each: measured through the daemon, Stop 0.3 s after the last word
    of the audiobook took 82 ms with one, 192 ms with two, for 11 % less CPU; one tiny.en
    decode gains little from a second thread there); in turn, 0: CTranslate2's choice."""
    if not parallel:
        return 0
    if cores is None:
        cores = len(os.sched_getaffinity(0))
    return max(1, cores // 2)


def _on_loop(fn: Callable[[float], None]) -> Callable[[float], None]:
    """``fn`` called on the running event loop, whichever thread calls the result."""
    loop = asyncio.get_running_loop()

    def call(value: float) -> None:
        loop.call_soon_threadsafe(fn, value)

    return call


def watch_memory_stalls(callback: Callable[[], None]) -> Callable[[], None] | None:
    """Call ``callback`` on the event loop when the kernel reports memory stalls.

    A PSI trigger signals POLLPRI, which asyncio's selector does not watch, so
    the trigger sits in an epoll set of its own whose descriptor the loop reads.
    Returns a function that stops watching, or None where PSI is unavailable
    (then memory is only checked after each use).
    """
    try:
        fd = os.open(PSI_MEMORY, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        log.debug("no memory-stall notifications (%s): checking memory after each use", exc)
        return None
    try:
        os.write(fd, PSI_TRIGGER)
        stalls = select.epoll()
        stalls.register(fd, select.EPOLLPRI)
    except OSError as exc:
        os.close(fd)
        log.debug("no memory-stall notifications (%s): checking memory after each use", exc)
        return None
    loop = asyncio.get_running_loop()

    def on_stall() -> None:
        stalls.poll(0)  # consume the event
        callback()

    loop.add_reader(stalls.fileno(), on_stall)

    def stop() -> None:
        loop.remove_reader(stalls.fileno())
        stalls.close()
        os.close(fd)

    return stop


def _before_runaway(words: list[Word]) -> list[Word]:
    """The words before the decoder ran on past the audio: words it adds there get no
    time of their own, so two zero-length words in a row mark where that began."""
    for index, (word, after) in enumerate(itertools.pairwise(words)):
        if word.end <= word.start and after.end <= after.start:
            return words[:index]
    return words


def _token_budget(seconds: float) -> int:
    """Tokens one 30 s window of this audio can plausibly need; stops repetition loops early."""
    return min(200, 16 + math.ceil(8 * min(seconds, 30.0)))
