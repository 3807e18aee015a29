"""LocalAgreement and tail bookkeeping of ProvisionalText, with a scripted fake worker."""

from __future__ import annotations

import asyncio
import itertools
import weakref

import numpy as np
import pytest
from fakes import FakeWorker

from v2md.asr.streaming import (
    COMMIT_MARGIN_S,
    CONTEXT_SENTENCES,
    HARD_TAIL_S,
    TRIM_TAIL_S,
    UNSETTLED_TAIL_S,
    ProvisionalText,
    agreed_prefix,
    beyond_committed,
    keep_start,
    word_key,
)
from v2md.asr.types import Word
from v2md.audio.format import SAMPLE_RATE
from v2md.config import WhisperConfig
from v2md.errors import InvalidArgumentError


def words(*items: tuple[float, float, str]) -> list[Word]:
    return [Word(start, end, text) for start, end, text in items]


def make(timeline: list[Word], hearing=None) -> tuple[ProvisionalText, FakeWorker]:
    """A transcriber over a worker that hears ``timeline`` in the audio ``feed`` gives it
    (and changes what it heard with ``hearing``, see fakes.FakeWorker)."""
    worker = FakeWorker(timeline=timeline, hearing=hearing)
    return ProvisionalText(worker, WhisperConfig()), worker


def half_heard_last(heard: list[Word], _start: float, _end: float, decode: int) -> list[Word]:
    """The word at the edge changes with every decode, like a half-heard word."""
    if not heard:
        return heard
    last = heard[-1]
    period = "." if last.text.endswith(".") else ""
    return [*heard[:-1], Word(last.start, last.end, f" guess{decode}{period}")]


# Samples fed to each transcriber so far: where the next chunk starts on its timeline.
_fed: weakref.WeakKeyDictionary[ProvisionalText, int] = weakref.WeakKeyDictionary()


def feed(stream: ProvisionalText, seconds: float) -> None:
    """Append ``seconds`` of audio whose samples hold their own index on the timeline
    (exact in float32 up to 2**24 samples, 17 minutes)."""
    start = _fed.get(stream, 0)
    end = start + round(seconds * SAMPLE_RATE)
    stream.append(np.arange(start, end, dtype=np.float32))
    _fed[stream] = end


def sentence_timeline(count: int, words_per_sentence: int = 6, word_s: float = 0.4):
    """``count`` sentences of ``w<i>`` words, each sentence ending with a period and a pause."""
    timeline, t, n = [], 0.0, 0
    for _ in range(count):
        for k in range(words_per_sentence):
            end_mark = "." if k == words_per_sentence - 1 else ""
            timeline.append(Word(t, t + word_s - 0.05, f" w{n}{end_mark}"))
            t += word_s
            n += 1
        t += 0.5
    return timeline


def test_word_key_ignores_case_and_punctuation():
    assert word_key(" Friday.") == word_key("friday,") == "friday"
    assert word_key(" don't") == "don't"
    assert word_key(" .") == ""


def test_agreed_prefix_stops_at_first_difference():
    a = words((0, 1, " the"), (1, 2, " cat"), (2, 3, " sat"))
    b = words((0, 1, " The"), (1, 2, " cat,"), (2, 3, " sang"), (3, 4, " on"))
    assert agreed_prefix(a, b) == 2
    assert agreed_prefix([], b) == 0
    assert agreed_prefix(a, a[:1]) == 1


def test_beyond_committed_drops_words_inside_committed_audio():
    committed = words((0.0, 0.5, " hello"), (0.5, 1.0, " world"))
    decoded = words((0.45, 0.95, " world"), (1.1, 1.5, " again"))
    assert [w.text for w in beyond_committed(decoded, committed)] == [" again"]


def test_beyond_committed_removes_repeated_ngram_at_the_seam():
    committed = words((0.0, 0.5, " see"), (0.5, 1.0, " you"), (1.0, 1.4, " soon"))
    # Timestamps drifted late, but the text repeats the committed words.
    decoded = words((1.3, 1.6, " you"), (1.6, 1.9, " soon"), (2.0, 2.4, " friend"))
    assert [w.text for w in beyond_committed(decoded, committed)] == [" friend"]


def test_beyond_committed_keeps_everything_without_commitments():
    decoded = words((0.0, 0.4, " hi"))
    assert beyond_committed(decoded, []) == decoded


def test_keep_start_keeps_what_a_decode_missed_and_takes_what_it_heard_again():
    shown = words((0.0, 0.3, " The"), (0.3, 0.7, " meeting"), (0.7, 1.0, " with"))
    missed = words((0.75, 1.0, " with"), (1.0, 1.3, " the"))  # "The meeting" not heard
    assert [w.text for w in keep_start(shown, missed)] == [" The", " meeting", " with", " the"]
    heard = words((0.0, 0.3, " A"), (0.35, 0.7, " meeting"))  # corrected, timestamps moved
    assert keep_start(shown, heard) == heard
    assert keep_start(shown, []) == shown  # a decode that heard nothing takes nothing back


async def test_a_sentence_commits_once_two_decodes_agree_on_it_past_the_lookahead():
    stream, _ = make(words((0.0, 0.4, " One"), (0.5, 0.9, " two."), (1.5, 1.9, " Three")))
    feed(stream, 1.0)
    assert await stream.update() == "One two."
    feed(stream, 1.0)
    assert await stream.update() == "One two. Three"
    assert stream.committed_text == ""  # agreed, but the sentence ended < 3 s ago
    feed(stream, 1.0)
    assert await stream.update() is None  # no new words
    assert stream.committed_text == ""
    feed(stream, 1.0)
    await stream.update()  # 3.1 s past "two.", and this decode agrees with the last
    assert stream.committed_text == "One two."
    assert await stream.update() is None  # no new audio: nothing decoded, nothing changed


async def test_a_sentence_the_decodes_disagree_on_is_not_committed():
    stream, _ = make(words((0.0, 0.4, " Steady."), (0.5, 0.9, " Edge.")), half_heard_last)
    for _ in range(10):
        feed(stream, 0.5)
        await stream.update()
    assert stream.committed_text == "Steady."  # "Edge." changed with every decode


async def test_run_on_speech_commits_agreed_words_short_of_the_edge():
    timeline = sentence_timeline(1, words_per_sentence=60)  # 24 s, one period at the end
    stream, worker = make(timeline)
    for _ in range(40):
        feed(stream, 0.5)
        await stream.update()
    committed = stream.committed_text.split()
    assert len(committed) >= 20 and committed == [f"w{n}" for n in range(len(committed))]
    assert timeline[len(committed) - 1].end <= 20.0 - COMMIT_MARGIN_S
    assert max(seconds for _, seconds, _ in worker.calls) <= TRIM_TAIL_S + 1.0


async def test_tail_is_cut_at_sentence_end_and_prompt_carries_committed_text():
    stream, worker = make(sentence_timeline(3))
    for _ in range(40):
        feed(stream, 0.5)
        await stream.update()
    assert stream.committed_text == " ".join(
        f"w{n}" + ("." if n % 6 == 5 else "") for n in range(18)
    )
    starts = [start for start, _, _ in worker.calls]
    assert starts == sorted(starts) and starts[-1] > 0  # the tail only ever moves forward
    later = [prompt for start, _, prompt in worker.calls if start > 3.0]
    assert later and all("w0" in prompt for prompt in later)


async def test_cut_falls_in_the_pause_after_the_last_committed_sentence():
    assert CONTEXT_SENTENCES == 0
    stream, worker = make(sentence_timeline(3))  # sentences end 2.35 s and 5.25 s; pauses 0.55 s
    for _ in range(18):
        feed(stream, 0.5)
        await stream.update()
    assert stream.committed_text.endswith("w10 w11.")
    start, _, prompt = worker.calls[-1]
    assert 5.25 < start < 5.8  # cut between w11's end and w12, clipping neither
    assert prompt.strip().endswith("w11.")


async def test_rebase_takes_full_context_text_and_decodes_only_what_follows():
    stream, worker = make(sentence_timeline(3))  # sentences end 2.35 s and 5.25 s
    for _ in range(6):
        feed(stream, 0.5)
        await stream.update()
    pause = round(2.6 * SAMPLE_RATE)
    stream.rebase(pause, "Full context. w0 w1 w2 w3 w4 w5.")
    shown = None
    for _ in range(6):
        feed(stream, 0.5)
        shown = await stream.update() or shown
    start, _, prompt = worker.calls[-1]
    assert start == pytest.approx(2.6)  # nothing before the pause is decoded again
    assert prompt.endswith("w4 w5.")
    assert shown.startswith("Full context. w0 w1 w2 w3 w4 w5. w6")


async def test_an_update_in_flight_when_rebased_is_discarded():
    stream, worker = make(sentence_timeline(1))
    worker.gate.clear()
    feed(stream, 3.0)
    update = asyncio.create_task(stream.update())
    await asyncio.sleep(0)
    stream.rebase(round(2.6 * SAMPLE_RATE), "Settled.")
    worker.gate.set()
    assert await update is None
    assert stream.committed_text == "Settled."


async def test_ten_minute_dictation_keeps_the_decoded_tail_bounded():
    stream, worker = make(sentence_timeline(150, words_per_sentence=8))  # 555 s of speech
    for _ in range(1100):
        feed(stream, 0.5)
        await stream.update()
    longest = max(seconds for _, seconds, _ in worker.calls)
    assert longest <= UNSETTLED_TAIL_S + 1.0
    assert len(stream.committed_text.split()) > 1150
    assert max(len(prompt.split()) for _, _, prompt in worker.calls) <= 40


async def test_speech_without_agreement_is_forced_out_of_the_tail():
    # Every decode disagrees on every word: without a hard bound the tail would grow forever.
    def disagreeing(heard, _start, _end, decode):
        return [Word(w.start, w.end, f"{w.text}{decode}") for w in heard]

    stream, worker = make(sentence_timeline(20, words_per_sentence=10), disagreeing)
    for _ in range(200):
        feed(stream, 0.5)
        await stream.update()
    assert max(seconds for _, seconds, _ in worker.calls) <= HARD_TAIL_S + 0.5
    assert stream.committed_text  # forced commits happened


async def test_decodes_that_hear_nothing_lose_no_speech():
    # Whisper now and then returns nothing for real speech; only the VAD may call it a pause.
    def deaf(heard, _start, end, _decode):
        return [] if 4.0 < end < 13.0 else heard

    timeline = sentence_timeline(3, words_per_sentence=10)
    stream, _ = make(timeline, deaf)
    shown = []
    for _ in range(30):
        feed(stream, 0.5)
        if (text := await stream.update()) is not None:
            shown.append(text)
    assert_never_takes_back(shown)
    assert shown[-1] == "".join(w.text for w in timeline).strip()


def assert_never_takes_back(shown: list[str]) -> None:
    """Each text keeps every word the one before showed (a scripted worker never corrects)."""
    for before, after in itertools.pairwise(shown):
        assert after.split()[: len(before.split())] == before.split(), (before, after)


async def test_a_decode_that_misses_the_start_of_its_window_takes_no_word_back():
    # Every other decode misses what its window's first second holds, as Whisper does now and
    # then after a prompt, or when the window was cut just after a word began.
    def skipping(heard, _start, _end, decode):
        return [w for w in heard if w.start >= 1.0] if decode % 2 else heard

    timeline = sentence_timeline(4, words_per_sentence=8)
    stream, worker = make(timeline, skipping)
    shown = []
    for _ in range(40):
        feed(stream, 0.5)
        if (text := await stream.update()) is not None:
            shown.append(text)
    assert_never_takes_back(shown)
    assert shown[-1] == "".join(w.text for w in timeline).strip()
    assert any(start > 0 for start, _, _ in worker.calls)  # windows did start past the first


async def test_a_rebase_keeps_the_words_shown_past_its_pause():
    stream, _ = make(sentence_timeline(2))  # w0..w5. end 2.35 s; w6 starts at 2.9 s
    shown = []
    for _ in range(8):
        feed(stream, 0.5)
        if (text := await stream.update()) is not None:
            shown.append(text)
    assert "w7" in shown[-1]
    shown = [stream.rebase(round(2.6 * SAMPLE_RATE), "W0 w1 w2 w3 w4 w5.")]
    assert shown[0].startswith("W0 w1 w2 w3 w4 w5. w6 w7")  # corrected, and nothing dropped
    for _ in range(4):
        feed(stream, 0.5)
        if (text := await stream.update()) is not None:
            shown.append(text)
    assert_never_takes_back(shown)
    assert shown[-1] == "W0 w1 w2 w3 w4 w5. w6 w7 w8 w9 w10 w11."


async def test_a_pause_costs_no_decode_commits_what_was_said_and_keeps_the_tail_short():
    stream, worker = make(sentence_timeline(1))  # w0..w5 end at 2.35 s
    speech_end = round(2.5 * SAMPLE_RATE)  # where the VAD heard the speech end (padded)
    for _ in range(6):
        feed(stream, 0.5)
        await stream.update(speech_end)  # up to what was fed, while that is less
    decodes = len(worker.calls)
    assert worker.calls[-1][1] == pytest.approx(2.5)  # the trailing silence was not decoded
    assert stream.committed_text != "w0 w1 w2 w3 w4 w5."  # the last words await more audio
    for _ in range(120):  # a minute of silence, updates every 0.5 s
        feed(stream, 0.5)
        await stream.update(speech_end)
    assert len(worker.calls) == decodes  # the pause cost no inference
    assert stream.committed_text == "w0 w1 w2 w3 w4 w5."  # the pause made it final
    feed(stream, 0.5)  # speech again: its decode starts near it, not back in the pause
    await stream.update()
    assert worker.calls[-1][1] <= TRIM_TAIL_S


def test_append_rejects_non_mono_or_integer_audio():
    stream, _ = make([])
    with pytest.raises(InvalidArgumentError):
        stream.append(np.zeros((10, 2), dtype=np.float32))
    with pytest.raises(InvalidArgumentError):
        stream.append(np.zeros(10, dtype=np.int16))
