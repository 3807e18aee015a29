"""Desktop notifications through org.freedesktop.Notifications on the session bus.

Each notification replaces the previous one (``replaces_id``) so a dictation
session leaves one bubble, not a stack. A desktop without a notification
server is normal (a bare window manager, a test bus): that is logged once and
notifications are skipped, never an error for the user.
"""

from __future__ import annotations

import logging

from dbus_fast import Message, MessageType, Variant
from dbus_fast.aio import MessageBus

from .config import NotificationsConfig

log = logging.getLogger(__name__)

APP_NAME = "v2m"
ICON = "audio-input-microphone"
BODY_CHARS = 300  # a preview: the full text is in the history and the clipboard


class Notifier:
    def __init__(self, bus: MessageBus | None, cfg: NotificationsConfig) -> None:
        self._bus = bus
        self._cfg = cfg
        self._last_id = 0
        self._unavailable = False

    async def notify(self, summary: str, body: str = "", *, urgency: int = 1) -> None:
        if not self._cfg.enabled or self._bus is None or self._unavailable:
            return
        if len(body) > BODY_CHARS:
            body = body[: BODY_CHARS - 1] + "…"
        reply = await self._bus.call(
            Message(
                destination="org.freedesktop.Notifications",
                path="/org/freedesktop/Notifications",
                interface="org.freedesktop.Notifications",
                member="Notify",
                signature="susssasa{sv}i",
                body=[
                    APP_NAME,
                    self._last_id,
                    ICON,
                    summary,
                    body,
                    [],
                    {"urgency": Variant("y", urgency)},
                    self._cfg.expire_ms,
                ],
            )
        )
        if reply.message_type is MessageType.ERROR:
            # No server (ServiceUnknown) or a broken one: say so once, then stay quiet.
            self._unavailable = True
            log.info(
                "notifications disabled for this session: %s %s",
                reply.error_name,
                reply.body[0] if reply.body else "",
            )
            return
        self._last_id = int(reply.body[0])
