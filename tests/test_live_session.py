"""Issue 10 through the real daemon: recorded speech, a busy worker, an unpaced device."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import numpy as np
import pytest
import recorded
import speech
from harness import STOP_AFTER_PAUSE_S, Watch, assert_eventually, running_daemon

from v2md import INTERFACE
from v2md.session import OVERRUN_REPORT_S

pytestmark = pytest.mark.slow

ALSA_CONF = Path(__file__).parent / "alsa" / "v2mtest.conf"


async def dictate(iface, props, speech_s: float) -> str:
    """Start, wait until the VAD heard the speech end, pause, Stop; the final text."""
    watch = Watch(iface, props)
    started = time.monotonic()
    await iface.call_start()
    await assert_eventually(
        lambda: any(t > started + speech_s and not a for t, a in watch.speech), timeout=60
    )
    await asyncio.sleep(STOP_AFTER_PAUSE_S)
    return await iface.call_stop()


async def test_recorded_speech_final_text_matches_transcribe_file(own_bus, tmp_path):
    audio, reference = recorded.audiobook()
    wav = speech.write_wav(tmp_path / "book.wav", np.concatenate([audio, speech.silence(30)]))
    async with running_daemon(own_bus, tmp_path / "home", V2M_AUDIO__FILE=str(wav)) as (
        _d,
        iface,
        props,
    ):
        batch = await iface.call_transcribe_file(str(wav))
        text = await dictate(iface, props, audio.size / speech.SAMPLE_RATE)
    assert speech.normalise(text)[0] == "and"  # the opening word is not clipped
    # One word is 1.4 points of these 71: the 1-point target is held pooled over more
    # speakers in test_streaming_accuracy; here, at most one word more than the batch.
    assert speech.wer(reference, text) <= speech.wer(reference, batch) + 1.5, (text, batch)


async def test_a_dictation_during_a_long_transcribe_file_keeps_its_words(own_bus, tmp_path):
    audio, reference = recorded.audiobook()
    wav = speech.write_wav(tmp_path / "book.wav", np.concatenate([audio, speech.silence(30)]))
    long_file = speech.write_wav(tmp_path / "long.wav", np.tile(audio, 30))  # 12 minutes
    async with running_daemon(own_bus, tmp_path / "home", V2M_AUDIO__FILE=str(wav)) as (
        _d,
        iface,
        props,
    ):
        transcribing = asyncio.create_task(iface.call_transcribe_file(str(long_file)))
        watch = Watch(iface, props)
        started = time.monotonic()
        await iface.call_start()
        await assert_eventually(
            lambda: any(t > started + audio.size / 16000 and not a for t, a in watch.speech),
            timeout=60,
        )
        await asyncio.sleep(STOP_AFTER_PAUSE_S)
        asked = time.monotonic()
        text = await iface.call_stop()
        waited = time.monotonic() - asked
        assert not transcribing.done()  # the file was still being decoded all along
        transcribing.cancel()
    assert speech.wer(reference, text) <= 10.0, text
    # File windows wait while the dictation records, so Stop waits for the last sentence's
    # decode at most (~1.5 s on two cores), not for file windows or the rest of the file.
    assert waited < 6.0, waited


async def test_an_unpaced_capture_device_cannot_hang_the_daemon(own_bus, tmp_path):
    # ALSA's file plugin over "null" delivers the file as fast as it is read.
    raw = tmp_path / "speech.raw"
    audio, _ = recorded.audiobook()
    raw.write_bytes((np.tile(audio, 40) * 32767).astype("<i2").tobytes())  # 16 minutes
    async with running_daemon(
        own_bus,
        tmp_path / "home",
        ALSA_CONFIG_PATH=f"/usr/share/alsa/alsa.conf:{ALSA_CONF}",
        V2M_TEST_INFILE=str(raw),
        V2M_AUDIO__DEVICE="v2mtest",
        V2M_AUDIO__CAPACITY_S="120",
    ) as (daemon, iface, props):
        watch = Watch(iface, props)
        started = time.monotonic()
        # Bounds with room for a loaded machine: a starved loop never answers at all.
        async with asyncio.timeout(15):
            await iface.call_start()
        for _ in range(5):
            async with asyncio.timeout(5):
                assert (await props.call_get(INTERFACE, "State")).value == "recording"
            await asyncio.sleep(0.5)
        async with asyncio.timeout(20):
            await iface.call_cancel()
        async with asyncio.timeout(5):
            assert (await props.call_get(INTERFACE, "State")).value == "idle"
        recorded_s = time.monotonic() - started
        assert daemon.alive()
    # Reported, not flooded: overruns at most once a second (the first at once) and once at
    # the end; audio past capacity when it first spills and, with the total, at the end.
    kinds = [name for name, _ in watch.errors]
    overruns = kinds.count("org.v2m.Dictation.Error.AudioDevice")
    assert overruns <= recorded_s // OVERRUN_REPORT_S + 2, watch.errors
    assert kinds.count("org.v2m.Dictation.Error.Model") <= 2, watch.errors
    assert len(list((tmp_path / "home" / "state" / "v2m" / "recordings").glob("*.wav"))) <= 1
