"""Global shortcuts through the GlobalShortcuts portal: toggle, and push-to-talk.

Two shortcuts are bound for the daemon's life: ``toggle`` (each press toggles
dictation) and ``push-to-talk`` (press: start; release: stop, with the final
text). A custom keybinding runs a command on press only; the portal's
``Deactivated`` signal is what makes holding a key possible. A release that
never comes (the portal lost focus, the key was held into a lock screen) is
covered by a time limit.

The actions are the workflow's, passed in as callables: this module knows the
portal, not the recorder.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from dbus_fast import Variant

from v2md.config import ShortcutsConfig
from v2md.desktop.portal import PATH, Portal, PortalError
from v2md.errors import BusyError, InvalidStateError, V2MError

log = logging.getLogger(__name__)

GLOBAL_SHORTCUTS = "org.freedesktop.portal.GlobalShortcuts"
TOGGLE = "toggle"
PUSH_TO_TALK = "push-to-talk"
DESCRIPTIONS = {TOGGLE: "Start or stop dictation", PUSH_TO_TALK: "Dictate while held"}

Action = Callable[[], Awaitable[Any]]


class Shortcuts:
    def __init__(
        self,
        portal: Portal,
        cfg: ShortcutsConfig,
        *,
        start: Action,
        stop: Action,
        toggle: Action,
        report: Callable[[V2MError], Awaitable[None]],
    ) -> None:
        self._portal = portal
        self._cfg = cfg
        self._start, self._stop, self._toggle = start, stop, toggle
        self._report = report  # an error no caller is waiting for
        self._session: str | None = None
        self._held: asyncio.Task[bool] | None = None  # the push-to-talk press not yet let go
        self._limit: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._wanted = False  # bind() was called: bind again whenever a portal comes
        portal.on_vanish(self._vanished)
        portal.on_return(self._returned)

    async def bind(self) -> bool:
        """Bind both shortcuts; without a GlobalShortcuts portal, say so once and go on."""
        self._wanted = True
        try:
            await self._bind()
        except PortalError as exc:
            log.warning(
                "global shortcuts are not available (%s); bind a desktop shortcut to Toggle "
                "instead: v2mctl bind gnome|kde",
                exc,
            )
            return False
        return True

    async def _bind(self) -> None:
        session = self._session = await self._portal.create_session(GLOBAL_SHORTCUTS, self._closed)
        try:
            await self._bind_shortcuts(session)
        except PortalError:
            self._session = None
            await self._portal.close_session(session)
            raise

    async def _bind_shortcuts(self, session: str) -> None:
        for member, handler in (("Activated", self._activated), ("Deactivated", self._released)):
            await self._portal.subscribe(PATH, GLOBAL_SHORTCUTS, member, handler)
        wanted = {TOGGLE: self._cfg.toggle, PUSH_TO_TALK: self._cfg.push_to_talk}
        shortcuts = []
        for ident, trigger in wanted.items():
            options = {"description": Variant("s", DESCRIPTIONS[ident])}
            if trigger:
                options["preferred_trigger"] = Variant("s", trigger)
            shortcuts.append([ident, options])
        bound = await self._portal.request(
            GLOBAL_SHORTCUTS, "BindShortcuts", "oa(sa{sv})sa{sv}", [session, shortcuts, ""], {}
        )
        described = {
            ident: props.get("trigger_description", Variant("s", "")).value
            for ident, props in bound.get("shortcuts", [])
        }
        if not described:
            log.warning("no global shortcut was bound: the desktop's dialog granted none")
        for ident, trigger in described.items():
            log.info("global shortcut %s: %s", ident, trigger or "(no key assigned yet)")

    # ---- presses ------------------------------------------------------------------------

    def _activated(self, body: list[Any]) -> None:
        session, ident = body[0], body[1]
        if session != self._session:
            return
        if ident == TOGGLE:
            self._spawn(self._act(self._toggle))
        elif ident == PUSH_TO_TALK and self._held is None:
            press = self._held = self._spawn(self._act(self._start))
            self._limit = asyncio.get_running_loop().call_later(
                self._cfg.push_to_talk_limit_s, self._let_go, press, True
            )

    def _released(self, body: list[Any]) -> None:
        session, ident = body[0], body[1]
        if session == self._session and ident == PUSH_TO_TALK and self._held is not None:
            self._let_go(self._held, False)

    def _let_go(self, press: asyncio.Task[bool], expired: bool) -> None:
        if self._held is not press:
            return
        self._held = None
        if self._limit is not None:
            self._limit.cancel()
        if expired:
            log.warning(
                "push-to-talk held for %g s without a release: stopping",
                self._cfg.push_to_talk_limit_s,
            )
        self._spawn(self._release(press))

    async def _release(self, press: asyncio.Task[bool]) -> None:
        if not await press:
            return  # the press started no recording, so the release stops none
        try:
            await self._stop()
        except (InvalidStateError, BusyError):
            log.debug("push-to-talk released after the recording had ended")
        except V2MError as exc:
            await self._report(exc)

    async def _act(self, action: Action) -> bool:
        """Run a workflow action; whether it succeeded. Errors go to ``report``."""
        try:
            await action()
        except (InvalidStateError, BusyError) as exc:  # a press at the wrong moment
            log.info("shortcut ignored: %s", exc)
            return False
        except V2MError as exc:
            await self._report(exc)
            return False
        return True

    # ---- lifetime -------------------------------------------------------------------------

    def _closed(self, session: str) -> None:
        if session == self._session:
            log.info("the desktop portal closed the shortcuts session; binding again")
            self._session = None
            self._spawn(self.bind())

    def _vanished(self) -> None:
        if self._session is not None:
            self._session = None
            log.warning("the global shortcuts went with the desktop portal until it is back")

    def _returned(self) -> None:
        if self._wanted and self._session is None:
            self._spawn(self.bind())

    def _spawn(self, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task
