"""A client of the xdg-desktop-portal (``org.freedesktop.portal.Desktop``) on the session bus.

Portal methods that may show a dialog answer twice: the call returns the path
of a ``Request`` object at once, and the result comes later as that object's
``Response(u code, a{sv} results)`` signal. ``Portal.request`` is the one place
that handles this: it predicts the request path from the caller's unique name
and a ``handle_token``, subscribes *before* calling (the answer may overtake the
method reply), and turns codes 1 (the user cancelled) and 2 (ended otherwise), a
portal that leaves the bus and a portal that never answers into ``PortalError``.

Sessions are made and closed by ``create_session`` and ``close_session`` (for
``RemoteKeyboard`` here and ``shortcuts.Shortcuts``); ``register`` gives the
connection its application id before any other call. ``RemoteKeyboard`` keeps
one RemoteDesktop session with a keyboard for the daemon's life, asked for with
a stored restore token so that the user's permission dialog appears once, not at
every dictation.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from dbus_fast import Message, MessageFlag, MessageType, Variant
from dbus_fast.aio import MessageBus

log = logging.getLogger(__name__)

BUS_NAME = "org.freedesktop.portal.Desktop"
PATH = "/org/freedesktop/portal/desktop"
REQUEST = "org.freedesktop.portal.Request"
SESSION = "org.freedesktop.portal.Session"
REMOTE_DESKTOP = "org.freedesktop.portal.RemoteDesktop"
REGISTRY = "org.freedesktop.host.portal.Registry"

# A dialog waits for the user; one that nobody answers must not hold deliveries forever.
REQUEST_TIMEOUT_S = 120.0
CALL_TIMEOUT_S = 10.0  # a plain method call: no dialog behind it

KEYBOARD = 1  # RemoteDesktop device types bitmask
PERSIST_UNTIL_REVOKED = 2  # persist_mode: the grant lasts until the user revokes it
RESTORE_TOKEN_VERSION = 2  # restore tokens and persist_mode came with RemoteDesktop version 2

_RESPONSES = {1: "the user cancelled the desktop portal's dialog", 2: "the desktop portal ended it"}
_GONE = ("org.freedesktop.DBus.Error.ServiceUnknown", "org.freedesktop.DBus.Error.NameHasNoOwner")


class PortalError(Exception):
    """A portal call failed, was cancelled by the user, or the portal is not there."""


Handler = Callable[[list[Any]], None]


class Portal:
    """Calls, requests, properties and signals of the desktop portal over one bus connection."""

    def __init__(self, bus: MessageBus) -> None:
        self._bus = bus
        self._pending: dict[str, asyncio.Future[tuple[int, dict[str, Any]]]] = {}
        self._signals: dict[tuple[str, str, str], Handler] = {}
        self._on_vanish: list[Callable[[], None]] = []
        self._on_return: list[Callable[[], None]] = []
        self._watching = False
        self._app_id: str | None = None
        self._registration: asyncio.Task[None] | None = None
        bus.add_message_handler(self._dispatch)

    def register(self, app_id: str) -> None:
        """Tell the portal this connection's application id; every later call waits for it.

        An unsandboxed process otherwise has an empty app id, and the portals keep its
        grants (the keyboard, the shortcuts) under that anonymous name. The Registry
        came with xdg-desktop-portal 1.19.3; older ones are told nothing. A portal that
        restarts is told again.
        """
        self._app_id = app_id
        self._registration = asyncio.ensure_future(self._register(app_id))

    async def _register(self, app_id: str) -> None:
        await self._watch_portal()
        try:
            await self._call(PATH, REGISTRY, "Register", "sa{sv}", [app_id, {}])
        except PortalError as exc:
            log.info(
                "the desktop portal did not register %s (%s): its app id stays empty", app_id, exc
            )
        else:
            log.info("registered with the desktop portal as %s", app_id)

    async def _registered(self) -> None:
        if self._registration is not None:
            await asyncio.shield(self._registration)

    async def call(self, interface: str, member: str, signature: str, body: list[Any]) -> list[Any]:
        """A method call on the portal object; its reply's body."""
        await self._registered()
        return await self._call(PATH, interface, member, signature, body)

    async def property(self, interface: str, name: str) -> Any:
        await self._registered()
        (value,) = await self._call(
            PATH, "org.freedesktop.DBus.Properties", "Get", "ss", [interface, name]
        )
        return value.value

    async def request(
        self,
        interface: str,
        member: str,
        signature: str,
        args: list[Any],
        options: dict[str, Variant],
    ) -> dict[str, Any]:
        """Call a method whose last argument is its options and whose answer is a Response.

        Returns the results with their Variants unwrapped; raises PortalError unless the
        response code is 0.
        """
        await self._registered()
        await self._watch_portal()
        token = _token()
        sender = (self._bus.unique_name or "").lstrip(":").replace(".", "_")
        path = f"{PATH}/request/{sender}/{token}"
        answer = asyncio.get_running_loop().create_future()
        self._pending[path] = answer
        rules = [_rule(REQUEST, "Response", path)]
        await self._add_match(rules[0])
        try:
            body = [*args, {**options, "handle_token": Variant("s", token)}]
            (handle,) = await self.call(interface, member, signature, body)
            if handle != path:  # a portal that ignores handle_token; its answer may be lost
                self._pending[handle] = answer
                rules.append(_rule(REQUEST, "Response", handle))
                await self._add_match(rules[-1])
            try:
                code, results = await asyncio.wait_for(answer, REQUEST_TIMEOUT_S)
            except TimeoutError:
                with contextlib.suppress(PortalError):
                    await self._call(handle, REQUEST, "Close", "", [])
                raise PortalError(
                    f"{member}: no answer from the desktop portal within {REQUEST_TIMEOUT_S:g} s"
                ) from None
        finally:
            for key in [k for k, v in self._pending.items() if v is answer]:
                del self._pending[key]
            for rule in rules:
                self._remove_match(rule)
        if code != 0:
            reason = _RESPONSES.get(code, f"the desktop portal answered {code}")
            raise PortalError(f"{member}: {reason}")
        return {key: variant.value for key, variant in results.items()}

    async def create_session(self, interface: str, on_closed: Callable[[str], None]) -> str:
        """A new session of ``interface``; its path. ``on_closed(path)`` runs if the portal
        closes it (``Session.Closed``), not when ``close_session`` does."""
        created = await self.request(
            interface,
            "CreateSession",
            "a{sv}",
            [],
            {"session_handle_token": Variant("s", _token())},
        )
        session = str(created["session_handle"])  # typed "s", not "o", for compatibility

        def closed(_body: list[Any]) -> None:
            self.unsubscribe(session, SESSION, "Closed")
            on_closed(session)

        await self.subscribe(session, SESSION, "Closed", closed)
        return session

    async def close_session(self, session: str) -> None:
        """Close a session of ours; one already gone is no error."""
        self.unsubscribe(session, SESSION, "Closed")
        with contextlib.suppress(PortalError):
            await self._call(session, SESSION, "Close", "", [])

    async def subscribe(self, path: str, interface: str, member: str, handler: Handler) -> None:
        """Call ``handler(body)`` for each such signal from the portal, instead of the
        handler subscribed before, if any (its match rule serves both)."""
        key = (path, interface, member)
        known = key in self._signals
        self._signals[key] = handler
        if not known:
            await self._add_match(_rule(interface, member, path))

    def unsubscribe(self, path: str, interface: str, member: str) -> None:
        if self._signals.pop((path, interface, member), None) is not None:
            self._remove_match(_rule(interface, member, path))

    def on_vanish(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` when the portal leaves the bus: its sessions are gone with it."""
        self._on_vanish.append(callback)

    def on_return(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` when a portal (back, or at last) takes the bus name."""
        self._on_return.append(callback)

    async def _watch_portal(self) -> None:
        if not self._watching:
            self._watching = True
            await self._add_match(
                "type='signal',sender='org.freedesktop.DBus',interface='org.freedesktop.DBus',"
                f"member='NameOwnerChanged',arg0='{BUS_NAME}'"
            )

    def _dispatch(self, msg: Message) -> None:
        if msg.message_type is not MessageType.SIGNAL:
            return
        if msg.member == "NameOwnerChanged" and msg.sender == "org.freedesktop.DBus":
            name, old, new = msg.body
            if name == BUS_NAME and old and not new:
                self._vanished()
            elif name == BUS_NAME and new and not old:
                self._returned()
            return
        if msg.path is None or msg.interface is None or msg.member is None:
            return  # not a signal of any object: every signal has all three
        if msg.interface == REQUEST and msg.member == "Response":
            answer = self._pending.get(msg.path)
            if answer is not None and not answer.done():
                answer.set_result((msg.body[0], msg.body[1]))
            return
        handler = self._signals.get((msg.path, msg.interface, msg.member))
        if handler is not None:
            handler(msg.body)

    def _vanished(self) -> None:
        log.warning("the desktop portal left the session bus")
        for answer in self._pending.values():
            if not answer.done():
                answer.set_exception(PortalError("the desktop portal left the session bus"))
        for callback in self._on_vanish:
            callback()

    def _returned(self) -> None:
        log.info("a desktop portal is on the session bus")
        if self._app_id is not None:  # first, so that every call after waits for it
            self._registration = asyncio.ensure_future(self._register(self._app_id))
        for callback in self._on_return:
            callback()

    async def _call(
        self, path: str, interface: str, member: str, signature: str, body: list[Any]
    ) -> list[Any]:
        message = Message(
            destination=BUS_NAME,
            path=path,
            interface=interface,
            member=member,
            signature=signature,
            body=body,
        )
        try:
            reply = await asyncio.wait_for(self._bus.call(message), CALL_TIMEOUT_S)
        except TimeoutError:
            raise PortalError(f"{member}: the desktop portal did not answer") from None
        if reply.message_type is MessageType.ERROR:
            if reply.error_name in _GONE:
                raise PortalError(f"no desktop portal ({BUS_NAME}) is running on the session bus")
            detail = reply.body[0] if reply.body else ""
            raise PortalError(f"{member}: {reply.error_name}: {detail}".rstrip(": "))
        return reply.body

    async def _add_match(self, rule: str) -> None:
        await self._bus.call(_bus_daemon("AddMatch", rule))

    def _remove_match(self, rule: str) -> None:
        # Sent without waiting: nothing depends on the answer, and a closing bus forgets
        # every rule anyway.
        message = _bus_daemon("RemoveMatch", rule)
        message.flags |= MessageFlag.NO_REPLY_EXPECTED
        self._bus.send(message)


def _bus_daemon(member: str, rule: str) -> Message:
    return Message(
        destination="org.freedesktop.DBus",
        path="/org/freedesktop/DBus",
        interface="org.freedesktop.DBus",
        member=member,
        signature="s",
        body=[rule],
    )


def _token() -> str:
    """A handle or session token: unguessable, and a valid object path element."""
    return f"v2m_{secrets.token_hex(8)}"


def _rule(interface: str, member: str, path: str) -> str:
    return (
        f"type='signal',sender='{BUS_NAME}',interface='{interface}',member='{member}',path='{path}'"
    )


class TokenFile:
    """A single-use restore token kept between daemon runs, readable by its owner only."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> str | None:
        try:
            return self.path.read_text(encoding="utf-8").strip() or None
        except (OSError, UnicodeDecodeError):
            return None

    def save(self, token: str | None) -> None:
        """Replace the token (None forgets it); written beside it first, then renamed."""
        try:
            if token is None:
                self.path.unlink(missing_ok=True)
                return
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            temporary = self.path.with_name(self.path.name + ".new")
            temporary.unlink(missing_ok=True)  # a leftover keeps its mode; a new file gets 0600
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(token)
            os.replace(temporary, self.path)
        except OSError as exc:
            # Typing still works; the user is asked again after the next restart.
            log.warning("cannot keep the portal's restore token in %s: %s", self.path, exc)


class RemoteKeyboard:
    """Key presses through one RemoteDesktop session, made when first needed and kept.

    The session is made again (with the stored token, so without a dialog) when the
    portal closes it, for example when the screen locks, or leaves the bus.
    """

    def __init__(self, portal: Portal, tokens: TokenFile) -> None:
        self._portal = portal
        self._tokens = tokens
        self._session: str | None = None
        self._lock = asyncio.Lock()
        portal.on_vanish(self._forget)

    async def available(self) -> bool:
        """Whether the portal offers a keyboard with restore tokens (asks, never raises;
        a kept session answers without asking)."""
        if self._session is not None:
            return True
        try:
            await self._require_keyboard()
        except PortalError:
            return False
        return True

    async def send(self, events: Iterable[tuple[int, bool]]) -> None:
        """Press (True) and release (False) these keysyms, in order.

        A kept session the portal refuses before the first key (closed, and the
        Closed signal still on its way) is made again once, with the stored token.
        """
        events = list(events)
        while True:
            session, fresh = await self._session_handle()
            sent = 0
            try:
                for keysym, pressed in events:
                    await self._portal.call(
                        REMOTE_DESKTOP,
                        "NotifyKeyboardKeysym",
                        "oa{sv}iu",
                        [session, {}, keysym, int(pressed)],
                    )
                    sent += 1
                return
            except PortalError as exc:
                await self._close(session)
                if fresh or sent:
                    raise
                log.info("the keyboard session is gone (%s); making a new one", exc)

    async def _require_keyboard(self) -> None:
        version = await self._portal.property(REMOTE_DESKTOP, "version")
        types = await self._portal.property(REMOTE_DESKTOP, "AvailableDeviceTypes")
        if version < RESTORE_TOKEN_VERSION or not types & KEYBOARD:
            raise PortalError(
                f"the desktop portal's RemoteDesktop (version {version}, device types {types}) "
                f"offers no keyboard with restore tokens (needs version {RESTORE_TOKEN_VERSION} "
                "and the keyboard type)"
            )

    async def _session_handle(self) -> tuple[str, bool]:
        """The session, and whether it was made just now."""
        async with self._lock:
            if self._session is not None:
                return self._session, False
            self._session = await self._start_session()
            return self._session, True

    async def _start_session(self) -> str:
        await self._require_keyboard()
        session = await self._portal.create_session(REMOTE_DESKTOP, self._closed)
        try:
            options = {
                "types": Variant("u", KEYBOARD),
                "persist_mode": Variant("u", PERSIST_UNTIL_REVOKED),
            }
            token = self._tokens.load()
            if token:
                options["restore_token"] = Variant("s", token)
            await self._portal.request(
                REMOTE_DESKTOP, "SelectDevices", "oa{sv}", [session], options
            )
            started = await self._portal.request(
                REMOTE_DESKTOP, "Start", "osa{sv}", [session, ""], {}
            )
            # The token just used is spent either way; keep the new one, if any.
            self._tokens.save(started.get("restore_token"))
            if not started.get("devices", 0) & KEYBOARD:
                raise PortalError("the keyboard was not granted in the desktop portal's dialog")
        except BaseException:
            await self._close(session)
            raise
        log.info("remote-desktop keyboard session %s started", session)
        return session

    def _closed(self, session: str) -> None:
        if self._session == session:
            log.info("the desktop portal closed the keyboard session; a new one comes when needed")
            self._session = None

    def _forget(self) -> None:
        self._session = None

    async def _close(self, session: str) -> None:
        if self._session == session:
            self._session = None
        await self._portal.close_session(session)
