"""The recording state machine, driven with in-memory fakes (no bus, no model, no audio)."""

from __future__ import annotations

import asyncio
import wave

import numpy as np
import pytest
from fakes import (
    FakeDelivery,
    FakeHistory,
    FakeListener,
    FakeLLM,
    FakeNotifier,
    FakeSource,
    FakeStream,
    FakeVAD,
    FakeWorker,
)
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


def make(
    sources=(),
    worker=None,
    vad=False,
    llm=None,
    cfg=None,
    delivery=None,
    history=None,
    notifier=None,
):
    """A workflow over fakes: each recording takes the next of ``sources`` (then one of
    a tenth of a second of sound), decoded by ``worker``."""
    sources = iter(sources)
    worker = worker or FakeWorker()
    cfg = cfg or Config()

    def open_session(events):
        return LiveSession(
            cfg,
            next(sources, None) or FakeSource([np.ones(1600, np.float32)]),
            FakeStream(),
            FinalPass(worker),
            FakeVAD() if vad else None,
            events,
        )

    features = Features(
        worker=worker,
        open_session=open_session,
        llm=llm,
        delivery=delivery,
        history=history,
        notifier=notifier,
    )
    wf = RecordingWorkflow(cfg, features)
    listener = FakeListener()
    wf.attach(listener)
    return wf, listener


async def test_start_stop_returns_final_text_once():
    wf, rec = make()
    await wf.start()
    assert wf.state is State.RECORDING
    assert await wf.stop() == "hello world"
    assert wf.state is State.IDLE
    assert rec.states == ["recording", "transcribing", "idle"]
    assert rec.finals == ["hello world"]
    assert wf.last_text == "hello world" and rec.last_texts == ["hello world"]


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
    worker = FakeWorker()
    worker.gate.clear()
    wf, rec = make(worker=worker)
    await wf.start()
    first = asyncio.create_task(wf.stop())
    await assert_eventually(lambda: wf.state is State.TRANSCRIBING)
    with pytest.raises(BusyError):
        await wf.stop()
    with pytest.raises(BusyError):
        await wf.cancel()
    worker.gate.set()
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
    wf, rec = make([FakeSource([audio])], worker=FakeWorker(fail=RuntimeError("decoder exploded")))
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
        worker=FakeWorker(fail=AssertionError("must not decode")),
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
    worker = FakeWorker()
    source = FakeSource([np.ones(1600, np.float32)])
    wf, rec = make([source], worker=worker, vad=True)
    await wf.start()
    # The speech went the provisional way (its text is shown) and no other: still speaking.
    await assert_eventually(lambda: source.starved and ("1600 samples", False) in rec.texts)
    assert worker.decoded == []
    source.feed(np.zeros(8000, np.float32))
    # The pause brings a full-context decode at once, of the speech up to its end plus
    # 100 ms, not of the silence after it; its text is shown.
    await assert_eventually(lambda: ("hello world", False) in rec.texts)
    assert worker.decoded == [1600 + 1600]
    assert await wf.stop() == "hello world"
    assert worker.decoded == [3200]  # nothing was said since: no decode at stop


async def test_llm_request_shows_processing_without_blocking_recording():
    llm = FakeLLM()
    llm.gate.clear()
    wf, _ = make(llm=llm)
    refine = asyncio.create_task(wf.refine("some text"))
    await assert_eventually(lambda: wf.state is State.PROCESSING)
    await wf.start()  # not blocked by the pending LLM call
    assert wf.state is State.RECORDING
    await wf.stop()
    llm.gate.set()
    assert await refine == "SOME TEXT"
    assert wf.state is State.IDLE


async def test_auto_refine_failure_delivers_raw_text():
    cfg = Config()
    cfg.llm.auto_refine = True
    delivery = FakeDelivery()
    wf, rec = make(llm=FakeLLM(fail=LLMError("provider down")), cfg=cfg, delivery=delivery)
    await wf.start()
    await wf.stop()
    await wf.idle()
    assert delivery.delivered == ["hello world"]
    assert "raw text delivered" in str(rec.errors[-1])


async def test_auto_refine_delivers_refined_text():
    cfg = Config()
    cfg.llm.auto_refine = True
    delivery = FakeDelivery()
    wf, _ = make(llm=FakeLLM(), cfg=cfg, delivery=delivery)
    await wf.start()
    await wf.stop()
    await wf.idle()
    assert delivery.delivered == ["HELLO WORLD"]


async def test_a_slow_refine_does_not_let_the_next_dictation_overtake_it():
    cfg = Config()
    cfg.llm.auto_refine = True
    llm = FakeLLM(lambda text, n: f"{text} #{n}", held=1)  # only the first one is slow
    llm.gate.clear()
    delivery = FakeDelivery()
    wf, _ = make(llm=llm, cfg=cfg, delivery=delivery)
    for _ in range(2):
        await wf.start()
        await wf.stop()
    await assert_eventually(lambda: llm.requests)  # the first refine is under way
    llm.gate.set()
    await wf.idle()
    assert delivery.delivered == ["hello world #1", "hello world #2"]


async def test_history_that_cannot_store_loses_nothing_else():
    delivery = FakeDelivery()
    full = HistoryError("history /x/h.sqlite3: database or disk is full")
    wf, rec = make(history=FakeHistory(fail=full), delivery=delivery)
    await wf.start()
    assert await wf.stop() == "hello world"
    await wf.idle()
    assert rec.finals == ["hello world"] and wf.last_text == "hello world"
    assert delivery.delivered == ["hello world"]
    assert rec.errors[-1] is full
    assert wf.state is State.IDLE


async def test_failed_delivery_alerts_the_user_with_the_text():
    notifier = FakeNotifier()
    failure = DeliveryError("no clipboard tool: install wl-clipboard")
    wf, rec = make(delivery=FakeDelivery(fail=failure), notifier=notifier)
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
