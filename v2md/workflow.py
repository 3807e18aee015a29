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

Everything that belongs to one recording, from capture to final text, lives in a
``Session`` (``session.py``); this module keeps the state machine, publishing and
delivery. It knows nothing of D-Bus: it reports to ``parts.Events`` and raises the
errors of ``errors.py``. It drives the parts through the Protocols of ``parts.py``,
so that the daemon's parts and the tests' fakes are held to the same shape.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import TYPE_CHECKING, TypeVar

from v2md.audio import journal
from v2md.config import Config
from v2md.errors import (
    BusyError,
    DeliveryError,
    HistoryError,
    InvalidArgumentError,
    InvalidStateError,
    ModelError,
    V2MError,
)
from v2md.parts import (
    Archive,
    Events,
    Features,
    Listener,
    Session,
    TextService,
)

if TYPE_CHECKING:
    from v2md.asr.downloads import LocalModel
    from v2md.asr.types import ModelState
    from v2md.text import TextRules
    from v2md.text.vocabulary import Vocabulary

log = logging.getLogger(__name__)

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


class _SessionEvents:
    """Forwards what one session reports, for as long as it is the current one."""

    def __init__(self, workflow: RecordingWorkflow) -> None:
        self._wf = workflow
        self.session: Session | None = None

    def _current(self) -> bool:
        return self.session is not None and self._wf._session is self.session

    def speech_active_changed(self, active: bool) -> None:
        if self._current():
            self._wf.events.speech_active_changed(active)

    def provisional_text(self, text: str) -> None:
        if self._current() and self._wf._phase is State.RECORDING:
            self._wf.events.transcription_updated(self._wf._shaped(text), False)

    def error(self, error: V2MError) -> None:
        self._wf.report(error)

    def ended(self, reason: str) -> None:
        if self.session is not None:
            self._wf._spawn(self._wf._end_on_its_own(self.session, reason))


class _LanguageHeard(Listener):
    """Spoken commands follow the language the worker last heard (where Language is auto)."""

    def __init__(self, text: TextRules) -> None:
        self._text = text

    def language_detected(self, code: str) -> None:
        self._text.language_heard(code)


class RecordingWorkflow:
    """Drives one recording at a time through the state machine above."""

    def __init__(self, cfg: Config, features: Features, events: Events | None = None) -> None:
        self._cfg = cfg
        self._f = features
        # The daemon passes the Events its other parts report to, so that all share one road.
        self.events = events if events is not None else Events()
        if features.text is not None:
            self.events.attach(_LanguageHeard(features.text))
        self._lock = asyncio.Lock()
        self._phase = State.IDLE
        self._announced = State.IDLE
        self._llm_requests = 0
        self._session: Session | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._delivered: asyncio.Future[None] | None = None  # the latest text's delivery
        self.last_text = ""

    def attach(self, listener: Listener) -> None:
        """Report events to ``listener`` (the bus service, once it exists)."""
        self.events.attach(listener)

    # ---- state -------------------------------------------------------------------------

    @property
    def state(self) -> State:
        if self._phase is State.IDLE and self._llm_requests:
            return State.PROCESSING
        return self._phase

    @property
    def speech_active(self) -> bool:
        return bool(self._session and self._session.speech_active)

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
            self.events.state_changed(state)

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
            session = self._session
            if self._phase is not State.RECORDING or session is None:
                raise InvalidStateError("not recording: nothing to cancel")
            self._session = None
            await session.cancel()
            self._set_phase(State.IDLE)
            log.info("recording cancelled after %.1f s", session.duration_s)

    def _refuse_while_transcribing(self, what: str) -> None:
        if self._phase is State.TRANSCRIBING:
            raise BusyError(f"{what}: the previous recording is still being transcribed")

    async def _start_locked(self) -> None:
        if self._phase is not State.IDLE:
            raise InvalidStateError(f"cannot start while {self._phase}")
        events = _SessionEvents(self)
        session = events.session = self._f.open_session(events)
        await session.start()
        self._session = session
        self._set_phase(State.RECORDING)
        log.info("recording from %s", session.device_name)
        self._notify("Dictation", f"Listening ({session.device_name})…")

    async def _end_on_its_own(self, session: Session, reason: str) -> None:
        async with self._lock:
            if self._session is not session or self._phase is not State.RECORDING:
                return  # a Stop or Cancel got there first
            log.info("recording ends: %s", reason)
            with contextlib.suppress(V2MError):  # already reported through the listener
                await self._finish_locked()

    async def _finish_locked(self) -> str:
        session = self._session
        assert session is not None and self._phase is State.RECORDING
        self._set_phase(State.TRANSCRIBING)
        try:
            text = self._shaped(await session.finish())
        except Exception as exc:
            kept = await self._rescue(session, f"transcription failed: {exc}")
            kind = type(exc) if isinstance(exc, V2MError) else ModelError
            error = kind(f"transcription failed ({exc}); {kept}")
            self.report(error)
            raise error from exc
        finally:
            self._session = None
            self._set_phase(State.IDLE)
        await self._publish_final(text, session.duration_s)
        session.discard_capture()  # the text is stored: a crash from here on loses nothing
        return text

    async def _rescue(self, session: Session, reason: str) -> str:
        """A recording that gets no final text: keep its audio as a WAV and the text of what
        was already final in the history; return a sentence saying where they went."""
        kept = await session.keep_audio(reason)
        await session.cancel()
        if await self._store(self._shaped(session.settled_text), session.duration_s) is not None:
            kept += "; the text before it is in the history"
        return kept

    # ---- after the final text --------------------------------------------------------------

    async def _publish_final(self, text: str, duration: float) -> None:
        """Store, announce, then deliver in the background: the history write comes first."""
        entry = await self._store(text, duration)
        self.last_text = text
        self.events.last_text_changed(text)
        self.events.transcription_updated(text, True)
        log.info("final text: %d characters from %.1f s of audio", len(text), duration)
        if text:
            self._spawn(self._deliver(text, entry))

    async def _store(self, text: str, duration: float, *, recovered: bool = False) -> int | None:
        """Add a final text to the history; its entry, or None if there is none."""
        history = self._f.history
        if history is None or not text:
            return None
        return await self._remember(
            lambda: history.add(
                text,
                duration_s=duration,
                model=self._f.worker.model_name,
                language=self._f.worker.language,
                recovered=recovered,
            )
        )

    async def _remember(self, write: Callable[[], T]) -> T | None:
        """Run a history write off the loop. A failure is reported, not raised: the text
        still reaches the caller, LastText and the focused app."""
        try:
            return await asyncio.get_running_loop().run_in_executor(None, write)
        except HistoryError as exc:
            log.error("history not updated: %s", exc)
            self.report(exc)
            return None

    async def _deliver(self, text: str, entry: int | None) -> None:
        """Refine (if configured) and deliver. Refines may run side by side, but texts
        reach the focused app in the order they were dictated."""
        previous, self._delivered = self._delivered, asyncio.get_running_loop().create_future()
        done = self._delivered
        try:
            text = await self._refined(text, entry)
            if previous is not None:
                await previous
            if self._f.delivery is not None:
                try:
                    await self._f.delivery.deliver(text)
                except DeliveryError as exc:
                    # The user is looking at the app, not the bus: say why nothing appeared.
                    self.report(exc, summary="Dictation not typed", text=text)
                    return
            self._notify("Dictation", text)
        finally:
            done.set_result(None)

    async def _refined(self, text: str, entry: int | None) -> str:
        if not (self._cfg.llm.auto_refine and self._f.llm is not None):
            return text
        try:
            refined = await self._llm(self._f.llm.refine(text))
        except V2MError as exc:
            # The raw words still go out: an LLM failure never replaces what was said.
            self.report(type(exc)(f"auto-refine failed, raw text delivered: {exc}"))
            return text
        history = self._f.history
        if history is not None and entry is not None:
            await self._remember(lambda: history.set_refined(entry, refined))
        return refined

    # ---- after a crash ----------------------------------------------------------------------

    async def recover(self) -> None:
        """Dictations a dead daemon was capturing (``journal.py``): each is transcribed into
        the history, marked as recovered, and said once, in a notification and the log."""
        loop = asyncio.get_running_loop()
        for orphan in await loop.run_in_executor(None, journal.orphans):
            await self._recover(orphan)

    async def _recover(self, orphan: journal.Orphan) -> None:
        when = time.strftime("%H:%M on %d %b", time.localtime(orphan.written_at))
        what = f"{orphan.duration_s:.0f} s of dictation captured when v2md stopped at {when}"
        try:
            text = self._shaped(await self._f.worker.transcribe_file(str(orphan.path)))
        except V2MError as exc:
            kept = await self._keep(orphan)
            self.report(type(exc)(f"{what} could not be transcribed ({exc}); {kept}"))
            return
        if not text:
            log.info("%s hold no speech; %s deleted", what, orphan.path)
            await asyncio.get_running_loop().run_in_executor(None, orphan.path.unlink)
            return
        entry = await self._store(text, orphan.duration_s, recovered=True)
        if entry is None:  # no history: the notification is where the text is
            kept = await self._keep(orphan)
        else:
            await asyncio.get_running_loop().run_in_executor(None, orphan.path.unlink)
            kept = f"its text is in the history, marked as recovered (entry {entry})"
        log.warning("recovered %s: %s", what, kept)
        self._notify("Dictation recovered", f"{what}; {kept}:\n\n{text}", alert=True)

    async def _keep(self, orphan: journal.Orphan) -> str:
        try:
            path = await asyncio.get_running_loop().run_in_executor(None, journal.keep, orphan)
        except OSError as exc:
            return f"its audio stays in {orphan.path} ({exc})"
        return f"its audio is kept in {path}"

    # ---- other requests -----------------------------------------------------------------

    async def transcribe_file(
        self, path: str, on_progress: Callable[[float], None] | None = None
    ) -> str:
        """Transcribe a file on the same worker; the worker validates the path and the audio
        and tells ``on_progress`` the fraction decoded."""
        text = await self._f.worker.transcribe_file(path, on_progress)
        # Off the loop: near misses of a long vocabulary over an hour's text take seconds.
        return await asyncio.to_thread(self._shaped, text)

    def _shaped(self, text: str) -> str:
        """Decoded text as the user gets it: spoken commands carried out."""
        if self._f.text is not None:
            text = self._f.text.final(text, self._f.worker.language)
        return text.strip()

    async def pull_model(self, name: str) -> str:
        """Download a Whisper model into the cache; the worker reports how much arrived."""
        return await self._f.worker.pull_model(_model_name(name))

    async def list_models(self) -> list[LocalModel]:
        return await self._f.worker.list_models()

    async def remove_model(self, name: str) -> int:
        return await self._f.worker.remove_model(_model_name(name))

    async def refine(self, text: str) -> str:
        return await self._llm(self._require_llm().refine(text))

    async def translate(self, text: str, target_language: str) -> str:
        return await self._llm(self._require_llm().translate(text, target_language))

    @property
    def model_name(self) -> str:
        return self._f.worker.model_name

    @property
    def model_state(self) -> ModelState:
        return self._f.worker.state

    async def history(self, limit: int) -> list[tuple[int, str, str]]:
        """The latest ``limit`` final texts, newest first: (entry, time, text)."""
        history = self._require_history()
        return await asyncio.get_running_loop().run_in_executor(None, history.recent, limit)

    async def clear_history(self) -> int:
        history = self._require_history()
        return await asyncio.get_running_loop().run_in_executor(None, history.clear)

    async def list_devices(self) -> list[str]:
        if self._f.list_devices is None:
            return []
        return await asyncio.get_running_loop().run_in_executor(None, self._f.list_devices)

    @property
    def vocabulary(self) -> Vocabulary:
        """The user's words and replacements; a change applies to the next decode."""
        if self._f.text is None:
            raise InvalidStateError("this daemon has no vocabulary")
        return self._f.text.vocabulary

    def _require_history(self) -> Archive:
        if self._f.history is None:
            raise HistoryError("the history could not be opened when v2md started (see its log)")
        return self._f.history

    def _require_llm(self) -> TextService:
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
        self._f.worker.language = code  # the worker validates it: InvalidArgumentError

    # ---- telling the user ----------------------------------------------------------------

    def report(self, error: V2MError, *, summary: str = "Dictation error", text: str = "") -> None:
        """An error outside any call (of a dictation, or of a shortcut's action): an Error
        signal, and a notification that stays."""
        self.events.error(error)
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

    async def idle(self) -> None:
        """Return once the work running in the background is done: deliveries, refines,
        notifications, and finishing a recording whose source has reported its end. For a
        caller that must see their effects (a test), instead of guessing how long they take."""
        while self._background:  # a task may start another before it ends
            await asyncio.wait(set(self._background))

    async def shutdown(self) -> None:
        """Stop cleanly: a recording in progress is kept as a WAV, never thrown away."""
        session = self._session
        if session is not None and self._phase is State.RECORDING:
            self._session = None
            log.warning("stopped while recording: %s", await self._rescue(session, "shutdown"))
        for task in list(self._background):
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(task, timeout=5)


def _model_name(name: str) -> str:
    """A model name as a caller typed it, trimmed; an empty one is refused."""
    name = name.strip()
    if not name:
        raise InvalidArgumentError("give a Whisper model name, e.g. 'base', or a repository id")
    return name
