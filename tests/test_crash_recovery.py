"""A dictation survives the daemon's death: SIGKILL it, start it again, the words are back.

The real daemon on a private bus records espeak speech from a file at real time; it is
killed with SIGKILL (what the OOM killer sends) while recording, or after Stop while the
final text is being decoded; the next daemon on the same home puts the text into the
history, marked as recovered, and says so once (one notification, one log line).
"""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import stat

import pytest
import speech
from harness import (
    Daemon,
    NotificationServer,
    Watch,
    assert_eventually,
    running_daemon,
)

from v2md import INTERFACE

pytestmark = pytest.mark.slow

MAX_WER = 35.0  # of the part spoken before the kill; tiny.en on espeak speech


def capture_files(home):
    return sorted((home / "state" / "v2m" / "capture").glob("capture-*.wav"))


def recovered_entries(home) -> list[tuple[str, int]]:
    path = home / "data" / "v2m" / "history.sqlite3"
    if not path.exists():
        return []
    db = sqlite3.connect(path)
    try:
        return db.execute("SELECT raw, recovered FROM entries ORDER BY id").fetchall()
    finally:
        db.close()


def killed(daemon: Daemon) -> None:
    daemon.proc.send_signal(signal.SIGKILL)
    assert daemon.proc.wait(timeout=30) == -signal.SIGKILL


async def restart_and_recover(own_bus, home, server: NotificationServer, **settings) -> str:
    """Start the next daemon on ``home``; return the recovered text, once it is stored."""
    async with running_daemon(own_bus, home, **settings) as (daemon, _iface, _props):
        await assert_eventually(
            lambda: recovered_entries(home), timeout=90, message="nothing recovered"
        )
        await assert_eventually(lambda: not capture_files(home), timeout=10)

        async def notes() -> list:
            return [c for c in await server.calls("Notify") if c[3] == "Dictation recovered"]

        # The notification goes out in the background, after the text is stored.
        await assert_eventually(notes, timeout=20, message="the recovery was not said")
    (text, recovered), *others = recovered_entries(home)
    assert recovered == 1 and others == []
    said = await notes()
    assert len(said) == 1 and text[:40] in said[0][4], said  # a long body is shortened
    # Said once: a third start finds nothing left to recover.
    async with running_daemon(own_bus, home, **settings) as (daemon, _iface, props):
        await assert_eventually(lambda: _model_settled(props), timeout=60)
        await asyncio.sleep(1)
    assert len(recovered_entries(home)) == 1
    said = [line for line in daemon.log().splitlines() if "v2md.workflow: recovered" in line]
    assert len(said) == 1, said  # the log of all three starts
    notes = [c for c in await server.calls("Notify") if c[3] == "Dictation recovered"]
    assert len(notes) == 1
    return text


async def _model_settled(props) -> bool:
    return (await props.call_get(INTERFACE, "ModelState")).value in ("ready", "failed")


@pytest.fixture
async def server(own_bus):
    server = NotificationServer(own_bus)
    await server.start()
    yield server
    server.stop()


async def test_sigkill_mid_dictation_keeps_what_was_said(own_bus, tmp_path, speech_file, server):
    settings = {"V2M_AUDIO__FILE": str(speech_file.path), "V2M_AUDIO__REALTIME": "true"}
    async with running_daemon(own_bus, tmp_path, **settings) as (daemon, iface, props):
        watch = Watch(iface, props)
        await iface.call_start()
        # Killed once the speech is over, before any Stop: nothing is in the history yet.
        await assert_eventually(
            lambda: any(not active for _, active in watch.speech), timeout=speech_file.speech_s + 20
        )
        (live,) = capture_files(tmp_path)
        assert stat.S_IMODE(live.stat().st_mode) == 0o600
        assert stat.S_IMODE(live.parent.stat().st_mode) == 0o700
        assert stat.S_IMODE(live.parent.parent.stat().st_mode) == 0o700
        killed(daemon)
    assert recovered_entries(tmp_path) == []
    text = await restart_and_recover(own_bus, tmp_path, server, **settings)
    assert speech.wer(speech_file.text, text) <= MAX_WER, text


async def test_sigkill_after_stop_before_the_text_is_stored(own_bus, tmp_path, server):
    # Twenty seconds of speech and no VAD: Stop decodes all of it, which takes a while.
    text = " ".join(speech.SENTENCES[:4])
    wav = speech.write_wav(tmp_path / "long.wav", speech.speak(text))
    settings = {
        "V2M_AUDIO__FILE": str(wav),
        "V2M_AUDIO__REALTIME": "false",
        "V2M_VAD__ENABLED": "false",
    }
    home = tmp_path / "home"
    async with running_daemon(own_bus, home, **settings) as (daemon, iface, props):
        await assert_eventually(lambda: _model_settled(props), timeout=60)
        watch = Watch(iface, props)
        await iface.call_start()  # the file ends by itself: the daemon stops on its own
        await assert_eventually(lambda: "transcribing" in watch.states, timeout=30)
        killed(daemon)
        assert watch.finals == [], "the final text came before the kill: nothing to recover"
    assert recovered_entries(home) == []
    recovered = await restart_and_recover(own_bus, home, server, **settings)
    assert speech.wer(text, recovered) <= MAX_WER, recovered
