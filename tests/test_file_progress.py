"""FileProgress: a long TranscribeFile tells how far it is, and v2mctl draws it as a bar."""

from __future__ import annotations

import io
import itertools
import os
import subprocess
import sys

import pytest
import speech
from harness import ROOT, assert_eventually, read_until_closed

from v2md.ctl import ProgressBar, bar_line
from v2md.service import Throttle

MAX_WER = 20.0  # tiny.en on espeak speech, as in test_dictation


async def test_throttle_passes_one_value_per_interval_the_newest():
    now = [0.0]
    sent: list[float] = []
    throttle = Throttle(sent.append, 1.0, clock=lambda: now[0])
    throttle(0.0)
    assert sent == [0.0]  # the first at once
    throttle(0.1)
    throttle(0.2)
    assert sent == [0.0]  # held back within the interval
    now[0] = 1.0
    throttle(0.3)
    assert sent == [0.0, 0.3]  # the interval is over: the newest at once, 0.1 and 0.2 dropped
    throttle(0.4)
    throttle.flush()
    throttle.flush()
    assert sent == [0.0, 0.3, 0.4]  # flush passes on what is held, once
    throttle.close()


async def test_throttle_passes_a_held_value_on_when_the_interval_ends():
    sent: list[float] = []
    throttle = Throttle(sent.append, 0.05, clock=lambda: 0.0)
    throttle(0.0)
    throttle(0.5)
    assert sent == [0.0]
    await assert_eventually(lambda: sent == [0.0, 0.5], timeout=5)
    throttle.close()


def test_bar_line_fills_with_the_fraction_and_fits_the_terminal():
    assert bar_line(0.0, 80) == "[" + "-" * 40 + "]   0%"
    assert bar_line(0.5, 80) == "[" + "#" * 20 + "-" * 20 + "]  50%"
    assert bar_line(1.0, 80) == "[" + "#" * 40 + "] 100%"
    assert bar_line(0.5, 30) == "[" + "#" * 11 + "-" * 11 + "]  50%"
    assert len(bar_line(0.5, 30)) == 29  # one column short: no wrap on any terminal
    assert bar_line(7.0, 80) == bar_line(1.0, 80)  # out of range: clamped


def test_progress_bar_redraws_in_place_and_wipes_itself():
    out = io.StringIO()
    bar = ProgressBar(out)
    bar.draw(0.5)
    bar.draw(0.5)  # unchanged: not drawn again
    bar.draw(1.0)
    bar.clear()
    line = bar_line(1.0, 80)
    assert out.getvalue() == f"\r{bar_line(0.5, 80)}\r{line}\r{' ' * len(line)}\r"


@pytest.mark.slow
async def test_a_long_file_reports_progress_up_to_the_end_before_the_reply(client, tmp_path):
    iface, _ = client
    audio, reference = speech.utterance(65)  # three 30 s windows
    path = str(speech.write_wav(tmp_path / "long.wav", audio))
    seen: list[tuple[str, float]] = []
    iface.on_file_progress(lambda of, fraction: seen.append((of, fraction)))
    text = await iface.call_transcribe_file(path)
    before_reply = list(seen)  # signals sent before the reply are handled before it
    assert speech.wer(reference, text) <= MAX_WER, text
    assert {of for of, _ in before_reply} == {path}
    fractions = [fraction for _, fraction in before_reply]
    assert fractions[0] == 0.0 and fractions[-1] == 1.0 and fractions.count(1.0) == 1
    assert all(a <= b for a, b in itertools.pairwise(fractions)), fractions
    assert any(0.0 < f < 1.0 for f in fractions), fractions  # the bar moves on the way


def _v2mctl(daemon, *argv: str, stderr: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "DBUS_SESSION_BUS_ADDRESS": daemon.bus.address}
    return subprocess.Popen(
        [sys.executable, "-m", "v2md.ctl", *argv],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=stderr,
    )


@pytest.mark.slow
def test_v2mctl_transcribe_draws_a_bar_on_a_terminal_only(daemon, speech_file):
    terminal, other_end = os.openpty()
    proc = _v2mctl(daemon, "transcribe", str(speech_file.path), stderr=other_end)
    os.close(other_end)  # v2mctl holds the only one left: reading ends when it exits
    try:
        drawn = read_until_closed(terminal, timeout=120).decode()
        text = proc.communicate(timeout=30)[0].decode()
    finally:
        os.close(terminal)
        proc.kill()  # only if it is still running
    assert proc.returncode == 0, drawn
    assert speech.wer(speech_file.text, text) <= MAX_WER, text
    full = bar_line(1.0, 80)  # a new pseudo-terminal states no width: 80 columns
    assert f"\r{bar_line(0.0, 80)}" in drawn and f"\r{full}" in drawn, drawn
    assert drawn.endswith(f"\r{' ' * len(full)}\r"), drawn  # wiped: the text stands alone

    piped = _v2mctl(daemon, "transcribe", str(speech_file.path), stderr=subprocess.PIPE)
    out, err = piped.communicate(timeout=120)
    assert piped.returncode == 0 and out.decode() == text
    assert err == b""  # no bar where stderr is not a terminal
