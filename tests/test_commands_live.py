"""Spoken commands through the live daemon (issue 19): the dictated corpus of
``tests/dictated.py`` spoken by espeak-ng, decoded by TranscribeFile and by a live
dictation (capture, VAD pauses, final pass), and prose with the command words as words.

The daemon runs as a user has it: the bundled English model, Language auto, commands on.
"""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import time

import dictated
import numpy as np
import pytest
import speech
from dictated import NAMES, carried_out
from harness import STOP_AFTER_PAUSE_S, Watch, assert_eventually, running_daemon

from v2md.asr.models import whole_words
from v2md.text.commands import apply, load_table
from v2md.text.nearmiss import Lexicon
from v2md.text.vocabulary import Vocabulary

pytestmark = pytest.mark.slow

# Measured on this corpus with tiny.en (2 cores, AVX2 kernels): 29 of 42 exact (69 %),
# every miss a word Whisper misheard ("noon" as "home", "bread" as "red", "period" as "the
# area", "scratch that" as "scratch") or a pause it wrote as a comma ("Hello, Anna"); the
# commands carried out (marks and breaks as expected, no command left as words) in 37 to
# 38 of 42 (90 %). Near misses of commands set off by pauses ("peer it", "andclamation
# mark") count as commands: no near miss came up in these runs, so the figures stand, and
# none was taken from prose. The bounds leave room for another CPU's kernels.
MIN_EXACT = 25
MIN_CARRIED_OUT = 35


@pytest.fixture(scope="module")
def spoken(tmp_path_factory):
    """Each command sentence and each prose sentence as a WAV."""
    folder = tmp_path_factory.mktemp("dictated")
    commands = [speech.speak(said) for said, _ in dictated.COMMANDS]
    prose = [speech.speak(said) for said, _ in dictated.PROSE]
    return (
        [speech.write_wav(folder / f"command{n}.wav", a) for n, a in enumerate(commands)],
        [speech.write_wav(folder / f"prose{n}.wav", a) for n, a in enumerate(prose)],
        commands,
    )


async def test_dictated_commands_give_the_expected_text(own_bus, tmp_path, spoken):
    assert len(dictated.COMMANDS) >= 40
    wavs, _prose, _audio = spoken
    async with running_daemon(own_bus, tmp_path / "home") as (_d, iface, _props):
        texts = [await iface.call_transcribe_file(str(wav)) for wav in wavs]
    pairs = [(want, got) for (_said, want), got in zip(dictated.COMMANDS, texts, strict=True)]
    exact = sum(got == want for want, got in pairs)
    done = sum(carried_out(got, want) for want, got in pairs)
    report = "\n".join(
        f"{'ok ' if got == want else 'cmd' if carried_out(got, want) else 'BAD'} "
        f"{want!r} <- {got!r}"
        for want, got in pairs
    )
    print(f"{exact} of {len(texts)} exact, commands carried out in {done}\n{report}")
    assert exact >= MIN_EXACT, report
    assert done >= MIN_CARRIED_OUT, report


async def test_prose_with_command_words_gives_no_false_command(own_bus, tmp_path, spoken):
    """The same decode with commands off (and their prompt given as the initial prompt, so
    Whisper is told the same) is the text before the rules: with commands on, it comes back
    unchanged. Whisper falls back to sampling on audio it is unsure of, so one sentence may
    decode differently in the two daemons; the rules are then checked on the decoded text."""
    _commands, wavs, _audio = spoken
    table = load_table("en")
    assert table is not None
    async with running_daemon(own_bus, tmp_path / "on") as (_d, iface, _props):
        shaped = [await iface.call_transcribe_file(str(wav)) for wav in wavs]
    async with running_daemon(
        own_bus,
        tmp_path / "off",
        V2M_COMMANDS__ENABLED="false",
        V2M_WHISPER__INITIAL_PROMPT=table.prompt,
    ) as (_d, iface, _props):
        raw = [await iface.call_transcribe_file(str(wav)) for wav in wavs]
    report = "\n".join(f"{r!r} -> {s!r}" for r, s in zip(raw, shaped, strict=True))
    assert sum(s != r for s, r in zip(shaped, raw, strict=True)) <= 1, report
    lexicon = Lexicon.of(whole_words())
    assert [apply(r, table, lexicon) for r in raw] == raw, report
    # Nor does the prose become the names of tests/test_vocabulary_live.py.
    vocabulary = Vocabulary(tmp_path / "vocabulary.json")
    for _said, name in NAMES:
        vocabulary.add_word(name)
    assert [vocabulary.correct(r, lexicon) for r in raw] == raw, report
    # And the decode heard the command words: the test is of prose that holds them.
    kept = [word for (_said, word), text in zip(dictated.PROSE, raw, strict=True) if word in text]
    assert len(kept) >= len(dictated.PROSE) - 4, report


async def heard_the_end(watch: Watch, speech_ends: float) -> None:
    """Wait until the VAD called the speech over after the monotonic time ``speech_ends``
    (it hears a pause within a sentence as an end too)."""
    await assert_eventually(
        lambda: any(t > speech_ends and not active for t, active in watch.speech),
        timeout=90,
        message=f"no end of speech heard after {speech_ends}",
    )


def voiced_s(audio: np.ndarray) -> float:
    """Where the last sound in ``audio`` ends (espeak-ng ends a sentence with silence)."""
    return float(np.nonzero(np.abs(audio) > 0.01)[0][-1] + 1) / speech.SAMPLE_RATE


# Sentences dictated one after another, a pause between them, in one live dictation: a
# scratch, a line break, a question, a quotation.
LIVE = (4, 1, 10, 9, 6)


async def test_commands_in_a_live_dictation(own_bus, tmp_path, spoken):
    _wavs, _prose, audio = spoken
    pause = speech.silence(1.2)
    parts = [np.concatenate([audio[n], pause]) for n in LIVE]
    last = LIVE[-1]
    last_starts_s = sum(p.size for p in parts[:-1]) / speech.SAMPLE_RATE
    wav = speech.write_wav(tmp_path / "live.wav", np.concatenate([*parts, speech.silence(30)]))
    # A replacement of the user's applies in the live path too, before the commands.
    expected = " ".join(dictated.COMMANDS[n][1] for n in LIVE).replace("work hard", "work smart")
    async with running_daemon(
        own_bus, tmp_path / "home", V2M_AUDIO__FILE=str(wav), V2M_AUDIO__REALTIME="true"
    ) as (daemon, iface, props):
        await iface.call_set_replacement("work hard", "work smart")
        batch = await iface.call_transcribe_file(str(wav))
        watch = Watch(iface, props)
        started = time.monotonic()
        await iface.call_start()
        await heard_the_end(watch, started + last_starts_s + voiced_s(audio[last]))
        await asyncio.sleep(STOP_AFTER_PAUSE_S)  # the user pauses, then presses the key
        text = await iface.call_stop()
        await assert_eventually(lambda: watch.finals, timeout=5)
        assert daemon.alive()
    print(f"expected {expected!r}\nlive     {text!r}\nbatch    {batch!r}")
    assert watch.finals == [text]
    assert carried_out(text, expected), (text, expected)
    assert "work smart" in text and "work hard" not in text, text
    # Whisper's own misheard words aside (tiny.en on espeak), the text is the batch's.
    assert speech.wer(expected, text) <= speech.wer(expected, batch) + 5, (text, batch)


async def test_a_dictation_recovered_after_a_crash_has_its_commands_carried_out(
    own_bus, tmp_path, spoken
):
    _wavs, _prose, audio = spoken
    said = (4, 12)
    pause = speech.silence(1.2)
    parts = [np.concatenate([pause, audio[n]]) for n in said]
    last = said[-1]
    last_starts_s = (sum(p.size for p in parts[:-1]) + pause.size) / speech.SAMPLE_RATE
    wav = speech.write_wav(tmp_path / "crash.wav", np.concatenate([*parts, speech.silence(30)]))
    expected = " ".join(dictated.COMMANDS[n][1] for n in said)
    settings = {"V2M_AUDIO__FILE": str(wav), "V2M_AUDIO__REALTIME": "true"}
    home = tmp_path / "home"
    async with running_daemon(own_bus, home, **settings) as (daemon, iface, props):
        watch = Watch(iface, props)
        started = time.monotonic()
        await iface.call_start()
        await heard_the_end(watch, started + last_starts_s + voiced_s(audio[last]))
        assert daemon.proc is not None
        daemon.proc.send_signal(signal.SIGKILL)  # before any Stop: the text is in no history
        daemon.proc.wait(timeout=30)
    async with running_daemon(own_bus, home, **settings):
        await assert_eventually(lambda: history_texts(home), timeout=90, message="not recovered")
    (text,) = history_texts(home)
    assert carried_out(text, expected), (text, expected)


def history_texts(home) -> list[str]:
    path = home / "data" / "v2m" / "history.sqlite3"
    if not path.exists():
        return []
    db = sqlite3.connect(path)
    try:
        return [raw for (raw,) in db.execute("SELECT raw FROM entries ORDER BY id")]
    finally:
        db.close()
