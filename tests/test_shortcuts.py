"""Shortcuts against the stand-in GlobalShortcuts portal, with recorded actions.

The daemon's own push-to-talk path is in test_portal_daemon.py; these cover what
happens around it: a refused dialog, a session the portal closes, a portal that
restarts, a failing start.
"""

from __future__ import annotations

import logging

import pytest
from dbus_fast import Message, MessageType
from dbus_fast.aio import MessageBus
from fake_portal import REGISTRY, SHORTCUTS, FakePortal
from fakes import Actions
from harness import assert_eventually

from v2md.config import ShortcutsConfig
from v2md.desktop.global_shortcuts import Shortcuts
from v2md.desktop.portal import Portal
from v2md.errors import AudioDeviceError, InvalidStateError, ModelError

APP_ID = "org.v2m.Dictation"


@pytest.fixture
async def portal(own_bus):
    fake = await FakePortal(own_bus.address).start()
    yield fake
    fake.stop()


@pytest.fixture
async def shortcuts(own_bus, portal):
    bus = await MessageBus(bus_address=own_bus.address).connect()
    actions = Actions()
    client = Portal(bus)
    client.register(APP_ID)
    made = Shortcuts(
        client,
        ShortcutsConfig(enabled=True, toggle="", push_to_talk_limit_s=60),
        start=actions.start,
        stop=actions.stop,
        toggle=actions.toggle,
        report=actions.report,
    )
    yield made, actions
    bus.disconnect()


async def test_presses_map_to_actions_and_a_closed_session_is_bound_again(portal, shortcuts):
    made, actions = shortcuts
    assert await made.bind()
    # no preferred trigger for toggle: the dialog chooses
    assert portal.bound["toggle"] == {"description": "Start or stop dictation"}
    portal.press("toggle")
    portal.press("push-to-talk")
    portal.press("push-to-talk", release=True)
    await assert_eventually(lambda: actions.log == ["toggle", "start", "stop"])
    portal.close_sessions()
    # bound again: the client sends BindShortcuts only once it holds the new session and
    # listens on it (a press before that is for a session it does not know)
    await assert_eventually(lambda: portal.dialogs[SHORTCUTS] == 2)
    assert portal.sessions_created[SHORTCUTS] == 2
    portal.press("push-to-talk")
    portal.press("push-to-talk", release=True)
    await assert_eventually(lambda: actions.log[3:] == ["start", "stop"])


async def test_a_press_that_starts_nothing_is_reported_and_its_release_stops_nothing(
    portal, shortcuts
):
    made, actions = shortcuts
    assert await made.bind()
    actions.fail_start = AudioDeviceError("no microphone")
    portal.press("push-to-talk")
    portal.press("push-to-talk", release=True)
    await assert_eventually(lambda: actions.reported)
    actions.fail_start = InvalidStateError("cannot start while recording")  # a wrong moment
    portal.press("push-to-talk")
    portal.press("push-to-talk", release=True)
    portal.press("toggle")
    await assert_eventually(lambda: actions.log == ["toggle"])
    assert [str(e) for e in actions.reported] == ["no microphone"]  # the wrong moment is not
    actions.fail_start = None
    actions.fail_stop = ModelError("decoding failed")
    portal.press("push-to-talk")
    portal.press("push-to-talk", release=True)
    await assert_eventually(lambda: len(actions.reported) == 2)
    assert str(actions.reported[1]) == "decoding failed"


async def test_a_refused_dialog_is_one_log_line_and_no_session(portal, shortcuts, caplog):
    made, _ = shortcuts
    portal.answers["BindShortcuts"] = 1
    with caplog.at_level(logging.WARNING, logger="v2md.desktop.global_shortcuts"):
        assert not await made.bind()
    (record,) = caplog.records
    assert "BindShortcuts: the user cancelled" in record.getMessage()
    assert "v2mctl bind gnome|kde" in record.getMessage()
    await assert_eventually(lambda: portal.sessions == {})


async def test_a_restarted_portal_is_told_the_app_id_again_and_gets_the_shortcuts(
    own_bus, portal, shortcuts
):
    made, actions = shortcuts
    assert await made.bind()
    assert portal.registered == [APP_ID]
    portal.stop()
    second = await FakePortal(own_bus.address).start()
    try:
        await assert_eventually(lambda: second.bound, message="not bound again")
        assert second.registered == [APP_ID] and second.calls[0] == f"{REGISTRY}.Register"
        second.press("push-to-talk")
        second.press("push-to-talk", release=True)
        await assert_eventually(lambda: actions.log == ["start", "stop"])
    finally:
        second.stop()


async def match_rules(bus: MessageBus) -> int:
    """How many match rules the bus daemon holds for ``bus``'s connection."""
    reply = await bus.call(
        Message(
            destination="org.freedesktop.DBus",
            path="/org/freedesktop/DBus",
            interface="org.freedesktop.DBus.Debug.Stats",
            member="GetConnectionStats",
            signature="s",
            body=[bus.unique_name],
        )
    )
    if reply.message_type is MessageType.ERROR:
        pytest.skip(f"this dbus-daemon keeps no statistics: {reply.error_name}")
    return reply.body[0]["MatchRules"].value


async def test_binding_again_adds_no_match_rules(own_bus, portal):
    bus = await MessageBus(bus_address=own_bus.address).connect()
    try:
        actions = Actions()
        made = Shortcuts(
            Portal(bus),
            ShortcutsConfig(enabled=True),
            start=actions.start,
            stop=actions.stop,
            toggle=actions.toggle,
            report=actions.report,
        )
        assert await made.bind()
        bound_once = await match_rules(bus)
        portal.close_sessions()
        await assert_eventually(lambda: portal.dialogs[SHORTCUTS] == 2)
        assert portal.sessions_created[SHORTCUTS] == 2

        async def as_before() -> bool:
            return await match_rules(bus) == bound_once

        await assert_eventually(as_before, message="each binding added match rules")
    finally:
        bus.disconnect()
