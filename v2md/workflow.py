"""The recording workflow: one explicit state machine from Start to final text.

Recording phases and the only transitions between them::

    idle ──Start──▶ recording ──Stop / silence / end of input──▶ transcribing ──▶ idle
                        └────────────Cancel──────────────────────────────────────▶ idle

Start, Stop, Toggle and Cancel are serialized by one lock, so a burst of
toggles from many clients alternates cleanly and every Stop yields exactly one
final text. The lock is held while the tail is decoded; a second Stop or a
Cancel arriving then gets Busy instead of queueing behind it.

``processing`` is what clients see while an LLM request runs and no recording
is under way; it overlays ``idle`` instead of blocking the recorder, so a new
dictation can start while Refine is still waiting for its provider.

This module knows nothing of D-Bus: it reports to a ``Listener`` and raises
the errors of ``errors.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol, TypeVar

import numpy as np

from .config import Config, validate_language
from .errors import (
    AudioDeviceError,
    BusyError,
    DeliveryError,
    HistoryError,
    InvalidArgumentError,
    InvalidStateError,
    ModelError,
    V2MError,
)
from .recordings import save_recording

if TYPE_CHECKING:
    from .audio import AudioSource
    from .delivery import Delivery
    from .history import History
    from .llm import LLMService
    from .notifications import Notifier
    from .streaming import StreamingTranscriber
    from .transcriber import WhisperWorker
    from .vad import SileroVAD

log = logging.getLogger(__name__)

SAMPLE_RATE = 16_000

T = TypeVar("T")


class State(StrEnum):
    IDLE = "idle"
    RECORDING = "recording"
    TRANSCRIBING = "transcribing"
    PROCESSING = "processing"


_TRANSITIONS: dict[State, frozenset[State]] = {
    State.IDLE: frozenset({State.RECORDING}),
    State.RECORDING: frozenset({State.TRANSCRIBING, State.IDLE}),
    State.TRANSCRIBING: frozenset({State.IDLE}),
}


class Listener(Protocol):
    """What the workflow reports; the bus layer turns these into properties and signals."""

    def state_changed(self, state: State) -> None: ...
    def speech_active_changed(self, active: bool) -> None: ...
    def transcription_updated(self, text: str, final: bool) -> None: ...
    def last_text_changed(self, text: str) -> None: ...
    def error(self, error: V2MError) -> None: ...


class _Unobserved:
    """The listener until one is attached: events before that have no audience."""

    def state_changed(self, state: State) -> None: ...
    def speech_active_changed(self, active: bool) -> None: ...
    def transcription_updated(self, text: str, final: bool) -> None: ...
    def last_text_changed(self, text: str) -> None: ...
    def error(self, error: V2MError) -> None: ...


@dataclass
class Features:
    """The parts the workflow drives; built by the daemon, replaced by fakes in unit tests."""

    worker: WhisperWorker
    open_source: Callable[[], AudioSource]
    make_stream: Callable[[], StreamingTranscriber]
    make_vad: Callable[[], SileroVAD] | None = None
    llm: LLMService | None = None
    history: History | None = None
    delivery: Delivery | None = None
    notifier: Notifier | None = None


@dataclass(eq=False)
class _Recording:
    """Everything that belongs to one recording, dropped as a whole when it ends."""

    source: AudioSource
    stream: StreamingTranscriber
    vad: SileroVAD | None
    started: float = field(default_factory=time.monotonic)
    samples: int = 0
    pump: asyncio.Task[None] | None = None
    update: asyncio.Task[None] | None = None
    last_update: float = 0.0
    overruns_reported: int = 0
    speech_active: bool = False
    decoded_pause: int | None = None  # the speech pause the latest update was started for
    ending: bool = False


class RecordingWorkflow:
    """Drives one recording at a time through the state machine above."""

    def __init__(self, cfg: Config, features: Features) -> None:
        self._cfg = cfg
        self._f = features
        self._listener: Listener = _Unobserved()
        self._lock = asyncio.Lock()
        self._phase = State.IDLE
        self._announced = State.IDLE
        self._llm_requests = 0
        self._rec: _Recording | None = None
        self._background: set[asyncio.Task[None]] = set()
        self.last_text = ""

    def attach(self, listener: Listener) -> None:
        """Report events to ``listener`` (the bus service, once it exists)."""
        self._listener = listener

    # ---- state -------------------------------------------------------------------------

    @property
    def state(self) -> State:
        if self._phase is State.IDLE and self._llm_requests:
            return State.PROCESSING
        return self._phase

    @property
    def speech_active(self) -> bool:
        return bool(self._rec and self._rec.speech_active)

    def _set_phase(self, phase: State) -> None:
        if phase is self._phase:
            return
        if phase not in _TRANSITIONS[self._phase]:
            raise RuntimeError(f"illegal transition {self._phase} -> {phase}")
        log.debug("phase %s -> %s", self._phase, phase)
        self._phase = phase
        self._announce_state()

    def _announce_state(self) -> None:
        state = self.state
        if state is not self._announced:
            self._announced = state
            self._listener.state_changed(state)

    # ---- recording -----------------------------------------------------------------------

    async def start(self) -> None:
        async with self._lock:
            await self._start_locked()

    async def stop(self) -> str:
        self._refuse_while_transcribing("Stop")
        async with self._lock:
            if self._phase is not State.RECORDING:
                raise InvalidStateError("not recording: call Start first")
            return await self._finish_locked()

    async def toggle(self) -> State:
        async with self._lock:
            if self._phase is State.RECORDING:
                await self._finish_locked()
            else:
                await self._start_locked()
            return self.state

    async def cancel(self) -> None:
        self._refuse_while_transcribing("Cancel")
        async with self._lock:
            rec = self._rec
            if self._phase is not State.RECORDING or rec is None:
                raise InvalidStateError("not recording: nothing to cancel")
            await self._close_recording(rec)
            self._set_phase(State.IDLE)
            log.info("recording cancelled after %.1f s", rec.samples / SAMPLE_RATE)

    def _refuse_while_transcribing(self, what: str) -> None:
        if self._phase is State.TRANSCRIBING:
            raise BusyError(f"{what}: the previous recording is still being transcribed")

    async def _start_locked(self) -> None:
        if self._phase is not State.IDLE:
            raise InvalidStateError(f"cannot start while {self._phase}")
        source = self._f.open_source()
        try:
            await asyncio.get_running_loop().run_in_executor(None, source.start)
        except AudioDeviceError:
            source.close()
            raise
        rec = _Recording(
            source=source,
            stream=self._f.make_stream(),
            vad=self._f.make_vad() if self._f.make_vad else None,
        )
        self._rec = rec
        rec.pump = asyncio.create_task(self._pump(rec), name="v2m-pump")
        self._set_phase(State.RECORDING)
        log.info("recording from %s", source.device_name)
        self._notify("Dictation", f"Listening ({source.device_name})…")

    async def _pump(self, rec: _Recording) -> None:
        """Move audio from the source into VAD and the streaming transcriber until it ends."""
        try:
            while (chunk := await rec.source.read()).size:
                self._feed(rec, chunk)
        except Exception as exc:  # a broken source must end the recording, not the daemon
            log.exception("audio source failed")
            self._report(AudioDeviceError(f"{rec.source.device_name}: {exc}"))
        else:
            if rec.source.error is not None:
                self._report(rec.source.error)
        if not rec.ending:
            # The source ended on its own (file finished, device gone): finish like a Stop,
            # keeping everything captured so far.
            self._spawn(self._end_on_its_own(rec, "end of input"))

    def _feed(self, rec: _Recording, chunk: np.ndarray) -> None:
        rec.samples += chunk.size
        rec.stream.append(chunk)
        self._report_overruns(rec)
        heard, paused_at = rec.vad is None, None
        if rec.vad is not None:
            rec.vad.process(chunk)
            if rec.vad.speech_active != rec.speech_active:
                rec.speech_active = rec.vad.speech_active
                self._listener.speech_active_changed(rec.speech_active)
            limit = self._cfg.vad.auto_stop_silence_ms
            if limit and not rec.ending and rec.vad.silence_after_speech_ms >= limit:
                rec.ending = True
                self._spawn(self._end_on_its_own(rec, f"{limit} ms of silence"))
            # Whisper invents words from silence, so nothing is decoded before speech was heard.
            heard_to = rec.vad.speech_bounds(padded=False)
            heard = heard_to is not None
            if heard and heard_to[1] < rec.vad.samples_seen:
                paused_at = heard_to[1]  # speech has paused, perhaps ended, here
        # Speech that pauses is decoded as soon as the worker is free, before the VAD even
        # calls it ended: a Stop that follows then finds it decoded.
        new_pause = paused_at is not None and paused_at != rec.decoded_pause
        interval = self._cfg.whisper.update_interval_ms / 1000
        due = new_pause or time.monotonic() - rec.last_update >= interval
        if heard and due and (rec.update is None or rec.update.done()):
            rec.decoded_pause = paused_at
            rec.update = asyncio.create_task(self._provisional(rec), name="v2m-update")

    def _report_overruns(self, rec: _Recording) -> None:
        dropped = rec.source.overruns - rec.overruns_reported
        if dropped > 0:
            rec.overruns_reported += dropped
            message = (
                f"{rec.source.device_name}: dropped {dropped} samples "
                f"({dropped / SAMPLE_RATE:.2f} s) because the reader fell behind"
            )
            log.warning(message)
            self._report(AudioDeviceError(message))

    async def _provisional(self, rec: _Recording) -> None:
        # Up to where the VAD last heard speech: trailing silence is not worth decoding.
        bounds = rec.vad.speech_bounds() if rec.vad is not None else None
        try:
            text = await rec.stream.update(bounds[1] if bounds else None)
        except V2MError as exc:
            log.warning("provisional decode failed: %s", exc)
            return
        finally:
            # The interval counts from the end of a decode: on a slow CPU, updates leave
            # room for capture, VAD and the final decode instead of running back to back.
            rec.last_update = time.monotonic()
        if text is not None and self._rec is rec and self._phase is State.RECORDING:
            self._listener.transcription_updated(text, False)

    async def _end_on_its_own(self, rec: _Recording, reason: str) -> None:
        async with self._lock:
            if self._rec is not rec or self._phase is not State.RECORDING:
                return  # a Stop or Cancel got there first
            log.info("recording ends: %s", reason)
            with contextlib.suppress(V2MError):  # already reported through the listener
                await self._finish_locked()

    async def _finish_locked(self) -> str:
        rec = self._rec
        assert rec is not None and self._phase is State.RECORDING
        self._set_phase(State.TRANSCRIBING)
        rec.ending = True
        try:
            stopped = time.perf_counter()
            rec.source.stop()
            if rec.pump is not None:
                await rec.pump  # drains what the ring still holds
            drained = time.perf_counter()
            if rec.update is not None:
                await rec.update  # the worker is serial; let the last update land first
            updated = time.perf_counter()
            text = await self._final_text(rec)
            log.debug(
                "stop: %.0f ms draining, %.0f ms for the update in flight, %.0f ms for the rest",
                1000 * (drained - stopped),
                1000 * (updated - drained),
                1000 * (time.perf_counter() - updated),
            )
        except Exception as exc:
            kept = await self._keep_audio(rec, f"transcription failed: {exc}")
            kind = type(exc) if isinstance(exc, V2MError) else ModelError
            error = kind(f"transcription failed ({exc}); {kept}")
            self._report(error)
            raise error from exc
        finally:
            await self._close_recording(rec)
            self._set_phase(State.IDLE)
        duration = rec.samples / SAMPLE_RATE
        await self._publish_final(text, duration)
        return text

    async def _final_text(self, rec: _Recording) -> str:
        end = None
        if rec.vad is not None:
            bounds = rec.vad.speech_bounds()
            if bounds is None:
                log.info("no speech in %.1f s of audio", rec.samples / SAMPLE_RATE)
                return ""
            # A last decode that reached the speech end heard it all: the padding after
            # it is silence, not worth a decode of its own at stop.
            speech_end = rec.vad.speech_bounds(padded=False)[1]
            end = max(speech_end, min(bounds[1], rec.stream.decoded_until))
        return (await rec.stream.finish(end)).strip()

    async def _keep_audio(self, rec: _Recording, reason: str) -> str:
        """Save the recording's audio; return a sentence saying where it went."""
        loop = asyncio.get_running_loop()
        try:
            path = await loop.run_in_executor(
                None, save_recording, rec.stream.audio, SAMPLE_RATE, reason
            )
        except OSError as exc:
            log.error("could not keep the audio (%s): %s", reason, exc)
            return f"the audio could not be kept: {exc}"
        return f"the audio is kept in {path}"

    async def _close_recording(self, rec: _Recording) -> None:
        rec.ending = True
        rec.source.stop()
        for task in (rec.pump, rec.update):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        rec.source.close()
        if rec.speech_active:
            rec.speech_active = False
            self._listener.speech_active_changed(False)
        self._rec = None

    # ---- after the final text --------------------------------------------------------------

    async def _publish_final(self, text: str, duration: float) -> None:
        """Store, announce, then deliver in the background: the history write comes first."""
        entry = None
        if self._f.history is not None and text:
            entry = await self._remember(
                lambda: self._f.history.add(
                    text,
                    duration_s=duration,
                    model=self._f.worker.model_name,
                    language=self._f.worker.language,
                )
            )
        self.last_text = text
        self._listener.last_text_changed(text)
        self._listener.transcription_updated(text, True)
        log.info("final text: %d characters from %.1f s of audio", len(text), duration)
        if text:
            self._spawn(self._deliver(text, entry))

    async def _remember(self, write: Callable[[], T]) -> T | None:
        """Run a history write off the loop. A failure is reported, not raised: the text
        still reaches the caller, LastText and the focused app."""
        try:
            return await asyncio.get_running_loop().run_in_executor(None, write)
        except HistoryError as exc:
            log.error("history not updated: %s", exc)
            self._report(exc)
            return None

    async def _deliver(self, text: str, entry: int | None) -> None:
        if self._cfg.llm.auto_refine and self._f.llm is not None:
            try:
                refined = await self._llm(self._f.llm.refine(text))
            except V2MError as exc:
                # The raw words still go out: an LLM failure never replaces what was said.
                self._report(type(exc)(f"auto-refine failed, raw text delivered: {exc}"))
            else:
                if self._f.history is not None and entry is not None:
                    await self._remember(lambda: self._f.history.set_refined(entry, refined))
                text = refined
        if self._f.delivery is not None:
            try:
                await self._f.delivery.deliver(text)
            except DeliveryError as exc:
                # The user is looking at the app, not the bus: say why nothing appeared.
                self._report(exc, summary="Dictation not typed", text=text)
                return
        self._notify("Dictation", text)

    # ---- other requests -----------------------------------------------------------------

    async def transcribe_file(self, path: str) -> str:
        """Transcribe a file on the same worker; the worker validates the path and the audio."""
        return (await self._f.worker.transcribe_file(path)).strip()

    async def refine(self, text: str) -> str:
        return await self._llm(self._require_llm().refine(text))

    async def translate(self, text: str, target_language: str) -> str:
        return await self._llm(self._require_llm().translate(text, target_language))

    def _require_llm(self) -> LLMService:
        if self._f.llm is None:
            raise InvalidStateError("LLM post-processing is not available in this daemon")
        return self._f.llm

    async def _llm(self, request: Awaitable[T]) -> T:
        self._llm_requests += 1
        self._announce_state()
        try:
            return await request
        finally:
            self._llm_requests -= 1
            self._announce_state()

    @property
    def language(self) -> str:
        return self._f.worker.language

    @language.setter
    def language(self, code: str) -> None:
        try:
            self._f.worker.language = validate_language(code)
        except ValueError as exc:
            raise InvalidArgumentError(str(exc)) from None

    # ---- telling the user ----------------------------------------------------------------

    def _report(self, error: V2MError, *, summary: str = "Dictation error", text: str = "") -> None:
        """An error outside any call: an Error signal, and a notification that stays."""
        self._listener.error(error)
        self._notify(summary, f"{error}\n\n{text}" if text else str(error), alert=True)

    def _notify(self, summary: str, body: str, *, alert: bool = False) -> None:
        """A desktop notification, sent in the background: it never holds up a call."""
        if self._f.notifier is not None:
            show = self._f.notifier.alert if alert else self._f.notifier.notify
            self._spawn(show(summary, body))

    # ---- lifetime ---------------------------------------------------------------------------

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def shutdown(self) -> None:
        """Stop cleanly: a recording in progress is kept as a WAV, never thrown away."""
        rec = self._rec
        if rec is not None and self._phase is State.RECORDING:
            rec.ending = True
            rec.source.stop()
            if rec.pump is not None:
                with contextlib.suppress(Exception):
                    await rec.pump
            log.warning("stopped while recording: %s", await self._keep_audio(rec, "shutdown"))
            await self._close_recording(rec)
        for task in list(self._background):
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(task, timeout=5)
