"""The full-context final pass and the live session around it, with a fake clock and
a fake worker whose "words" are written into the audio itself, so that a lost,
repeated or reordered sample shows in the text."""

from __future__ import annotations

import asyncio
import wave
from collections import Counter

import numpy as np
from fakes import FakeSessionEvents, FakeSource, FakeStream, FakeVAD, FakeWorker

from v2md.asr.finalpass import SETTLE_AFTER_S, WINDOW_S, FinalPass, split_agreed
from v2md.audio.format import SAMPLE_RATE
from v2md.config import Config
from v2md.session import LiveSession

WORD = SAMPLE_RATE // 2  # every half second of speech is one word


def spoken(first: int, count: int) -> np.ndarray:
    """``count`` words numbered from ``first``: each half second holds its number."""
    return np.repeat(np.arange(first, first + count, dtype=np.float32) + 1, WORD)


def pause(seconds: float) -> np.ndarray:
    return np.zeros(round(seconds * SAMPLE_RATE), np.float32)


class Speller:
    """A worker's text for this module's audio: reads the words back out of it, counting
    the decodes that heard each word."""

    def __init__(self, *, disagree: bool = False, respell: bool = False) -> None:
        self.times_heard: Counter[int] = Counter()
        self.decodes = 0
        # Each decode marks its first word differently, as a decoder with more context
        # may spell it: no two decodes from one start ever agree.
        self._disagree = disagree
        # Each decode spells its first word anew, as tiny.en respells an odd word.
        self._respell = respell

    def __call__(self, audio: np.ndarray) -> str:
        self.decodes += 1
        values = audio[audio > 0]
        keep = np.r_[True, values[1:] != values[:-1]] if values.size else values.astype(bool)
        numbers = [int(v) - 1 for v in values[keep]]
        self.times_heard.update(numbers)
        words = [f"w{n}" for n in numbers]
        if self._disagree and words:
            words[0] += "*" * self.decodes
        if self._respell and words:
            words[0] = f"v{self.decodes}"
        return " ".join(words)


def spelling(*, disagree: bool = False, respell: bool = False) -> FakeWorker:
    """A worker that spells out the words in the audio; it can be held up like a busy one
    (its ``gate``)."""
    return FakeWorker(Speller(disagree=disagree, respell=respell))


def said(count: int) -> str:
    return " ".join(f"w{n}" for n in range(count))


class Recording:
    """A final pass fed the way the live session feeds it, at absolute sample positions."""

    def __init__(self, final: FinalPass) -> None:
        self.final = final
        self.samples = 0
        self.words = 0

    def speak(self, words: int = 8) -> int:
        """Append ``words`` words; return where the speech ends (plus the VAD's pad)."""
        self.final.append(spoken(self.words, words))
        self.words += words
        self.samples += words * WORD
        return self.samples + PAD

    def quiet(self, seconds: float) -> None:
        self.final.append(pause(seconds))
        self.samples += round(seconds * SAMPLE_RATE)

    async def sentence(self) -> None:
        """A sentence and a 1 s pause, decoded at the pause as the session does."""
        end = self.speak()
        self.quiet(1.0)
        self.final.pause_at(end)
        await self.final.decode_to(end)


PAD = SAMPLE_RATE // 10


async def test_each_stretch_is_decoded_a_bounded_number_of_times_however_long_the_dictation():
    speller = Speller()
    decoder = FakeWorker(speller)
    recording = Recording(FinalPass(decoder))
    for _ in range(120):  # ten minutes: 120 sentences of 8 words and a 1 s pause
        await recording.sentence()
    assert await recording.final.finish(recording.samples) == said(recording.words)
    # Settled text is never decoded again: each word is heard by a few decodes at most,
    # whatever the length, and no window grows with the dictation.
    assert max(speller.times_heard.values()) <= 3
    assert max(decoder.decoded) <= 12 * SAMPLE_RATE  # two sentences and their pauses


async def test_speech_that_pauses_more_often_than_text_settles_still_settles():
    # "Thanks, comma, see you on Monday, period": a phrase of a second and a half-second
    # pause, over and over. No decode at a pause hears SETTLE_AFTER_S past the pause before
    # it, but a later one hears that far past an earlier pause.
    speller = Speller()
    decoder = FakeWorker(speller)
    recording = Recording(FinalPass(decoder))
    for _ in range(60):
        end = recording.speak(2)
        recording.quiet(0.5)
        recording.final.pause_at(end)
        await recording.final.decode_to(end)
    assert await recording.final.finish(recording.samples) == said(recording.words)
    # Settling only at the last pause, every word was heard 18 times, in windows of 27 s.
    assert max(speller.times_heard.values()) <= 6
    assert max(decoder.decoded) <= (SETTLE_AFTER_S + 6) * SAMPLE_RATE


async def test_a_stop_right_after_speech_decodes_only_the_unsettled_tail():
    decoder = spelling()
    recording = Recording(FinalPass(decoder))
    for _ in range(20):
        await recording.sentence()
    before = len(decoder.decoded)
    end = recording.speak()  # the last sentence, and Stop at once
    assert await recording.final.finish(end) == said(recording.words)
    assert len(decoder.decoded) == before + 1
    assert decoder.decoded[-1] <= 12 * SAMPLE_RATE  # not the 28 s window


async def test_a_stop_after_a_pause_decodes_nothing_more():
    decoder = spelling()
    recording = Recording(FinalPass(decoder))
    for _ in range(5):
        await recording.sentence()
    before = len(decoder.decoded)
    assert await recording.final.finish(recording.samples - SAMPLE_RATE + PAD) == said(40)
    assert len(decoder.decoded) == before


async def test_a_speculative_decode_whose_speech_resumes_loses_and_doubles_no_word():
    decoder = spelling()
    recording = Recording(FinalPass(decoder))
    await recording.sentence()
    # Speech goes quiet for 0.2 s: the session starts the final decode before the VAD
    # says it is a pause; speech resumes while that decode is still running.
    end = recording.speak(4)
    recording.quiet(0.2)
    decoder.gate.clear()
    early = asyncio.create_task(recording.final.decode_to(end))
    await until(lambda: len(decoder.decoded) == 2)
    recording.speak(4)  # the same sentence goes on
    decoder.gate.set()
    await early
    for _ in range(3):
        await recording.sentence()
    assert await recording.final.finish(recording.samples) == said(recording.words)


async def test_a_decode_up_to_a_pause_declared_while_it_ran_can_settle():
    """A worker slower than speech: each decode, started as speech went quiet, ends after
    the VAD has called that quiet a pause and heard the next sentence end too. Such a
    decode still ends at a pause, and settles there. The only other decode at a pause is
    the first, of 2 s, where Whisper said its words twice ("Please leave your message
    after the tone. Please leave your message after the tone."): when it was the one made
    final at the window limit, its repeat stayed in the text."""
    speller = Speller()

    def repeats_a_short_clip(audio: np.ndarray) -> str:
        words = speller(audio)
        return f"{words} {words}" if audio.size <= 3 * SAMPLE_RATE else words

    decoder = FakeWorker(repeats_a_short_clip)
    recording = Recording(FinalPass(decoder))
    end = recording.speak(4)
    recording.quiet(1.0)
    recording.final.pause_at(end)
    await recording.final.decode_to(end)
    for _ in range(8):
        end = recording.speak(8)
        recording.quiet(0.3)  # quiet enough to start the final decode early
        decoder.gate.clear()
        decodes = len(decoder.decoded)
        early = asyncio.create_task(recording.final.decode_to(end))
        await until(lambda n=decodes: len(decoder.decoded) > n)  # held at the gate
        recording.quiet(0.7)
        recording.final.pause_at(end)  # the VAD calls it a pause while the decode runs
        later = recording.speak(8)
        recording.quiet(1.0)
        recording.final.pause_at(later)  # and the next sentence's too
        decoder.gate.set()
        await early
    assert await recording.final.finish(recording.samples) == said(recording.words)
    # A window holds what two decodes heard (10 s each), not WINDOW_S.
    assert max(decoder.decoded) <= 21 * SAMPLE_RATE


async def test_a_window_where_decodes_never_agree_still_ends_at_the_window_limit():
    decoder = spelling(disagree=True)
    recording = Recording(FinalPass(decoder))
    for _ in range(12):  # 60 s
        await recording.sentence()
    text = await recording.final.finish(recording.samples)
    assert [w.rstrip("*") for w in text.split()] == said(recording.words).split()
    assert max(decoder.decoded) <= WINDOW_S * SAMPLE_RATE


async def test_decodes_that_respell_a_word_still_settle_and_lose_or_double_no_other():
    decoder = spelling(respell=True)
    recording = Recording(FinalPass(decoder))
    for _ in range(12):  # 60 s
        await recording.sentence()
    text = await recording.final.finish(recording.samples)
    words, reference = text.split(), said(recording.words).split()
    # Every word in its place: right, or a window's first word respelled.
    assert len(words) == len(reference)
    assert all(w == r or w.startswith("v") for w, r in zip(words, reference, strict=True))
    assert sum(w.startswith("v") for w in words) <= 12
    # Settled as if they agreed: no window grows past two sentences.
    assert max(decoder.decoded) <= 12 * SAMPLE_RATE


async def test_a_window_that_starts_cold_keeps_the_words_an_earlier_start_heard():
    """Each decode respells its first word, as a window starting at a pause mishears the
    word it starts on. The decode that settles a sentence heard the next one's first word
    with the audio before it: those words are kept, so of a dictation's twelve sentences
    only the very first word, with no audio before it, is respelled."""
    decoder = spelling(respell=True)
    recording = Recording(FinalPass(decoder))
    for _ in range(12):
        await recording.sentence()
    end = recording.samples - SAMPLE_RATE + PAD  # the last word's end, where a Stop decodes to
    words = (await recording.final.finish(end)).split()
    assert words[0].startswith("v")
    assert words[1:] == said(recording.words).split()[1:]


async def test_speech_that_runs_on_past_a_pause_confirms_the_text_before_it():
    """An utterance spoken without a breath gives no pause at which to settle the one
    before it: once it has run on 4 s, a decode in mid speech confirms that text, so a
    Stop right after the long utterance decodes it alone, not both."""
    decoder = spelling()
    recording = Recording(FinalPass(decoder))
    await recording.sentence()  # decoded up to its pause; nothing has confirmed it yet
    assert recording.final.settled_text == ""
    recording.speak(6)  # 3.9 s past the pause: a breath may still come
    assert not recording.final.confirm_due(recording.samples)
    recording.speak(1)
    assert recording.final.confirm_due(recording.samples)
    await recording.final.confirm(recording.samples)
    assert recording.final.settled_text == said(8)
    assert decoder.in_speech == [False, True]  # only the confirmation's audio ends in speech
    assert not recording.final.confirm_due(recording.samples)
    end = recording.speak(9)  # 16 words without a breath, and Stop at once
    assert await recording.final.finish(end) == said(24)
    assert decoder.decoded[-1] <= 9.5 * SAMPLE_RATE  # the long utterance and its lead-in


async def test_a_confirmation_settles_its_own_words_not_an_earlier_decodes():
    """Each decode respells the first word: the one settled is the confirmation's, which
    heard the most, not that of a decode in between (tiny.en: "an old-sposed young man"
    from a decode at a moment's quiet, "an ill-disposed young man" from the confirmation)."""
    decoder = spelling(respell=True)
    recording = Recording(FinalPass(decoder))
    await recording.sentence()
    end = recording.speak(1)
    await recording.final.decode_to(end)  # speech went quiet a moment, 1.5 s on
    recording.speak(6)
    await recording.final.confirm(recording.samples)
    assert recording.final.settled_text == " ".join(["v3", *said(8).split()[1:]])
    text = await recording.final.finish(recording.samples)
    assert text.split()[8:] == ["v4", *said(recording.words).split()[9:]]


async def test_a_confirmation_that_disagrees_is_tried_once_and_loses_no_word():
    speller = Speller()

    def hears_it_otherwise(audio: np.ndarray) -> str:  # every decode after the first
        words = speller(audio).split()
        return " ".join(words if speller.decodes == 1 else reversed(words))

    recording = Recording(FinalPass(FakeWorker(hears_it_otherwise)))
    await recording.sentence()
    recording.speak(7)
    assert recording.final.confirm_due(recording.samples)
    await recording.final.confirm(recording.samples)
    assert recording.final.settled_text == ""
    recording.speak(10)
    assert not recording.final.confirm_due(recording.samples)  # once per pause
    text = await recording.final.finish(recording.samples)
    assert sorted(text.split()) == sorted(said(recording.words).split())


async def test_silence_before_speech_is_dropped_but_a_lead_in_is_kept():
    decoder = spelling()
    final = FinalPass(decoder)
    final.append(pause(30.0))
    final.drop_silence(30 * SAMPLE_RATE)
    assert final.kept_samples == SAMPLE_RATE  # one second before whatever comes next
    final.append(spoken(0, 4))
    assert await final.finish(32 * SAMPLE_RATE) == said(4)


def session(decoder, chunks, cfg=None):
    """A live session over ``chunks``: (session, its source, its events, its final pass)."""
    source = FakeSource(chunks)
    events = FakeSessionEvents()
    final = FinalPass(decoder)
    live = LiveSession(cfg or Config(), source, FakeStream(live=False), final, FakeVAD(), events)
    return live, source, events, final


def dictation(sentences: int, words: int = 8, pause_s: float = 1.0) -> list[np.ndarray]:
    """Chunks of 0.5 s as a device delivers them: sentences with pauses between."""
    audio = np.concatenate(
        [np.concatenate([spoken(n * words, words), pause(pause_s)]) for n in range(sentences)]
    )
    return np.split(audio, audio.size // WORD)


async def until(condition, timeout=10.0):
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.001)


async def test_a_worker_that_stalls_for_a_minute_loses_no_audio():
    decoder = spelling()
    decoder.gate.clear()  # busy with something else
    chunks = dictation(12)  # 12 sentences, 60 s
    live, _source, events, _final = session(decoder, chunks)
    await live.start()
    await until(lambda: live.samples == sum(c.size for c in chunks))
    decoder.gate.set()  # free again
    assert await live.finish() == said(12 * 8)
    assert not events.errors


async def test_ten_minutes_of_dictation_stay_bounded_in_memory_and_decode_size():
    decoder = spelling()
    chunks = dictation(120)  # 600 s
    live, source, _events, final = session(decoder, [])
    await live.start()
    kept = []
    for chunk in chunks:
        source.feed(chunk)
        await until(lambda: source.starved)
        kept.append(final.kept_samples)
    assert await live.finish() == said(120 * 8)
    assert max(kept) <= (WINDOW_S + 6) * SAMPLE_RATE  # a window and the sentence after it
    assert max(decoder.decoded) <= WINDOW_S * SAMPLE_RATE


async def test_past_capacity_the_oldest_audio_goes_to_one_wav_reported_first_and_at_the_end(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    cfg = Config()
    cfg.audio.capacity_s = 70
    decoder = spelling()
    decoder.gate.clear()  # never gets to decode in time
    chunks = dictation(40)  # 200 s: past capacity three times, 60 s spilled each time
    live, source, events, final = session(decoder, chunks, cfg)
    await live.start()
    await until(lambda: events.errors)
    assert "could not be transcribed" in str(events.errors[0])
    await until(lambda: source.starved)
    assert final.kept_samples <= 70 * SAMPLE_RATE
    assert len(events.errors) == 1  # later spills go to the same file, unannounced
    decoder.gate.set()
    text = await live.finish()
    assert len(events.errors) == 2  # and once more at the end, with the total
    (wav,) = (tmp_path / "v2m" / "recordings").glob("*.wav")
    with wave.open(str(wav)) as kept:
        pcm = np.frombuffer(kept.readframes(kept.getnframes()), "<i2")
    assert str(wav) in str(events.errors[0]) and str(wav) in str(events.errors[1])
    assert f"{pcm.size / SAMPLE_RATE:.0f} s of audio" in str(events.errors[1])
    audio = np.concatenate(chunks)
    assert pcm.size >= 120 * SAMPLE_RATE
    # The file holds the oldest audio in order (words clip to full scale as PCM) and the
    # final text picks up where it ends: nothing is lost or said twice.
    assert np.array_equal(pcm // 32767, np.clip(audio[: pcm.size], 0, 1).astype("<i2"))
    assert text == Speller()(audio[pcm.size :])


async def test_no_provisional_update_waits_behind_a_full_context_decode():
    decoder = spelling()
    decoder.gate.clear()  # the pause's decode stays in flight
    # For each provisional update, how many full-context decodes had begun.
    started: list[int] = []
    provisional = FakeStream(live=False, on_update=lambda: started.append(len(decoder.decoded)))
    chunks = dictation(3)  # speech, a pause, more speech while that pause is decoded
    ticks = iter(range(10**6))  # every update is due
    live = LiveSession(
        Config(),
        FakeSource(chunks),
        provisional,
        FinalPass(decoder),
        FakeVAD(),
        FakeSessionEvents(),
        clock=lambda: float(next(ticks)),
    )
    await live.start()
    await until(lambda: live.samples == sum(c.size for c in chunks))
    assert decoder.decoded, "the first pause was not decoded"
    assert started, "no provisional update while speaking"
    assert all(begun == 0 for begun in started)
    decoder.gate.set()
    assert await live.finish() == said(3 * 8)


async def spoken_live(decoder, audio: np.ndarray, step_s: float) -> tuple:
    """A live session whose VAD stays in speech 300 ms into silence, as Silero's does, fed
    ``audio`` a ``step_s`` chunk at a time, each heard before the next: (session, its final
    pass, its VAD, whether the VAD was in speech after each chunk)."""
    source = FakeSource()
    final = FinalPass(decoder)
    vad = FakeVAD(hangover_ms=300)
    live = LiveSession(Config(), source, FakeStream(live=False), final, vad, FakeSessionEvents())
    await live.start()
    in_speech = []
    for chunk in np.split(audio, audio.size // round(step_s * SAMPLE_RATE)):
        source.feed(chunk)
        await until(lambda: source.starved)
        in_speech.append(vad.speech_active)
    return live, final, vad, in_speech


async def test_the_final_decode_starts_before_the_vad_declares_the_pause():
    decoder = spelling()
    audio = np.concatenate([spoken(0, 8), pause(1.0), spoken(8, 8), pause(0.2)])
    live, final, vad, _ = await spoken_live(decoder, audio, 0.1)
    assert vad.speech_active  # 0.2 s after the last word: no pause yet for the VAD
    speech_end = 16 * WORD + SAMPLE_RATE
    await until(lambda: final.decoded_until >= speech_end)  # yet its decode is done
    before = len(decoder.decoded)
    assert await live.finish() == said(16)  # so a Stop now has nothing left to decode
    assert len(decoder.decoded) == before


async def test_text_settles_at_a_breath_too_short_for_the_vad_to_call_a_pause():
    """A reader breathes between sentences for less than the VAD's min_silence_ms: text
    still settles there, so a Stop right after the last sentence decodes the last one or
    two, not everything since the dictation began (a window of up to 28 s)."""
    decoder = spelling()
    audio = np.concatenate([np.concatenate([spoken(n * 8, 8), pause(0.25)]) for n in range(6)])
    live, _final, _vad, in_speech = await spoken_live(decoder, audio, 0.05)
    assert all(in_speech)  # the VAD never heard a pause
    assert await live.finish() == said(48)
    assert max(decoder.decoded) <= 9 * SAMPLE_RATE  # two sentences and their breaths


async def test_a_stop_after_a_long_utterance_decodes_it_alone():
    """Through the session: a sentence, a pause, then 8 s of speech without a breath; the
    text before the pause is confirmed while the long one is spoken."""
    decoder = spelling()
    audio = np.concatenate([spoken(0, 8), pause(1.0), spoken(8, 16)])
    live, final, _vad, _ = await spoken_live(decoder, audio, 0.1)
    await until(lambda: final.settled_text == said(8))
    assert await live.finish() == said(24)
    assert decoder.decoded[-1] <= 9.5 * SAMPLE_RATE


async def test_a_recording_holds_file_transcription_until_it_ends():
    worker = spelling()
    live = LiveSession(
        Config(),
        FakeSource(dictation(1)),
        FakeStream(live=False),
        FinalPass(worker),
        FakeVAD(),
        FakeSessionEvents(),
        dictating=worker.dictating,
    )
    await live.start()
    assert worker.held == 1
    assert await live.finish() == said(8)
    assert worker.held == 0


async def test_the_earlier_decode_says_where_its_sentence_ends():
    """A later decode that agrees may run the sentence on with a comma; the earlier one
    ended at the pause, and its sentence end stands ("scratch that" goes back to it), with
    a capital after it."""
    assert split_agreed("Is the meeting at noon?", "Is the meeting at noon, I will be") == (
        "Is the meeting at noon?",
        "I will be",
    )
    earlier = "The quick round-fark stump over the lazy nog. Please send the report."
    later = "The quick round fox jump over the lazy dog. Please send the report, we should meet"
    assert split_agreed(earlier, later) == (
        "The quick round fox jump over the lazy dog. Please send the report.",
        "We should meet",
    )
    assert split_agreed("Remember to buy milk,", "Remember to buy milk, bread and eggs") == (
        "Remember to buy milk,",
        "bread and eggs",
    )
    assert split_agreed(
        "The party you are trying to reach", "The party you are trying to reach does not"
    ) == (
        "The party you are trying to reach",
        "does not",
    )


def test_words_heard_with_the_audio_before_them_stand_against_a_cold_start():
    """A decode from an earlier start heard "bread" after "milk,"; one starting at that
    comma heard "Red". Where they nearly agree, the earlier one's words are kept when it
    heard the audio before them, and the later one's (it heard more after) otherwise."""
    earlier = "bread and fresh vegetables on the way home."
    later = "Red and fresh vegetables on the way home. Our new product"
    assert split_agreed(earlier, later, keep_earlier=True) == (earlier, "Our new product")
    assert split_agreed(earlier, later) == (
        "Red and fresh vegetables on the way home.",
        "Our new product",
    )


def test_near_agreement_finds_where_the_earlier_decode_ends_in_the_later_one():
    earlier = "The quick round-fark stump over the lazy nog. Please send the report."
    later = "The quick round fox jump over the lazy dog. Please send the report. We should meet"
    assert split_agreed(earlier, later) == (
        "The quick round fox jump over the lazy dog. Please send the report.",
        "We should meet",
    )
    # The same words later on do not move the seam there.
    assert split_agreed("a b c d e", "a b x d e f g a b c d e") == ("a b x d e", "f g a b c d e")
    # Too different, or differing at the seam by more than a word: no agreement.
    assert split_agreed("The quick round-fark stump over the lazy nog.", later) is None
    assert split_agreed("a b c d", "a b x y z") is None


def test_a_common_last_word_is_no_seam_for_words_that_differ_before_it():
    # tiny.en wrote a command twice at a window's end; the next decode from that start heard
    # the next sentence instead. Only "period" lines up after the first copy: the earlier
    # decode's last five words are not the later one's, and its repeat was made final.
    earlier = (
        "question mark, I will be late, scratch that, I will be early, period, "
        "I will be early, period,"
    )
    later = (
        "question mark, I will be late, scratch that, I will be early, period. "
        "The first item is done, period, new line, the second item is next, period."
    )
    assert split_agreed(earlier, later, keep_earlier=True) is None
    assert split_agreed(earlier, later) is None


def test_a_phrase_written_twice_is_no_respelling_of_the_sentence_after_it():
    # tiny.en wrote a sentence twice where its window ended; a decode from the same start
    # heard the next sentence there. Near agreement lined the repeat up with "the second item
    # is" and made the repeat, or words the next window decoded again, final.
    earlier = (
        "Question mark, I will be late, scratch that, I will be clearly period. "
        "The first item is done. The first item is done."
    )
    later = (
        "question mark, I will be late, scratch that, I will be early, period. "
        "The first item is done, period, new line, the second item is next, period. "
        "He said, he said,"
    )
    assert split_agreed(earlier, later, keep_earlier=True) is None
    assert split_agreed(earlier, later) is None
    # A word respelt as two still agrees ("clearly" / "early, period").
    assert split_agreed(
        "I will be clearly period. The first item is done.",
        "I will be early, period. The first item is done. The second",
    ) == ("I will be early, period. The first item is done.", "The second")
