"""Silero VAD on generated speech and silence (real ONNX model, no Whisper)."""

from __future__ import annotations

import numpy as np
import pytest
import speech

from v2md.asr.vad import SileroVAD
from v2md.config import VADConfig
from v2md.errors import InvalidArgumentError

RATE = speech.SAMPLE_RATE


@pytest.fixture(scope="module")
def spoken() -> tuple[np.ndarray, int, int]:
    """1 s silence, a sentence, 1.5 s silence; with the sentence's sample bounds."""
    sentence = speech.speak(speech.SENTENCES[1])
    lead = speech.silence(1.0)
    audio = np.concatenate([lead, sentence, speech.silence(1.5)])
    audio.flags.writeable = False  # shared by the module's tests: none may change it
    return audio, lead.size, lead.size + sentence.size


def test_silence_is_never_speech():
    vad = SileroVAD(VADConfig())
    vad.process(speech.silence(3.0))
    assert not vad.speech_active
    assert vad.speech_bounds() is None
    assert vad.silence_after_speech_ms == 0.0


def test_bounds_enclose_the_sentence(spoken):
    audio, start, end = spoken
    vad = SileroVAD(VADConfig(speech_pad_ms=200))
    vad.process(audio)
    bounds = vad.speech_bounds()
    assert bounds is not None
    found_start, found_end = bounds
    # espeak-ng adds a little silence of its own around the words
    assert start - 0.25 * RATE <= found_start <= start + 0.4 * RATE
    assert end - 0.6 * RATE <= found_end <= end + 0.3 * RATE
    assert not vad.speech_active
    assert vad.silence_after_speech_ms >= VADConfig().min_silence_ms


def test_state_follows_speech_in_small_chunks(spoken):
    audio, start, end = spoken
    vad = SileroVAD(VADConfig())
    active_at = []
    for offset in range(0, audio.size, 1600):  # 100 ms chunks, not frame aligned
        vad.process(audio[offset : offset + 1600])
        active_at.append((offset + 1600, vad.speech_active))
    assert not any(active for at, active in active_at if at < start)
    assert any(active for at, active in active_at if start < at < end)
    assert not active_at[-1][1]


def test_chunking_does_not_change_the_result(spoken):
    audio, _, _ = spoken
    whole = SileroVAD(VADConfig())
    whole.process(audio)
    pieces = SileroVAD(VADConfig())
    for offset in range(0, audio.size, 333):
        pieces.process(audio[offset : offset + 333])
    assert pieces.speech_bounds() == whole.speech_bounds()
    assert pieces.silence_after_speech_ms == whole.silence_after_speech_ms


def test_silence_after_speech_grows_with_the_pause(spoken):
    audio, _, _ = spoken
    vad = SileroVAD(VADConfig())
    vad.process(audio)
    before = vad.silence_after_speech_ms
    vad.process(speech.silence(0.512))
    assert vad.silence_after_speech_ms == pytest.approx(before + 512)


def test_short_blip_is_not_speech_with_min_speech_ms():
    blip = speech.speak("hi")[: int(0.12 * RATE)]
    vad = SileroVAD(VADConfig(min_speech_ms=250))
    vad.process(np.concatenate([speech.silence(0.5), blip, speech.silence(1.0)]))
    assert vad.speech_bounds() is None


def test_rejects_stereo():
    with pytest.raises(InvalidArgumentError):
        SileroVAD(VADConfig()).process(np.zeros((512, 2), dtype=np.float32))
