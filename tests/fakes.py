"""The unit tests' one kit of in-memory fakes: one per contract of v2md, each configurable.

The contracts are v2md's Protocols, and the type checker holds each fake to its own (the
``TYPE_CHECKING`` block at the end; ``python3 -m mypy`` checks this module strictly):

==================  ==============================================================
FakeSource          ``audio.capture.AudioSource``: chunks fed in, then the end
FakeVAD             ``session.VoiceDetector``: speech while samples are non-zero
FakeStream          ``session.Provisional``: live text that counts what it heard
FakeWorker          ``workflow.Worker``, ``asr.finalpass.SpeechDecoder`` and
                    ``asr.streaming.WordDecoder``: the speech-to-text worker
FakeSessionEvents   ``session.SessionEvents``: what a live session reported
FakeListener        ``workflow.Listener``: what the workflow reported
FakeLLM             ``workflow.TextService``: Refine and Translate
FakeHistory         ``workflow.Archive``: the history, in memory
FakeDelivery        ``workflow.Deliverer``: the texts put into the focused app
FakeNotifier        ``workflow.Notices``: the desktop notifications shown
FakeEngine          ``remote.worker.RemoteEngine``: a speech server's answers
FakeModel           what ``asr.models.load`` gives ``WhisperWorker``: a loaded model
StateLog            a worker's ``on_state``: the model states it went through
Reading             a clock or a memory gauge, set by hand
LoopClock           the event loop's clock, moved on by hand: its timers fire at once
Actions             the workflow's start, stop and toggle, as ``Shortcuts`` takes them
==================  ==============================================================

Stand-ins that speak a wire protocol have modules of their own (``fake_portal``,
``fake_hub``, ``fake_llm_servers``, ``fake_transcription_server``); what a client of
the daemon's bus sees is ``harness.Watch``.
"""

from __future__ import annotations

import asyncio
import wave
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING

import numpy as np
import pytest

from v2md.asr.downloads import LocalModel
from v2md.asr.types import DecodeOptions, ModelState, Word
from v2md.audio.format import SAMPLE_RATE
from v2md.errors import AudioDeviceError, HistoryError, InvalidArgumentError, V2MError
from v2md.parts import Listener
from v2md.workflow import State

Audio = np.ndarray


class FakeSource:
    """Yields ``chunks`` (and what ``feed`` adds) then waits for stop(); ``end_on_its_own``
    ends it after the chunks."""

    device_name = "fake"

    def __init__(
        self,
        chunks: Sequence[Audio] = (),
        *,
        end_on_its_own: bool = False,
        error: AudioDeviceError | None = None,
        overruns: int = 0,
    ) -> None:
        self._queue: asyncio.Queue[Audio] = asyncio.Queue()
        for chunk in chunks:
            self._queue.put_nowait(chunk)
        if end_on_its_own:
            self._queue.put_nowait(np.zeros(0, np.float32))
        self.error = error
        self.overruns = overruns
        self.closed = False
        self._reading = False

    def feed(self, chunk: Audio) -> None:
        """Deliver one more chunk, as a device does while recording."""
        self._queue.put_nowait(chunk)

    @property
    def starved(self) -> bool:
        """The reader waits for audio: every chunk so far was read and dealt with."""
        return self._reading and self._queue.empty()

    def start(self) -> None:
        pass

    async def read(self) -> Audio:
        self._reading = True
        try:
            return await self._queue.get()
        finally:
            self._reading = False

    def stop(self) -> None:
        self._queue.put_nowait(np.zeros(0, np.float32))

    def close(self) -> None:
        self.closed = True


class FakeVAD:
    """Speech while samples are non-zero; silence counted after speech; 100-sample padding.
    With ``hangover_ms``, speech stays active that long into silence, as Silero's
    min_silence_ms keeps it."""

    def __init__(self, hangover_ms: float = 0.0) -> None:
        self._hangover_ms = hangover_ms
        self.speech_active = False
        self.silence_after_speech_ms = 0.0
        self.samples_seen = 0
        self._speech_end: int | None = None

    def process(self, samples: Audio) -> None:
        self.samples_seen += samples.size
        loud = bool(np.any(samples))
        if loud:
            self._speech_end = self.samples_seen
            self.silence_after_speech_ms = 0.0
        elif self._speech_end is not None:
            self.silence_after_speech_ms += samples.size / 16.0
        self.speech_active = loud or (
            self._speech_end is not None and self.silence_after_speech_ms < self._hangover_ms
        )

    def speech_bounds(self, *, padded: bool = True) -> tuple[int, int] | None:
        if self._speech_end is None:
            return None
        return 0, min(self.samples_seen, self._speech_end + (100 if padded else 0))


class FakeStream:
    """Live text: says how many samples it has heard ("1600 samples"); with ``live=False``
    it has nothing to show. ``on_update`` runs at each update, before it answers."""

    def __init__(self, *, live: bool = True, on_update: Callable[[], None] | None = None) -> None:
        self._live = live
        self._on_update = on_update
        self.heard = 0
        self.updates: list[int | None] = []  # end_sample of each update

    def append(self, samples: Audio) -> None:
        self.heard += samples.size

    async def update(self, end_sample: int | None = None) -> str | None:
        self.updates.append(end_sample)
        if self._on_update is not None:
            self._on_update()
        return f"{self.heard} samples" if self._live else None

    def rebase(self, sample: int, text: str) -> str:
        return text


# What a decode of live text heard, changed as a test's worker would hear it: the words
# (times from the start of the audio), where the audio begins and ends on the recording's
# timeline (seconds), and the number of the decode (from 1).
Hearing = Callable[[list[Word], float, float, int], list[Word]]


def _as_heard(words: list[Word], _start: float, _end: float, _decode: int) -> list[Word]:
    return words


class FakeWorker:
    """The speech-to-text worker, instant unless held.

    - ``text``: the final text of any speech (``transcribe_speech``, and a file's), or a
      function of the audio that makes it.
    - ``timeline``: the words a recording holds, for live text (``transcribe``). The audio
      says where it begins on that timeline: its first sample holds its own index (a test
      feeds ``np.arange``). Each word is heard once its end is inside the audio; ``hearing``
      changes what a decode heard (a half-heard word, a missed one).
    - ``fail``: what every decode raises. ``gate``: decodes wait while it is clear (it is
      set to begin with).

    What it was asked is kept: ``decoded`` (samples in each ``transcribe_speech``),
    ``calls`` ((start s, seconds, prompt) of each ``transcribe``), ``files``, ``pulled``,
    ``held`` (file holds not yet released), ``loads``.
    """

    def __init__(
        self,
        text: str | Callable[[Audio], str] = "hello world",
        *,
        timeline: Sequence[Word] = (),
        hearing: Hearing | None = None,
        fail: Exception | None = None,
        model_name: str = "fake",
        language: str = "auto",
        models: Sequence[LocalModel] = (),
    ) -> None:
        self._text = text
        self.timeline = list(timeline)
        self._hearing = hearing or _as_heard
        self.fail = fail
        self.gate = asyncio.Event()
        self.gate.set()
        self.model_name = model_name
        self.language = language
        self.models = list(models)
        self.state = ModelState.UNLOADED
        self.decoded: list[int] = []
        self.in_speech: list[bool] = []  # per final decode: did its audio end in mid speech
        self.calls: list[tuple[float, float, str]] = []
        self.files: list[str] = []
        self.pulled: list[str] = []
        self.held = 0
        self.loads = 0

    async def _decoding(self) -> None:
        await self.gate.wait()
        if self.fail is not None:
            raise self.fail

    async def load(self) -> None:
        self.loads += 1
        self.state = ModelState.READY

    async def close(self) -> None:
        self.state = ModelState.UNLOADED

    def dictating(self) -> Callable[[], None]:
        self.held += 1

        def release() -> None:
            self.held -= 1

        return release

    async def transcribe_speech(self, audio: Audio, *, in_speech: bool = False) -> str:
        self.decoded.append(audio.size)
        self.in_speech.append(in_speech)
        await self._decoding()
        return self._text(audio) if callable(self._text) else self._text

    async def transcribe(
        self, audio: Audio, *, prompt: str = "", window_s: float | None = None
    ) -> list[Word]:
        start = float(audio[0]) / SAMPLE_RATE if audio.size else 0.0
        end = start + audio.size / SAMPLE_RATE
        self.calls.append((start, audio.size / SAMPLE_RATE, prompt))
        await self._decoding()
        heard = [
            Word(w.start - start, w.end - start, w.text)
            for w in self.timeline
            if w.start >= start - 0.5 and w.end <= end
        ]
        return self._hearing(heard, start, end, len(self.calls))

    async def transcribe_file(
        self, path: str | Path, on_progress: Callable[[float], None] | None = None
    ) -> str:
        """The text of a 16-bit mono WAV, as of speech; progress at its start and end."""
        self.files.append(str(path))
        if on_progress is not None:
            on_progress(0.0)
        with wave.open(str(path)) as wav:
            pcm = np.frombuffer(wav.readframes(wav.getnframes()), "<i2")
        text = await self.transcribe_speech(pcm.astype(np.float32) / 32768)
        if on_progress is not None:
            on_progress(1.0)
        return text

    async def pull_model(self, name: str) -> str:
        self.pulled.append(name)
        return name

    async def list_models(self) -> list[LocalModel]:
        return list(self.models)

    async def remove_model(self, name: str) -> int:
        for model in self.models:
            if model.name == name:
                self.models.remove(model)
                return model.size
        raise InvalidArgumentError(f"no model {name!r} on this machine")


class FakeSessionEvents:
    """What a live session reported: ``speech``, ``texts`` (provisional), ``errors``,
    ``endings`` (the reasons it ended on its own)."""

    def __init__(self) -> None:
        self.speech: list[bool] = []
        self.texts: list[str] = []
        self.errors: list[V2MError] = []
        self.endings: list[str] = []

    def speech_active_changed(self, active: bool) -> None:
        self.speech.append(active)

    def provisional_text(self, text: str) -> None:
        self.texts.append(text)

    def error(self, error: V2MError) -> None:
        self.errors.append(error)

    def ended(self, reason: str) -> None:
        self.endings.append(reason)


class FakeListener(Listener):
    """What the workflow reported, as a client of the bus would see it."""

    def __init__(self) -> None:
        self.states: list[str] = []
        self.texts: list[tuple[str, bool]] = []  # (text, final)
        self.errors: list[V2MError] = []
        self.speech: list[bool] = []
        self.last_texts: list[str] = []

    def state_changed(self, state: State) -> None:
        self.states.append(str(state))

    def speech_active_changed(self, active: bool) -> None:
        self.speech.append(active)

    def transcription_updated(self, text: str, final: bool) -> None:
        self.texts.append((text, final))

    def last_text_changed(self, text: str) -> None:
        self.last_texts.append(text)

    def error(self, error: V2MError) -> None:
        self.errors.append(error)

    @property
    def finals(self) -> list[str]:
        return [text for text, final in self.texts if final]


class FakeLLM:
    """Refine upper-cases the text, or answers ``answer(text, n)`` to the n-th request
    (from 1); Translate appends the target language in brackets. ``fail``: what every
    request raises. ``gate``: requests wait while it is clear (it is set to begin with);
    with ``held``, only the first ``held`` of them."""

    def __init__(
        self,
        answer: Callable[[str, int], str] | None = None,
        *,
        fail: Exception | None = None,
        held: int | None = None,
    ) -> None:
        self._answer = answer or (lambda text, _n: text.upper())
        self.fail = fail
        self._held = held
        self.gate = asyncio.Event()
        self.gate.set()
        self.requests: list[str] = []
        self.closed = False

    async def _request(self, text: str) -> int:
        self.requests.append(text)
        n = len(self.requests)
        if self._held is None or n <= self._held:
            await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        return n

    async def refine(self, text: str) -> str:
        n = await self._request(text)
        return self._answer(text, n)

    async def translate(self, text: str, target_language: str) -> str:
        await self._request(text)
        return f"{text} [{target_language}]"

    async def close(self) -> None:
        self.closed = True


class FakeHistory:
    """The history in memory: ``entries`` as (id, text, refined, details); ``fail``: what
    storing raises (a full disk)."""

    def __init__(self, fail: HistoryError | None = None) -> None:
        self.fail = fail
        self.entries: list[tuple[int, str, str, dict[str, object]]] = []
        self.closed = False

    def add(
        self, text: str, *, duration_s: float, model: str, language: str, recovered: bool = False
    ) -> int:
        if self.fail is not None:
            raise self.fail
        entry = len(self.entries) + 1
        details: dict[str, object] = {
            "duration_s": duration_s,
            "model": model,
            "language": language,
            "recovered": recovered,
        }
        self.entries.append((entry, text, "", details))
        return entry

    def set_refined(self, entry: int, refined: str) -> None:
        self.entries = [
            (n, text, refined if n == entry else was, details)
            for n, text, was, details in self.entries
        ]

    def recent(self, limit: int) -> list[tuple[int, str, str]]:
        return [(n * 1000, text, refined) for n, text, refined, _ in reversed(self.entries)][:limit]

    def clear(self) -> int:
        count = len(self.entries)
        self.entries.clear()
        return count

    def close(self) -> None:
        self.closed = True


class FakeDelivery:
    """The texts delivered, in order; ``fail``: what delivering raises."""

    def __init__(self, fail: Exception | None = None) -> None:
        self.fail = fail
        self.delivered: list[str] = []

    async def deliver(self, text: str) -> None:
        if self.fail is not None:
            raise self.fail
        self.delivered.append(text)


class FakeNotifier:
    """The notifications shown: (summary, body, critical)."""

    def __init__(self) -> None:
        self.shown: list[tuple[str, str, bool]] = []

    async def notify(self, summary: str, body: str = "") -> None:
        self.shown.append((summary, body, False))

    async def alert(self, summary: str, body: str = "") -> None:
        self.shown.append((summary, body, True))


class FakeEngine:
    """A speech server whose answers are scripted: text, an exception to raise, or "hang".
    Each request takes the next answer; the last one stays."""

    name = "Fake server tcp://box:10300"

    def __init__(self, *answers: str | Exception) -> None:
        self.answers = list(answers)
        self.asked: list[str | None] = []  # the language of each request
        self.closed = False

    async def describe(self) -> str:
        return await self._next()

    async def transcribe(self, audio: Audio, language: str | None, deadline: float) -> str:
        self.asked.append(language)
        return await self._next()

    async def _next(self) -> str:
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        if answer == "hang":
            await asyncio.Event().wait()
        return answer

    async def close(self) -> None:
        self.closed = True


class FakeModel:
    """A loaded model that decodes instantly: live text hears nothing; a file's every
    block is three segments, ending at its quarters (" part 1" .. " part 3"), and the
    seconds of each block are kept in ``blocks_s``. Where no language is asked for, it
    hears ``heard``; ``asked`` keeps the language each decode was asked for."""

    encoder_frames = 3000
    model = SimpleNamespace(device="cpu", compute_type="int8", is_multilingual=True)

    def __init__(self, heard: str = "en") -> None:
        self.blocks_s: list[float] = []
        self.heard = heard
        self.asked: list[str | None] = []
        self.language = ""

    def _decode(self, options: DecodeOptions) -> None:
        self.asked.append(options.language)
        self.language = options.language or self.heard

    def segments(
        self, audio: Audio, frames: int, max_windows: int | None, options: DecodeOptions
    ) -> list[object]:
        self._decode(options)
        return []

    def windows(self, audio: Audio, options: DecodeOptions) -> Iterator[tuple[str, float]]:
        self._decode(options)
        seconds = audio.size / SAMPLE_RATE
        self.blocks_s.append(seconds)
        return ((f" part {i}", seconds * i / 4) for i in range(1, 4))


class StateLog:
    """A worker's ``on_state``: each model state, and the detail said with it."""

    def __init__(self) -> None:
        self.states: list[ModelState] = []
        self.details: list[str] = []

    def __call__(self, state: ModelState, detail: str) -> None:
        self.states.append(state)
        self.details.append(detail)


class Reading:
    """A value the code reads by calling it (a clock, the memory in use), set by hand."""

    def __init__(self, value: float) -> None:
        self.value = value

    def __call__(self) -> float:
        return self.value


class LoopClock:
    """The running loop's clock, moved on by hand: the loop's timers fire when their time
    comes on it, without the test waiting for real. Pass it as the code's clock too, so
    that both agree."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self._loop = asyncio.get_running_loop()
        self._real = self._loop.time
        self._ahead = 0.0
        monkeypatch.setattr(self._loop, "time", self)

    def __call__(self) -> float:
        return self._real() + self._ahead

    async def advance(self, seconds: float) -> None:
        """Move on ``seconds``; returns once every timer due by then has run."""
        self._ahead += seconds
        # A timer due now runs after those due earlier: when it has, they have.
        caught_up: asyncio.Future[None] = self._loop.create_future()
        self._loop.call_at(self(), caught_up.set_result, None)
        await caught_up


class Actions:
    """The workflow's start, stop and toggle as a log; ``fail_*`` make them raise."""

    def __init__(self) -> None:
        self.log: list[str] = []
        self.reported: list[V2MError] = []
        self.fail_start: V2MError | None = None
        self.fail_stop: V2MError | None = None

    async def start(self) -> None:
        if self.fail_start is not None:
            raise self.fail_start
        self.log.append("start")

    async def stop(self) -> None:
        if self.fail_stop is not None:
            raise self.fail_stop
        self.log.append("stop")

    async def toggle(self) -> None:
        self.log.append("toggle")

    async def report(self, error: V2MError) -> None:
        self.reported.append(error)


if TYPE_CHECKING:  # each fake against the contract it stands for
    from v2md.asr.finalpass import SpeechDecoder
    from v2md.asr.streaming import WordDecoder
    from v2md.audio.capture import AudioSource
    from v2md.desktop.global_shortcuts import Action
    from v2md.parts import Archive, Deliverer, Notices, TextService, Worker
    from v2md.remote.worker import RemoteEngine
    from v2md.session import Provisional, SessionEvents, VoiceDetector

    _source: AudioSource = FakeSource()
    _vad: VoiceDetector = FakeVAD()
    _stream: Provisional = FakeStream()
    _worker: Worker = FakeWorker()
    _decoder: SpeechDecoder = FakeWorker()
    _words: WordDecoder = FakeWorker()
    _events: SessionEvents = FakeSessionEvents()
    _listener: Listener = FakeListener()
    _llm: TextService = FakeLLM()
    _history: Archive = FakeHistory()
    _delivery: Deliverer = FakeDelivery()
    _notifier: Notices = FakeNotifier()
    _engine: RemoteEngine = FakeEngine("text")
    _on_state: Callable[[ModelState, str], None] = StateLog()
    _clock: Callable[[], float] = Reading(0.0)
    _loop_clock: Callable[[], float] = LoopClock(pytest.MonkeyPatch())
    _actions: tuple[Action, Action, Action] = (Actions().start, Actions().stop, Actions().toggle)
    _report: Callable[[V2MError], Awaitable[None]] = Actions().report
