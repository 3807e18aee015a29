"""A stand-in xdg-desktop-portal that speaks the real wire protocol on the test's bus.

It owns ``org.freedesktop.portal.Desktop`` and answers at ``/org/freedesktop/portal/desktop``
as the real one does (signatures from xdg-desktop-portal's interface XML):
``RemoteDesktop`` and ``GlobalShortcuts`` methods return a ``Request`` path at once
and answer through that object's ``Response`` signal, which is sent *before* the
method reply, so only a client that subscribed before calling sees it. Sessions
live at ``.../session/<sender>/<token>`` and take ``Close``; ``Start`` hands out
single-use restore tokens; a dialog is counted whenever the user would be asked.
Signals are broadcast, so a client gets them only through its own match rules.

What a test sets: ``version``, ``device_types``, ``answers`` (the Response code of
a method, 0 by default), ``offer`` (the interfaces there at all). What it reads:
``typed`` (the text the key presses spell on a US layout, pastes included),
``shifted`` (what of it was typed with Shift held), ``dropped`` (keysyms that layout
lacks, dropped as Mutter does), ``dialogs``, ``sessions_created``, ``bound`` shortcuts,
``registered`` app ids.
"""

from __future__ import annotations

import itertools
import secrets
from collections import Counter
from pathlib import Path
from typing import Any

from dbus_fast import Message, MessageType, Variant
from dbus_fast.aio import MessageBus

NAME = "org.freedesktop.portal.Desktop"
PATH = "/org/freedesktop/portal/desktop"
REMOTE_DESKTOP = "org.freedesktop.portal.RemoteDesktop"
SHORTCUTS = "org.freedesktop.portal.GlobalShortcuts"
REGISTRY = "org.freedesktop.host.portal.Registry"
SESSION = "org.freedesktop.portal.Session"
REQUEST = "org.freedesktop.portal.Request"
PROPERTIES = "org.freedesktop.DBus.Properties"

RETURN, TAB, CONTROL_L, SHIFT_L, V = 0xFF0D, 0xFF09, 0xFFE3, 0xFFE1, 0x76
# The keysyms of a US layout: like Mutter, the fake drops any other (see ``dropped``).
LAYOUT = {**{k: chr(k) for k in range(0x20, 0x7F)}, RETURN: "\n", TAB: "\t"}


class FakePortal:
    def __init__(self, address: str, clipboard: Path | None = None) -> None:
        self.address = address
        self.clipboard = clipboard  # the file the paste chord reads, as the focused app would
        self.version = 2
        self.device_types = 7  # keyboard, pointer, touchscreen
        self.offer = {REMOTE_DESKTOP, SHORTCUTS, REGISTRY}
        self.answers: dict[str, int] = {}
        self.typed = ""
        self.shifted: list[str] = []  # characters typed with Shift held
        self.dropped: list[int] = []  # keysyms not on the layout
        self.held: set[int] = set()
        self.dialogs = Counter()  # per interface: the times the user was asked
        self.sessions_created = Counter()
        self.sessions: dict[str, dict[str, Any]] = {}
        self.valid_tokens: set[str] = set()
        self.bound: dict[str, dict[str, str]] = {}
        self.registered: list[str] = []
        self.calls: list[str] = []  # "Interface.Member", in order
        self._clock = itertools.count(1000, 10)
        self.bus: MessageBus | None = None

    async def start(self) -> FakePortal:
        self.bus = await MessageBus(bus_address=self.address).connect()
        self.bus.add_message_handler(self._handle)
        await self.bus.request_name(NAME)
        return self

    def stop(self) -> None:
        """Leave the bus, as a crashed portal would."""
        if self.bus is not None:
            self.bus.disconnect()
            self.bus = None

    # ---- what a test triggers -------------------------------------------------------------

    def close_sessions(self) -> None:
        """Close every session from the portal's side (as on screen lock)."""
        for path in list(self.sessions):
            del self.sessions[path]
            self._emit(path, SESSION, "Closed", "a{sv}", [{}])

    def press(self, shortcut: str, *, release: bool = False) -> None:
        """The user presses (or releases) a bound shortcut."""
        (session,) = [p for p, s in self.sessions.items() if s["kind"] == SHORTCUTS]
        member = "Deactivated" if release else "Activated"
        self._emit(PATH, SHORTCUTS, member, "osta{sv}", [session, shortcut, next(self._clock), {}])

    # ---- the protocol -----------------------------------------------------------------------

    def _handle(self, msg: Message) -> Message | None:
        if msg.message_type is not MessageType.METHOD_CALL or msg.destination != NAME:
            return None
        self.calls.append(f"{msg.interface}.{msg.member}")
        if msg.interface == PROPERTIES and msg.member == "Get":
            return self._property(msg)
        if msg.interface == SESSION and msg.member == "Close":
            self.sessions.pop(msg.path, None)
            return Message.new_method_return(msg)
        if msg.interface not in self.offer or msg.path != PATH:
            return self._error(msg, "org.freedesktop.DBus.Error.UnknownMethod", "no such method")
        method = getattr(self, f"_{msg.member}", None)
        if method is None:
            return self._error(msg, "org.freedesktop.DBus.Error.UnknownMethod", msg.member)
        return method(msg)

    def _property(self, msg: Message) -> Message:
        interface, name = msg.body
        values = {
            (REMOTE_DESKTOP, "version"): Variant("u", self.version),
            (REMOTE_DESKTOP, "AvailableDeviceTypes"): Variant("u", self.device_types),
            (SHORTCUTS, "version"): Variant("u", 1),
            (REGISTRY, "version"): Variant("u", 1),
        }
        if interface not in self.offer or (interface, name) not in values:
            return self._error(msg, "org.freedesktop.DBus.Error.InvalidArgs", f"no {name}")
        return Message.new_method_return(msg, "v", [values[(interface, name)]])

    def _respond(self, msg: Message, options: dict, results: dict | None = None) -> Message:
        """Answer through a Request: the Response signal, then the reply with its path."""
        sender = msg.sender.lstrip(":").replace(".", "_")
        token = options["handle_token"].value if "handle_token" in options else "t"
        request = f"{PATH}/request/{sender}/{token}"
        code = self.answers.get(msg.member, 0)
        self._emit(request, REQUEST, "Response", "ua{sv}", [code, results if code == 0 else {}])
        return Message.new_method_return(msg, "o", [request])

    # The methods below are named after their D-Bus members: _handle looks them up.

    def _CreateSession(self, msg: Message) -> Message:
        (options,) = msg.body
        sender = msg.sender.lstrip(":").replace(".", "_")
        path = f"{PATH}/session/{sender}/{options['session_handle_token'].value}"
        self.sessions[path] = {"kind": msg.interface, "owner": msg.sender, "devices": 0}
        self.sessions_created[msg.interface] += 1
        return self._respond(msg, options, {"session_handle": Variant("s", path)})

    def _session(self, msg: Message) -> dict[str, Any] | None:
        session = self.sessions.get(msg.body[0])
        if session is None or session["owner"] != msg.sender:
            return None
        return session

    def _SelectDevices(self, msg: Message) -> Message:
        session = self._session(msg)
        if session is None:
            return self._error(msg, "org.freedesktop.DBus.Error.AccessDenied", "no session")
        options = msg.body[1]
        session["types"] = options["types"].value if "types" in options else self.device_types
        session["persist"] = options["persist_mode"].value if "persist_mode" in options else 0
        token = options["restore_token"].value if "restore_token" in options else None
        session["restored"] = token in self.valid_tokens
        self.valid_tokens.discard(token)  # single use
        return self._respond(msg, options, {})

    def _Start(self, msg: Message) -> Message:
        session = self._session(msg)
        if session is None:
            return self._error(msg, "org.freedesktop.DBus.Error.AccessDenied", "no session")
        if not session.get("restored"):
            self.dialogs[REMOTE_DESKTOP] += 1
        results = {"devices": Variant("u", session["types"] & self.device_types)}
        if session["persist"] == 2 and self.answers.get("Start", 0) == 0:
            token = secrets.token_hex(8)
            self.valid_tokens.add(token)
            results["restore_token"] = Variant("s", token)
        if self.answers.get("Start", 0) == 0:
            session["devices"] = session["types"] & self.device_types
        return self._respond(msg, msg.body[2], results)

    def _NotifyKeyboardKeysym(self, msg: Message) -> Message:
        session = self._session(msg)
        if session is None or not session["devices"] & 1:
            return self._error(msg, "org.freedesktop.DBus.Error.AccessDenied", "no keyboard")
        _, _, keysym, state = msg.body
        if state:
            self.held.add(keysym)
            if keysym == V and CONTROL_L in self.held:
                self.typed += self.clipboard.read_text() if self.clipboard else "<paste>"
            elif keysym in LAYOUT:
                self.typed += LAYOUT[keysym]
                if SHIFT_L in self.held:
                    self.shifted.append(LAYOUT[keysym])
            elif keysym not in (CONTROL_L, SHIFT_L):
                self.dropped.append(keysym)
        else:
            self.held.discard(keysym)
        return Message.new_method_return(msg)

    def _BindShortcuts(self, msg: Message) -> Message:
        session = self._session(msg)
        if session is None:
            return self._error(msg, "org.freedesktop.DBus.Error.AccessDenied", "no session")
        _, shortcuts, _parent, options = msg.body
        self.dialogs[SHORTCUTS] += 1
        self.bound = {
            ident: {key: value.value for key, value in props.items()} for ident, props in shortcuts
        }
        bound = [
            [ident, {"trigger_description": Variant("s", props.get("preferred_trigger", ""))}]
            for ident, props in self.bound.items()
        ]
        return self._respond(msg, options, {"shortcuts": Variant("a(sa{sv})", bound)})

    def _Register(self, msg: Message) -> Message:
        earlier = [c for c in self.calls[:-1] if not c.startswith(PROPERTIES)]
        if self.registered or earlier:
            return self._error(
                msg, "org.freedesktop.portal.Error.Failed", "registered too late or twice"
            )
        self.registered.append(msg.body[0])
        return Message.new_method_return(msg)

    def _emit(self, path: str, interface: str, member: str, signature: str, body: list) -> None:
        assert self.bus is not None
        self.bus.send(Message.new_signal(path, interface, member, signature, body))

    @staticmethod
    def _error(msg: Message, name: str, text: str) -> Message:
        return Message.new_error(msg, name, text)
