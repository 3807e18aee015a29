"""Dictation through the whole path: engine file source → VAD → streaming → D-Bus signals."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time

import pytest
import speech
from dbus_fast import DBusError
from dbus_fast.aio import MessageBus
from harness import Daemon, Watch, assert_eventually, daemon_command, running_daemon

from v2md import INTERFACE
from v2md.client import dictation_proxy
from v2md.errors import ERROR_PREFIX

pytestmark = pytest.mark.slow

MAX_WER = 20.0  # tiny.en on espeak speech; the measured figure is in benchmarks/README.md


async def test_live_text_while_speaking_then_final_text_on_stop(client, speech_file):
    iface, props = client
    watch = Watch(iface, props)
    started = time.monotonic()
    await iface.call_start()
    await assert_eventually(lambda: watch.provisional, timeout=15, message="no live text")
    # The source plays at real time: Stop once the speech is over and VAD has seen the end.
    speech_over = started + speech_file.speech_s
    await assert_eventually(
        lambda: any(t > speech_over and not active for t, active in watch.speech), timeout=30
    )
    text = await iface.call_stop()
    assert speech.wer(speech_file.text, text) <= MAX_WER, text
    await assert_eventually(lambda: watch.finals, timeout=5)
    assert watch.finals == [text]
    assert (await props.call_get(INTERFACE, "LastText")).value == text
    assert watch.states == ["recording", "transcribing", "idle"]


async def test_second_start_is_invalid_state_and_cancel_discards(client):
    iface, props = client
    watch = Watch(iface, props)
    await iface.call_start()
    with pytest.raises(DBusError) as info:
        await iface.call_start()
    assert info.value.type == ERROR_PREFIX + "InvalidState"
    await iface.call_cancel()
    assert (await props.call_get(INTERFACE, "State")).value == "idle"
    assert watch.finals == []


async def test_toggle_storm_from_ten_clients_ends_consistent(daemon):
    buses = [await MessageBus(bus_address=daemon.bus.address).connect() for _ in range(10)]
    try:
        proxies = [await dictation_proxy(bus) for bus in buses]
        watch = Watch(*proxies[0])
        results: list[str] = []

        async def spam(iface) -> None:
            for _ in range(20):
                results.append(await iface.call_toggle())

        await asyncio.gather(*(spam(iface) for iface, _ in proxies))
        assert len(results) == 200
        assert results.count("recording") == results.count("idle") == 100
        state = (await proxies[0][1].call_get(INTERFACE, "State")).value
        assert state == "idle"
        await assert_eventually(
            lambda: len(watch.finals) == 100,
            timeout=10,
            message=f"{len(watch.finals)} final texts for 100 stops",
        )
    finally:
        for bus in buses:
            bus.disconnect()
    assert daemon.alive()


async def test_transcribe_file(client, speech_file):
    iface, _ = client
    text = await iface.call_transcribe_file(str(speech_file.path))
    assert speech.wer(speech_file.text, text) <= MAX_WER, text


def one_sentence_unpaced(tmp_path, text: str) -> dict[str, str]:
    """Settings for a file source holding ``text``, read as fast as the daemon takes it."""
    wav = speech.write_wav(tmp_path / "short.wav", speech.speak(text))
    return {"V2M_AUDIO__FILE": str(wav), "V2M_AUDIO__REALTIME": "false"}


async def final_text_on_its_own(iface, props) -> str:
    """Start, then wait for the final text the end of the input brings."""
    watch = Watch(iface, props)
    await iface.call_start()
    await assert_eventually(lambda: watch.finals, timeout=60)
    return watch.finals[0]


async def test_end_of_input_finishes_by_itself_with_accurate_text(own_bus, tmp_path):
    text = speech.SENTENCES[4]
    settings = one_sentence_unpaced(tmp_path, text)
    async with running_daemon(own_bus, tmp_path, **settings) as (daemon, iface, props):
        final = await final_text_on_its_own(iface, props)
        assert speech.wer(text, final) <= MAX_WER, final
    assert daemon.proc.returncode == 0


async def test_sigterm_while_recording_keeps_the_audio(own_bus, speech_file, tmp_path):
    settings = {"V2M_AUDIO__FILE": str(speech_file.path)}
    async with running_daemon(own_bus, tmp_path, **settings) as (daemon, iface, props):
        watch = Watch(iface, props)
        await iface.call_start()
        await assert_eventually(lambda: watch.speech, timeout=15)
        daemon.proc.send_signal(signal.SIGTERM)
        assert daemon.proc.wait(timeout=30) == 0
    kept = list((tmp_path / "state" / "v2m" / "recordings").glob("*.wav"))
    assert len(kept) == 1 and kept[0].stat().st_size > 10_000


async def test_second_daemon_on_the_same_bus_exits(daemon, tmp_path):
    second = Daemon(daemon.bus, tmp_path).start()
    assert second.proc.wait(timeout=60) == 1
    assert "already owned" in second.log()


def test_invalid_config_names_key_value_and_line(own_bus, tmp_path):
    config = tmp_path / "config.toml"
    config.write_text('[audio]\ndevice = "default"\nrealtime = "sometimes"\n')
    daemon = Daemon(own_bus, tmp_path)
    proc = subprocess.run(
        [*daemon_command(), "--config", str(config)],
        env=daemon.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert f"{config}:3" in proc.stderr and "audio.realtime" in proc.stderr
    assert "sometimes" in proc.stderr


async def test_missing_device_is_a_named_error_and_nothing_changes(own_bus, tmp_path):
    settings = {"V2M_AUDIO__DEVICE": "no-such-microphone"}
    async with running_daemon(own_bus, tmp_path, **settings) as (daemon, iface, props):
        with pytest.raises(DBusError) as info:
            await iface.call_start()
        assert info.value.type == ERROR_PREFIX + "AudioDevice"
        assert "no-such-microphone" in info.value.text
        assert (await props.call_get(INTERFACE, "State")).value == "idle"
    assert daemon.proc.returncode == 0


async def test_history_that_cannot_be_opened_costs_no_dictation(own_bus, tmp_path):
    (tmp_path / "data" / "v2m" / "history.sqlite3").mkdir(parents=True)  # unusable, not corrupt
    text = speech.SENTENCES[1]
    settings = one_sentence_unpaced(tmp_path, text)
    async with running_daemon(own_bus, tmp_path, **settings) as (daemon, iface, props):
        final = await final_text_on_its_own(iface, props)
        assert speech.wer(text, final) <= MAX_WER, final
        with pytest.raises(DBusError) as info:
            await iface.call_get_history(5)
        assert info.value.type == ERROR_PREFIX + "History"
    assert "running without a history" in daemon.log()
