"""Desktop notifications through org.freedesktop.Notifications on the session bus.

Each notification replaces the previous one (``replaces_id``) so a dictation
session leaves one bubble, not a stack. A desktop without a notification
server is normal (a bare window manager, a test bus): that is logged once at
INFO and notifications are skipped until a server answers again; a failure
here never reaches the caller, because a missing bubble must not cost a dictation.
"""

from __future__ import annotations

import asyncio
import logging
from html import escape
from typing import Any

from dbus_fast import Message, MessageType, Variant
from dbus_fast.aio import MessageBus

from v2md.config import NotificationsConfig

log = logging.getLogger(__name__)

APP_NAME = "v2m"
ICON = "audio-input-microphone"
BODY_CHARS = 300  # a preview: the full text is in the history and the clipboard
CALL_TIMEOUT_S = 5.0  # a hung server must not hold the caller
URGENCY_LOW, URGENCY_NORMAL, URGENCY_CRITICAL = 0, 1, 2

_SERVICE = "org.freedesktop.Notifications"
_PATH = "/org/freedesktop/Notifications"


class _Unavailable(Exception):
    """The server did not answer, or answered with an error."""


class Notifier:
    def __init__(self, bus: MessageBus | None, cfg: NotificationsConfig) -> None:
        self._bus = bus
        self._cfg = cfg
        self._last_id = 0
        self._markup: bool | None = None  # asked once per server: does the body take markup?
        self._reported = False  # the current outage has been logged
        # One at a time: each Notify must carry the id the previous one returned, and the
        # bubbles must show in the order they were asked for.
        self._lock = asyncio.Lock()

    async def notify(self, summary: str, body: str = "", *, urgency: int = URGENCY_NORMAL) -> None:
        """Show ``summary`` and ``body`` in place of the previous notification; never raises."""
        if not self._cfg.enabled or self._bus is None:
            return
        if not URGENCY_LOW <= urgency <= URGENCY_CRITICAL:
            log.warning("urgency %d is not 0, 1 or 2: sent as normal", urgency)
            urgency = URGENCY_NORMAL
        if len(body) > BODY_CHARS:
            body = body[: BODY_CHARS - 1] + "…"
        async with self._lock:
            await self._send(summary, body, urgency)

    async def _send(self, summary: str, body: str, urgency: int) -> None:
        try:
            async with asyncio.timeout(CALL_TIMEOUT_S):
                if self._markup is None:
                    (caps,) = await self._call("GetCapabilities", "", [])
                    self._markup = "body-markup" in caps
                (self._last_id,) = await self._call(
                    "Notify",
                    "susssasa{sv}i",
                    [
                        APP_NAME,
                        self._last_id,
                        ICON,
                        summary,
                        # Dictated "<" or "&" would be read as markup by servers that take it.
                        escape(body, quote=False) if self._markup else body,
                        [],
                        {"urgency": Variant("y", urgency)},
                        self._cfg.expire_ms,
                    ],
                )
        except Exception as exc:  # no server, an error reply, a timeout, a closed bus
            self._forget_server(exc)
            return
        if self._reported:
            log.info("notification server is back")
            self._reported = False

    async def alert(self, summary: str, body: str = "") -> None:
        """A notification that stays until dismissed (critical urgency): something went wrong."""
        await self.notify(summary, body, urgency=URGENCY_CRITICAL)

    async def _call(self, member: str, signature: str, body: list[Any]) -> list[Any]:
        assert self._bus is not None, "called only with a bus (see notify)"
        reply = await self._bus.call(
            Message(
                destination=_SERVICE,
                path=_PATH,
                interface=_SERVICE,
                member=member,
                signature=signature,
                body=body,
            )
        )
        if reply.message_type is MessageType.ERROR:
            detail = reply.body[0] if reply.body else ""
            raise _Unavailable(f"{reply.error_name} {detail}".strip())
        return reply.body

    def _forget_server(self, exc: Exception) -> None:
        """Start afresh with whichever server answers next; say so once per outage."""
        self._last_id = 0
        self._markup = None
        if not self._reported:
            if isinstance(exc, TimeoutError):
                reason = f"no answer within {CALL_TIMEOUT_S:g} s"
            else:
                reason = str(exc) or type(exc).__name__
            log.info("notifications skipped until a notification server answers: %s", reason)
            self._reported = True
