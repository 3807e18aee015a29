"""The recording state machine, driven with in-memory fakes (no bus, no model, no audio)."""

from __future__ import annotations

import asyncio
import wave

import numpy as np
import pytest
from fakes import FakeSource, FakeVAD
from harness import assert_eventually

from v2md.asr.finalpass import FinalPass
from v2md.config import Config
from v2md.errors import (
    AudioDeviceError,
    BusyError,
    DeliveryError,
    HistoryError,
    InvalidStateError,
    LLMError,
    ModelError,
)
from v2md.parts import Features
from v2md.session import LiveSession
from v2md.workflow import RecordingWorkflow, State


class FakeStream:
    """Provisional text: says how many samples it has heard."""

    def __init__(self):
        self.heard = 0
        self.updates: list[int | None] = []  # end_sample of each update

    def append(self, samples):
        self.heard += samples.size

    async def update(self, end_sample=None):
        self.updates.append(end_sample)
        return f"{self.heard} samples"

    def rebase(self, sample, text):
        return text


class FakeDecoder:
    """The worker's full-context decode: ``final`` for any audio, after ``gate`` if given."""

    def __init__(self, final="hello world", fail=None, gate=None):
        self.final, self.fail, self.gate = final, fail, gate
        self.decoded: list[int] = []  # samples in each decode

    async def transcribe_speech(self, audio):
        self.decoded.append(audio.size)
        if self.gate is not None:
            await self.gate.wait()
        if self.fail:
            raise self.fail
        return self.final


class FakeWorker:
    model_name = "fake"
    language = "auto"


class FakeLLM:
    def __init__(self, fail=None, gate=None):
        self.fail, self.gate = fail, gate

    async def refine(self, text):
        if self.gate is not None:
            await self.gate.wait()
        if self.fail:
            raise self.fail
        return text.upper()


class Recorder:
    def __init__(self):
        self.states: list[str] = []
        self.texts: list[tuple[str, bool]] = []
        self.errors: list[Exception] = []
        self.speech: list[bool] = []

    def state_changed(self, state):
        self.states.append(str(state))

    def speech_active_changed(self, active):
        self.speech.append(active)

    def transcription_updated(self, text, final):
        self.texts.append((text, final))

    def last_text_changed(self, text):
        pass

    def error(self, error):
        self.errors.append(error)

    @property
    def finals(self):
        return [t for t, final in self.texts if final]


class FailingHistory:
    def add(self, text, **details):
        raise HistoryError("history /x/h.sqlite3: database or disk is full")


class FakeNotifier:
    def __init__(self):
        self.shown: list[tuple[str, str, bool]] = []

    async def notify(self, summary, body=""):
        self.shown.append((summary, body, False))

    async def alert(self, summary, body=""):
        self.shown.append((summary, body, True))


def make(
    sources=None,
    decoder=None,
    vad=False,
    llm=None,
    cfg=None,
    delivered=None,
    history=None,
    notifier=None,
    delivery_error=None,
):
    sources = iter(sources or [])

    class Delivery:
        async def deliver(self, text):
            if delivery_error is not None:
                raise delivery_error
            delivered.append(text)

    cfg = cfg or Config()

    def open_session(events):
        return LiveSession(
            cfg,
            next(sources, None) or FakeSource([np.ones(1600, np.float32)]),
            FakeStream(),
            FinalPass(decoder or FakeDecoder()),
            FakeVAD() if vad else None,
            events,
        )

    features = Features(
        worker=FakeWorker(),
        open_session=open_session,
        llm=llm,
        delivery=Delivery() if delivered is not None else None,
        history=history,
        notifier=notifier,
    )
    wf = RecordingWorkflow(cfg, features)
    rec = Recorder()
    wf.attach(rec)
    return wf, rec


async def test_start_stop_returns_final_text_once():
    wf, rec = make()
    await wf.start()
    assert wf.state is State.RECORDING
    assert await wf.stop() == "hello world"
    assert wf.state is State.IDLE
    assert rec.states == ["recording", "transcribing", "idle"]
    assert rec.finals == ["hello world"]
    assert wf.last_text == "hello world"


async def test_wrong_state_calls_get_invalid_state():
    wf, _ = make()
    with pytest.raises(InvalidStateError):
        await wf.stop()
    with pytest.raises(InvalidStateError):
        await wf.cancel()
    await wf.start()
    with pytest.raises(InvalidStateError):
        await wf.start()
    await wf.cancel()
    assert wf.state is State.IDLE


async def test_cancel_drops_audio_and_text():
    source = FakeSource([np.ones(800, np.float32)])
    wf, rec = make([source])
    await wf.start()
    await wf.cancel()
    assert rec.finals == [] and source.closed


async def test_second_stop_while_transcribing_is_busy():
    gate = asyncio.Event()
    wf, rec = make(decoder=FakeDecoder(gate=gate))
    await wf.start()
    first = asyncio.create_task(wf.stop())
    await assert_eventually(lambda: wf.state is State.TRANSCRIBING)
    with pytest.raises(BusyError):
        await wf.stop()
    with pytest.raises(BusyError):
        await wf.cancel()
    gate.set()
    assert await first == "hello world"
    assert rec.finals == ["hello world"]


async def test_toggle_storm_from_many_clients_stays_consistent():
    wf, rec = make()
    results: list[str] = []

    async def client():
        for _ in range(20):
            results.append(str(await wf.toggle()))

    await asyncio.gather(*(client() for _ in range(10)))
    assert len(results) == 200
    assert results.count("idle") == 100 and results.count("recording") == 100
    assert wf.state is State.IDLE
    assert len(rec.finals) == 100  # every stop produced exactly one final text
    assert rec.states == ["recording", "transcribing", "idle"] * 100


async def test_failed_transcription_keeps_the_audio(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    audio = np.full(1600, 0.25, np.float32)
    wf, rec = make(
        [FakeSource([audio])], decoder=FakeDecoder(fail=RuntimeError("decoder exploded"))
    )
    await wf.start()
    with pytest.raises(ModelError, match="kept in") as info:
        await wf.stop()
    kept = str(info.value).rsplit("kept in ", 1)[1]
    with wave.open(kept) as wav:
        assert wav.getnframes() == audio.size and wav.getframerate() == 16000
    assert wf.state is State.IDLE
    assert isinstance(rec.errors[-1], ModelError)


async def test_source_ending_on_its_own_finishes_like_stop():
    wf, rec = make([FakeSource([np.ones(800, np.float32)], end_on_its_own=True)])
    await wf.start()
    await assert_eventually(lambda: rec.finals)
    await wf.idle()
    assert rec.finals == ["hello world"]
    assert wf.state is State.IDLE


async def test_device_lost_reports_error_and_keeps_text():
    lost = AudioDeviceError("fake: device vanished")
    wf, rec = make([FakeSource([np.ones(800, np.float32)], end_on_its_own=True, error=lost)])
    await wf.start()
    await assert_eventually(lambda: rec.finals)
    await wf.idle()
    assert rec.errors == [lost]
    assert rec.finals == ["hello world"]


async def test_overruns_are_reported_with_counts():
    wf, rec = make([FakeSource([np.ones(800, np.float32)], overruns=32000)])
    await wf.start()
    await assert_eventually(lambda: rec.errors)
    assert "dropped 32000 samples (2.00 s)" in str(rec.errors[0])
    await wf.stop()


async def test_silence_after_speech_stops_hands_free():
    cfg = Config()
    cfg.vad.auto_stop_silence_ms = 500
    speech, silence = np.ones(1600, np.float32), np.zeros(1600, np.float32)
    wf, rec = make([FakeSource([speech, *[silence] * 8])], vad=True, cfg=cfg)
    await wf.start()
    await assert_eventually(lambda: rec.finals)
    await wf.idle()
    assert rec.finals == ["hello world"]
    assert rec.speech == [True, False]
    assert wf.state is State.IDLE


async def test_no_speech_gives_empty_text_without_decoding():
    wf, rec = make(
        [FakeSource([np.zeros(1600, np.float32)])],
        vad=True,
        decoder=FakeDecoder(fail=AssertionError("must not decode")),
    )
    await wf.start()
    assert await wf.stop() == ""
    assert rec.finals == [""]


async def test_provisional_text_is_announced_while_recording():
    wf, rec = make([FakeSource([np.ones(800, np.float32)])])
    await wf.start()
    await assert_eventually(lambda: ("800 samples", False) in rec.texts)
    await wf.stop()


async def test_a_pause_is_decoded_with_full_context_at_once_and_stop_reuses_it():
    decoder = FakeDecoder()
    source = FakeSource([np.ones(1600, np.float32)])
    wf, rec = make([source], decoder=decoder, vad=True)
    await wf.start()
    # The speech went the provisional way (its text is shown) and no other: still speaking.
    await assert_eventually(lambda: source.starved and ("1600 samples", False) in rec.texts)
    assert decoder.decoded == []
    source.feed(np.zeros(8000, np.float32))
    # The pause brings a full-context decode at once, of the speech up to its end plus
    # 100 ms, not of the silence after it; its text is shown.
    await assert_eventually(lambda: ("hello world", False) in rec.texts)
    assert decoder.decoded == [1600 + 1600]
    assert await wf.stop() == "hello world"
    assert decoder.decoded == [3200]  # nothing was said since: no decode at stop


async def test_llm_request_shows_processing_without_blocking_recording():
    gate = asyncio.Event()
    wf, _ = make(llm=FakeLLM(gate=gate))
    refine = asyncio.create_task(wf.refine("some text"))
    await assert_eventually(lambda: wf.state is State.PROCESSING)
    await wf.start()  # not blocked by the pending LLM call
    assert wf.state is State.RECORDING
    await wf.stop()
    gate.set()
    assert await refine == "SOME TEXT"
    assert wf.state is State.IDLE


async def test_auto_refine_failure_delivers_raw_text():
    cfg = Config()
    cfg.llm.auto_refine = True
    delivered: list[str] = []
    wf, rec = make(llm=FakeLLM(fail=LLMError("provider down")), cfg=cfg, delivered=delivered)
    await wf.start()
    await wf.stop()
    await wf.idle()
    assert delivered == ["hello world"]
    assert "raw text delivered" in str(rec.errors[-1])


async def test_auto_refine_delivers_refined_text():
    cfg = Config()
    cfg.llm.auto_refine = True
    delivered: list[str] = []
    wf, _ = make(llm=FakeLLM(), cfg=cfg, delivered=delivered)
    await wf.start()
    await wf.stop()
    await wf.idle()
    assert delivered == ["HELLO WORLD"]


async def test_a_slow_refine_does_not_let_the_next_dictation_overtake_it():
    class SlowFirst:
        def __init__(self):
            self.calls = 0

        async def refine(self, text):
            self.calls += 1
            call = self.calls
            await asyncio.sleep(0.3 if call == 1 else 0)
            return f"{text} #{call}"

    cfg = Config()
    cfg.llm.auto_refine = True
    delivered: list[str] = []
    wf, _ = make(llm=SlowFirst(), cfg=cfg, delivered=delivered)
    for _ in range(2):
        await wf.start()
        await wf.stop()
    await wf.idle()
    assert delivered == ["hello world #1", "hello world #2"]


async def test_history_that_cannot_store_loses_nothing_else():
    delivered: list[str] = []
    wf, rec = make(history=FailingHistory(), delivered=delivered)
    await wf.start()
    assert await wf.stop() == "hello world"
    await wf.idle()
    assert rec.finals == ["hello world"] and wf.last_text == "hello world"
    assert delivered == ["hello world"]
    assert isinstance(rec.errors[-1], HistoryError)
    assert wf.state is State.IDLE


async def test_failed_delivery_alerts_the_user_with_the_text():
    notifier = FakeNotifier()
    failure = DeliveryError("no clipboard tool: install wl-clipboard")
    wf, rec = make(delivered=[], notifier=notifier, delivery_error=failure)
    await wf.start()
    await wf.stop()
    await wf.idle()
    assert rec.errors == [failure]
    listening, (summary, body, critical) = notifier.shown
    assert listening[0] == "Dictation" and "Listening" in listening[1]
    assert summary == "Dictation not typed"
    assert critical and "wl-clipboard" in body and "hello world" in body


async def test_the_desktop_hears_of_start_final_text_and_errors_outside_calls():
    notifier = FakeNotifier()
    wf, _ = make(sources=[FakeSource([np.ones(1600, np.float32)], overruns=800)], notifier=notifier)
    await wf.start()
    await wf.stop()
    await wf.idle()
    assert [(s, critical) for s, _, critical in notifier.shown] == [
        ("Dictation", False),  # listening
        ("Dictation error", True),  # the dropped samples
        ("Dictation", False),  # the final text
    ]
    assert "dropped 800 samples" in notifier.shown[1][1]
    assert notifier.shown[2][1] == "hello world"
