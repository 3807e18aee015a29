"""Notifier against python-dbusmock's notification_daemon template on a private bus.

The mock logs every call, so the tests assert what a real notification server
would receive: summary, body, replaces_id, urgency and expiry.
"""

from __future__ import annotations

import asyncio
import logging

import pytest
from dbus_fast.aio import MessageBus
from harness import NOTIFICATIONS, NotificationServer

from v2md.config import NotificationsConfig
from v2md.desktop import notifications
from v2md.desktop.notifications import BODY_CHARS, Notifier


@pytest.fixture
async def server(own_bus):
    mock = NotificationServer(own_bus)
    yield mock
    mock.stop()


@pytest.fixture
async def bus(own_bus):
    connection = await MessageBus(bus_address=own_bus.address).connect()
    yield connection
    connection.disconnect()


def hints(call: list) -> dict:
    return {key: variant.value for key, variant in call[6].items()}


async def test_each_notification_replaces_the_previous_one(server, bus):
    await server.start()
    notifier = Notifier(bus, NotificationsConfig(expire_ms=2500))
    await notifier.notify("Recording", "speak now")
    await notifier.notify("Dictation", "a <b>bold</b> claim & more")
    await notifier.notify("v2m error", "no microphone", urgency=notifications.URGENCY_CRITICAL)
    calls = await server.calls("Notify")
    assert [call[:6] for call in calls] == [
        ["v2m", 0, "audio-input-microphone", "Recording", "speak now", []],
        # the template advertises body-markup, so dictated markup characters are escaped
        [
            "v2m",
            1,
            "audio-input-microphone",
            "Dictation",
            "a &lt;b&gt;bold&lt;/b&gt; claim &amp; more",
            [],
        ],
        ["v2m", 1, "audio-input-microphone", "v2m error", "no microphone", []],
    ]
    assert [hints(call) for call in calls] == [{"urgency": 1}, {"urgency": 1}, {"urgency": 2}]
    assert [call[7] for call in calls] == [2500] * 3
    assert len(await server.calls("GetCapabilities")) == 1  # asked once, not per notification


async def test_notifications_asked_for_at_once_go_out_in_order_as_one_bubble(server, bus):
    # A Start's "Listening" and the previous dictation's final text can be asked for
    # together: each must still replace the one before it, in the order asked.
    await server.start()
    notifier = Notifier(bus, NotificationsConfig())
    await asyncio.gather(*(notifier.notify("Dictation", body) for body in ("a", "b", "c")))
    calls = await server.calls("Notify")
    assert [(call[1], call[4]) for call in calls] == [(0, "a"), (1, "b"), (1, "c")]
    assert len(await server.calls("GetCapabilities")) == 1


async def test_plain_text_server_gets_the_body_verbatim_and_long_text_is_cut(server, bus):
    await server.start(capabilities="body")
    text = "x < y & " + "word " * 200
    await Notifier(bus, NotificationsConfig()).notify("Dictation", text)
    (call,) = await server.calls("Notify")
    assert call[4] == text[: BODY_CHARS - 1] + "…"


async def test_out_of_range_urgency_is_sent_as_normal(server, bus, caplog):
    await server.start()
    await Notifier(bus, NotificationsConfig()).notify("s", urgency=7)
    (call,) = await server.calls("Notify")
    assert hints(call) == {"urgency": 1}
    assert "urgency 7 is not 0, 1 or 2" in caplog.text


async def test_disabled_sends_nothing(server, bus):
    await server.start()
    await Notifier(bus, NotificationsConfig(enabled=False)).notify("s", "b")
    await Notifier(None, NotificationsConfig()).notify("s", "b")
    assert await server.calls("Notify") == []
    assert await server.calls("GetCapabilities") == []


async def test_no_server_is_logged_once_and_a_later_one_is_used_afresh(server, bus, caplog):
    caplog.set_level(logging.INFO, logger="v2md.desktop.notifications")
    notifier = Notifier(bus, NotificationsConfig())
    await notifier.notify("first")
    await notifier.notify("second")
    skipped = [r for r in caplog.records if "notifications skipped" in r.getMessage()]
    assert len(skipped) == 1 and skipped[0].levelno == logging.INFO
    assert "org.freedesktop.DBus.Error.ServiceUnknown" in skipped[0].getMessage()

    await server.start()
    await notifier.notify("third")
    await notifier.notify("fourth")
    assert [call[1] for call in await server.calls("Notify")] == [0, 1]
    assert "notification server is back" in caplog.text

    server.stop()  # the server's ids are gone with it: the next one starts from 0
    await notifier.notify("fifth")
    await server.start()
    await notifier.notify("sixth")
    assert [call[1:4:2] for call in await server.calls("Notify")] == [[0, "sixth"]]


async def test_a_server_that_never_answers_times_out(bus, own_bus, monkeypatch, caplog):
    caplog.set_level(logging.INFO, logger="v2md.desktop.notifications")
    silent = await MessageBus(bus_address=own_bus.address).connect()
    try:
        await silent.request_name(NOTIFICATIONS)
        silent.add_message_handler(lambda msg: msg.member in ("GetCapabilities", "Notify"))
        monkeypatch.setattr(notifications, "CALL_TIMEOUT_S", 0.2)
        await Notifier(bus, NotificationsConfig()).notify("s")
    finally:
        silent.disconnect()
    assert "no answer within 0.2 s" in caplog.text


async def test_a_closed_bus_never_raises(bus, caplog):
    caplog.set_level(logging.INFO, logger="v2md.desktop.notifications")
    bus.disconnect()
    await bus.wait_for_disconnect()
    await Notifier(bus, NotificationsConfig()).notify("s", "b")
    assert "notifications skipped" in caplog.text
