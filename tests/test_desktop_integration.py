"""The daemon's desktop side on a real bus: notifications (dbusmock), history, SIGKILL."""

from __future__ import annotations

import signal

import pytest
import speech
from dbus_fast.aio import MessageBus
from harness import Daemon, NotificationServer, assert_eventually

from v2md.client import dictation_proxy

pytestmark = pytest.mark.slow


@pytest.fixture
async def notification_daemon(own_bus):
    """python-dbusmock's notification_daemon template on the test's bus."""
    server = NotificationServer(own_bus)
    await server.start()
    yield server
    server.stop()


async def dictate(address: str) -> str:
    bus = await MessageBus(bus_address=address).connect()
    try:
        iface, _ = await dictation_proxy(bus)
        finals: list[str] = []
        iface.on_transcription_updated(lambda text, final: final and finals.append(text))
        await iface.call_start()
        await assert_eventually(lambda: finals, timeout=60)
        return finals[0]
    finally:
        bus.disconnect()


@pytest.fixture
def short_speech(tmp_path):
    text = speech.SENTENCES[0]
    return speech.write_wav(tmp_path / "fox.wav", speech.speak(text)), text


async def test_notifications_replace_each_other_and_history_is_served(
    own_bus, notification_daemon, short_speech, tmp_path
):
    wav, _ = short_speech
    daemon = Daemon(own_bus, tmp_path, V2M_AUDIO__FILE=str(wav), V2M_AUDIO__REALTIME="false")
    daemon.start()
    await daemon.wait_ready()
    try:
        first = await dictate(own_bus.address)
        second = await dictate(own_bus.address)
        assert first and second  # accuracy is test_dictation's business
        calls: list[list] = []

        async def four_calls() -> bool:
            calls[:] = await notification_daemon.calls("Notify")
            return len(calls) >= 4

        # Each dictation: "Listening (<device>)…" at Start, then its final text.
        await assert_eventually(four_calls, timeout=10)
        app, replaces, _icon, summary, body, *_ = calls[0]
        assert (app, replaces, summary) == ("v2m", 0, "Dictation")
        assert body == f"Listening ({wav})…"
        # Every later one replaces the first (the mock's id 1): one bubble, not a stack.
        assert [(call[1], call[3]) for call in calls[1:]] == [(1, "Dictation")] * 3
        assert [call[4] for call in calls[1:]] == [first, f"Listening ({wav})…", second]

        bus = await MessageBus(bus_address=own_bus.address).connect()
        try:
            iface, _ = await dictation_proxy(bus)
            rows = await iface.call_get_history(10)
            assert [raw for _, raw, _ in rows] == [second, first]
            assert await iface.call_clear_history() == 2
            assert await iface.call_get_history(0) == []
        finally:
            bus.disconnect()
    finally:
        daemon.stop()


async def test_sigkill_right_after_the_final_text_loses_nothing(own_bus, short_speech, tmp_path):
    wav, _ = short_speech
    daemon = Daemon(own_bus, tmp_path, V2M_AUDIO__FILE=str(wav), V2M_AUDIO__REALTIME="false")
    daemon.start()
    await daemon.wait_ready()
    text = await dictate(own_bus.address)
    daemon.proc.send_signal(signal.SIGKILL)
    daemon.proc.wait(timeout=10)

    again = Daemon(own_bus, tmp_path, V2M_AUDIO__FILE=str(wav)).start()
    await again.wait_ready()
    bus = await MessageBus(bus_address=own_bus.address).connect()
    try:
        iface, _ = await dictation_proxy(bus)
        assert (await iface.call_get_history(1))[0][1] == text
    finally:
        bus.disconnect()
        again.stop()
