"""The personal vocabulary through the live daemon (issue 19): made-up names spelled right
once added, replacements exact, the list kept across a restart, bad input a named error,
and ``v2mctl words`` against the running daemon."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import speech
from dbus_fast import DBusError
from dictated import NAMES, name_error_rate, name_errors
from harness import ROOT, running_daemon

from v2md import INTERFACE
from v2md.errors import ERROR_PREFIX

pytestmark = pytest.mark.slow

# Measured with tiny.en (2 cores, AVX2 kernels) on espeak-ng's voice: before, none of the
# 11 name words spelled right (100 % error). After AddWord, Whisper alone gets 5 or 6 of 11
# wrong (45 to 55 %: it falls back to sampling on speech it is unsure of, so runs differ),
# near misses mostly ("Norblax Quintaro", "Melmira Droskov", "Sarkplex"); corrected to the
# user's words (nearmiss.py), 2 or 3 of 11 wrong (18 to 27 %), every name right in 6 or 7
# of 8 sentences, in three runs. Left wrong: "Calibrexa" where Whisper writes it (too far
# from "Kubrexa") and "warehouse" for "Yselda Vorhaus" (a common word, never replaced). The
# bounds leave two words, and two sentences, of room for another CPU's kernels.
MAX_NAME_ERRORS_AFTER = 46.0  # percent of the name words
MIN_SENTENCES_RIGHT_AFTER = 4  # of 8: every name in the sentence spelled right


@pytest.fixture(scope="module")
def name_wavs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("names")
    return [
        speech.write_wav(folder / f"name{n}.wav", speech.speak(said))
        for n, (said, _name) in enumerate(NAMES)
    ]


async def test_added_words_are_spelled_right_and_kept_across_a_restart(
    own_bus, tmp_path, name_wavs
):
    home = tmp_path / "home"
    async with running_daemon(own_bus, home) as (_d, iface, _props):
        before = [await iface.call_transcribe_file(str(wav)) for wav in name_wavs]
        for _said, name in NAMES:
            await iface.call_add_word(name)
        await iface.call_set_replacement("finance team", "FinOps team")
    # A new daemon with the same data directory has the words, and uses them.
    async with running_daemon(own_bus, home) as (_d, iface, _props):
        assert await iface.call_list_words() == [name for _said, name in NAMES]
        assert await iface.call_list_replacements() == [("finance team", "FinOps team")]
        after = [await iface.call_transcribe_file(str(wav)) for wav in name_wavs]
    right = sum(
        name_errors(name, text) == 0 for (_said, name), text in zip(NAMES, after, strict=True)
    )
    report = "\n".join(f"{b!r} -> {a!r}" for b, a in zip(before, after, strict=True))
    print(
        f"name word errors {name_error_rate(before):.0f} % -> {name_error_rate(after):.0f} %, "
        f"{right} of {len(NAMES)} sentences spelled right after\n{report}"
    )
    assert name_error_rate(after) < name_error_rate(before), report
    assert name_error_rate(after) <= MAX_NAME_ERRORS_AFTER, report
    assert right >= MIN_SENTENCES_RIGHT_AFTER, report
    # No name is written where it was not said (the prompt holds them all).
    for (said, name), text in zip(NAMES, after, strict=True):
        others = {word for _s, other in NAMES if other != name for word in other.split()}
        assert not others & set(text.replace(".", " ").split()), (said, text)


async def test_a_replacement_writes_its_written_form_exactly(own_bus, tmp_path):
    wav = speech.write_wav(tmp_path / "report.wav", speech.speak(speech.SENTENCES[1]))
    async with running_daemon(own_bus, tmp_path / "home") as (_d, iface, _props):
        plain = await iface.call_transcribe_file(str(wav))
        assert "finance team" in plain  # what Whisper hears, to be replaced
        await iface.call_set_replacement("Finance Team", "FinOps-Team (EMEA)")
        await iface.call_set_replacement("quarterly report", "Q3 report")
        replaced = await iface.call_transcribe_file(str(wav))
        await iface.call_remove_replacement("finance team")
        again = await iface.call_transcribe_file(str(wav))
    assert "FinOps-Team (EMEA)" in replaced and "finance team" not in replaced.lower()
    assert "Q3 report" in replaced and "quarterly" not in replaced.lower()
    assert replaced == plain.replace("finance team", "FinOps-Team (EMEA)").replace(
        "quarterly report", "Q3 report"
    )
    assert "finance team" in again and "Q3 report" in again


BAD = ("", "   ", "x" * 10_000, "a\tb", "a\x01b", "line\nbreak", "a\u200bb")


async def test_bad_input_is_a_named_error_and_the_daemon_keeps_running(own_bus, tmp_path):
    async with running_daemon(own_bus, tmp_path / "home") as (daemon, iface, props):
        await iface.call_add_word("Zorblax")
        calls = [
            *(lambda w=w: iface.call_add_word(w) for w in BAD),
            *(lambda w=w: iface.call_set_replacement(w, "x") for w in BAD),
            *(lambda w=w: iface.call_set_replacement("x", w) for w in BAD),
            lambda: iface.call_remove_word("never added"),
            lambda: iface.call_remove_replacement("never set"),
        ]
        for call in calls:
            with pytest.raises(DBusError) as info:
                await call()
            assert info.value.type == ERROR_PREFIX + "InvalidArgument", info.value.text
            assert info.value.text and len(info.value.text) < 300, info.value.text
        assert daemon.alive()
        assert await iface.call_list_words() == ["Zorblax"]
        assert await iface.call_list_replacements() == []
        assert (await props.call_get(INTERFACE, "State")).value == "idle"


def ctl(daemon, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "v2md.ctl", "words", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "DBUS_SESSION_BUS_ADDRESS": daemon.bus.address, "PYTHONPATH": str(ROOT)},
    )


async def test_v2mctl_words_against_the_daemon(own_bus, tmp_path):
    async with running_daemon(own_bus, tmp_path / "home") as (daemon, iface, _props):
        for args in (
            ("add", "Zorblax Quintaro"),
            ("add", "Kubrexa"),
            ("replace", "vee two em", "v2m"),
            ("rm", "kubrexa"),
        ):
            done = ctl(daemon, *args)
            assert (done.returncode, done.stdout, done.stderr) == (0, "", ""), args
        listed = ctl(daemon, "list")
        assert (listed.returncode, listed.stderr) == (0, "")
        assert listed.stdout == "Zorblax Quintaro\nvee two em -> v2m\n"
        assert await iface.call_list_words() == ["Zorblax Quintaro"]  # what the bus says too
        failed = ctl(daemon, "add", "a\x01b")
        assert failed.returncode == 1 and failed.stdout == ""
        assert failed.stderr.startswith(f"v2mctl: {ERROR_PREFIX}InvalidArgument: ")
        assert failed.stderr.count("\n") == 1 and "Traceback" not in failed.stderr
        assert ctl(daemon, "unreplace", "VEE TWO EM").returncode == 0
        assert ctl(daemon, "list").stdout == "Zorblax Quintaro\n"
        assert daemon.alive()
