"""The IBus path: live text as preedit in the focused field, the final text committed.

This module is its own small process (``python3 -m v2md.desktop.ibus``, started by v2md:
``ibus_path.IBusHelper``), a thin client of ``org.v2m.Dictation`` on the session bus
and a client of ibus-daemon on IBus's own bus. While a dictation runs it shows
``TranscriptionUpdated`` texts as the focused field's preedit; v2md's delivery asks it,
on stdin, to commit the final text, and it answers on stdout whether it could.

It does not become the user's input method. ibus-daemon lets two clients besides the
active engine put text into the focused input context: the panel
(``org.freedesktop.IBus.Panel``: gnome-shell, ibus-ui-gtk3, Plasma's) and the panel
extension that serves IBus's emoji and Unicode picker
(``org.freedesktop.IBus.Panel.Extension.Emoji``, ibus-extension-gtk3). The extension's
name allows replacement and its owner queues for it, so for the length of one dictation
this process takes that name over, enables the extension mode (the focused context then
shows preedit from the extension and gives it the keys its engine did not use, which
are answered "not handled", so they reach the app unchanged), and then gives the name
back: the picker returns. The user's own engine (xkb layout, Pinyin, Anthy, ...) stays
active throughout; anything it commits during the dictation is passed on unchanged.

The IBus messages are spoken directly (dbus-fast): the IBus types are plain D-Bus
structures (``IBusText`` is ``(sa{sv}sv)``), the interpreter need not have PyGObject.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from dbus_fast import BusType, Message, MessageFlag, MessageType, Variant
from dbus_fast.aio import MessageBus

from v2md import INTERFACE, OBJECT_PATH
from v2md.logs import log_to_stderr

log = logging.getLogger("v2md.desktop.ibus")

EXTENSION_NAME = "org.freedesktop.IBus.Panel.Extension.Emoji"
EXTENSION_PATH = "/org/freedesktop/IBus/Panel/Extension/Emoji"
PANEL = "org.freedesktop.IBus.Panel"
# ibus-daemon makes its "fake" context (the one focused when no field is) before any
# client's, so it is always the first.
FAKE_CONTEXT = "/org/freedesktop/IBus/InputContext_1"
_REPLACE_EXISTING, _DO_NOT_QUEUE = 2, 4
_ATTR_UNDERLINE, _UNDERLINE_SINGLE = 1, 1
# ibus-daemon tells a new extension which context has the focus at once; a field that
# has not said so by then is no field.
FOCUS_WAIT_S = 1.0
# After State idle, the final text follows at once, or never (Cancel, an empty
# recording): then the preedit goes.
FINAL_WAIT_S = 1.0
# The final text waits in the preedit for v2md's commit (an auto-refine may run first).
COMMIT_WAIT_S = 120.0
CALL_TIMEOUT_S = 5.0


class IBusError(Exception):
    """IBus is not there, or the text cannot go into the field the dictation began in."""


def ibus_address(environ: dict[str, str] | None = None) -> str:
    """ibus-daemon's bus address, found as libibus finds it (``ibus address``)."""
    env = os.environ if environ is None else environ
    if env.get("IBUS_ADDRESS"):
        return env["IBUS_ADDRESS"]
    tool = shutil.which("ibus", path=env.get("PATH"))
    if tool is None:
        raise IBusError("IBus is not installed (the 'ibus' command is missing)")
    import subprocess

    answer = subprocess.run(
        [tool, "address"], env=dict(env), capture_output=True, text=True, timeout=10
    )
    address = answer.stdout.strip()
    if answer.returncode != 0 or not address.startswith(("unix:", "tcp:")):
        raise IBusError("ibus-daemon is not running")
    return address


def ibus_text(text: str, underline: bool = False) -> Variant:
    """An ``IBusText`` as IBus serializes it; ``underline`` marks it as preedit."""
    attrs = []
    if underline and text:
        length = len(text)  # IBus counts characters (code points), as Python does
        attrs.append(
            Variant(
                "(sa{sv}uuuu)", ["IBusAttribute", {}, _ATTR_UNDERLINE, _UNDERLINE_SINGLE, 0, length]
            )
        )
    attr_list = Variant("(sa{sv}av)", ["IBusAttrList", {}, attrs])
    return Variant("(sa{sv}sv)", ["IBusText", {}, text, attr_list])


def _extension_event(enabled: bool) -> Variant:
    """An ``IBusExtensionEvent`` turning the extension mode on or off for the focused field."""
    return Variant("(sa{sv}usbbs)", ["IBusExtensionEvent", {}, 1, "emoji", enabled, False, ""])


class ExtensionSlot:
    """The emoji extension's place on ibus-daemon's bus, borrowed for one dictation."""

    def __init__(self, address: str) -> None:
        self._address = address
        self._bus: MessageBus | None = None
        self._held = False
        self.focus: str | None = None  # the focused input context, as ibus-daemon says
        self._focused = asyncio.Event()

    @property
    def held(self) -> bool:
        return self._held

    async def connect(self) -> None:
        if self._bus is not None and self._bus.connected:
            return
        try:
            self._bus = await MessageBus(bus_address=self._address).connect()
        except (OSError, ValueError, EOFError) as exc:
            self._bus = None
            raise IBusError(f"cannot reach ibus-daemon at its address: {exc}") from None
        self._bus.add_message_handler(self._dispatch)
        self._held = False

    async def borrow(self) -> str:
        """Take the extension's name; the focused context's path."""
        await self.connect()
        self._focused.clear()
        self.focus = None
        (answer,) = await self._daemon(
            "RequestName", "su", [EXTENSION_NAME, _REPLACE_EXISTING | _DO_NOT_QUEUE]
        )
        if answer not in (1, 4):  # primary owner, or already it
            raise IBusError(f"ibus-daemon did not hand over {EXTENSION_NAME} (answer {answer})")
        self._held = True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._focused.wait(), FOCUS_WAIT_S)
        self._emit("PanelExtension", "v", [_extension_event(True)])
        return self.focus or FAKE_CONTEXT

    def preedit(self, text: str) -> None:
        if self._held:
            self._emit(
                "UpdatePreeditTextReceived", "vub", [ibus_text(text, True), len(text), bool(text)]
            )

    def commit(self, text: str) -> None:
        self.preedit("")
        self._emit("CommitText", "v", [ibus_text(text)])

    async def give_back(self) -> None:
        """Clear the preedit, end the extension mode and release the name (the picker
        queued for it gets it back)."""
        if not self._held:
            return
        self.preedit("")
        self._emit("PanelExtension", "v", [_extension_event(False)])
        self._held = False
        with contextlib.suppress(IBusError):
            await self._daemon("ReleaseName", "s", [EXTENSION_NAME])

    def _emit(self, member: str, signature: str, body: list[Any]) -> None:
        if self._bus is None or not self._bus.connected:
            raise IBusError("ibus-daemon left")
        self._bus.send(Message.new_signal(EXTENSION_PATH, PANEL, member, signature, body))

    async def _daemon(self, member: str, signature: str, body: list[Any]) -> list[Any]:
        if self._bus is None or not self._bus.connected:
            raise IBusError("ibus-daemon left")
        message = Message(
            destination="org.freedesktop.DBus",
            path="/org/freedesktop/DBus",
            interface="org.freedesktop.DBus",
            member=member,
            signature=signature,
            body=body,
        )
        try:
            reply = await asyncio.wait_for(self._bus.call(message), CALL_TIMEOUT_S)
        except (TimeoutError, EOFError, OSError):
            raise IBusError("ibus-daemon did not answer") from None
        if reply.message_type is MessageType.ERROR:
            detail = reply.body[0] if reply.body else ""
            raise IBusError(f"ibus-daemon: {reply.error_name}: {detail}")
        return reply.body

    def _dispatch(self, msg: Message) -> Message | None:
        if msg.message_type is MessageType.SIGNAL:
            if msg.member == "NameLost" and msg.body == [EXTENSION_NAME]:
                self._held = False
            return None
        if msg.message_type is not MessageType.METHOD_CALL:
            return None
        member = msg.member
        if member == "FocusIn":
            self.focus = msg.body[0]
            self._focused.set()
        elif member in ("FocusOut", "DestroyContext") and msg.body[0] == self.focus:
            self.focus = None
        elif member == "CommitTextReceived":
            # The user's engine committed while the extension mode was on: pass it on.
            assert self._bus is not None  # its messages come in on it
            self._bus.send(Message.new_signal(EXTENSION_PATH, PANEL, "CommitText", "v", msg.body))
        elif member == "ProcessKeyEvent":
            return Message.new_method_return(msg, "b", [False])  # keys go to the app
        if msg.flags & MessageFlag.NO_REPLY_EXPECTED:
            return None
        return Message.new_method_return(msg)


class Dictation:
    """Follows org.v2m.Dictation and drives the slot: preedit while speaking, then commit."""

    def __init__(self, slot: ExtensionSlot, session: MessageBus) -> None:
        self._slot = slot
        self._session = session
        self._field: str | None = None  # the context the dictation began in
        self._failure: str | None = None  # why the slot could not be borrowed
        self._release: asyncio.TimerHandle | None = None
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Future[Any]] = set()

    async def start(self) -> None:
        await self._match(
            f"type='signal',interface='{INTERFACE}',member='TranscriptionUpdated',"
            f"path='{OBJECT_PATH}'"
        )
        await self._match(
            "type='signal',interface='org.freedesktop.DBus.Properties',"
            f"member='PropertiesChanged',path='{OBJECT_PATH}',arg0='{INTERFACE}'"
        )
        self._session.add_message_handler(self._signal)

    async def _match(self, rule: str) -> None:
        await self._session.call(
            Message(
                destination="org.freedesktop.DBus",
                path="/org/freedesktop/DBus",
                interface="org.freedesktop.DBus",
                member="AddMatch",
                signature="s",
                body=[rule],
            )
        )

    def _signal(self, msg: Message) -> None:
        if msg.message_type is not MessageType.SIGNAL or msg.path != OBJECT_PATH:
            return
        if msg.member == "PropertiesChanged" and msg.body[0] == INTERFACE:
            state = msg.body[1].get("State")
            if state is not None:
                self._spawn(self._state(state.value))
        elif msg.member == "TranscriptionUpdated" and msg.interface == INTERFACE:
            text, final = msg.body
            self._cancel_release()
            if final:
                # Kept in the preedit until the commit comes, or given back if none does.
                self._release = asyncio.get_running_loop().call_later(
                    COMMIT_WAIT_S, self._give_back
                )
            if self._slot.held:
                with contextlib.suppress(IBusError):
                    self._slot.preedit(text)
            elif not final:  # a dictation this helper did not see begin (it started late)
                self._spawn(self._state("recording"))

    async def _state(self, state: str) -> None:
        async with self._lock:
            if state == "recording" and not self._slot.held:
                self._cancel_release()
                try:
                    self._field = await self._slot.borrow()
                    self._failure = None
                except IBusError as exc:
                    self._field, self._failure = None, str(exc)
                    log.warning("no preedit for this dictation: %s", exc)
            elif state == "idle" and self._slot.held and self._release is None:
                self._release = asyncio.get_running_loop().call_later(FINAL_WAIT_S, self._give_back)

    def _cancel_release(self) -> None:
        if self._release is not None:
            self._release.cancel()
            self._release = None

    def _give_back(self) -> None:
        self._release = None
        self._spawn(self._slot.give_back())

    def _spawn(self, work: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def commit(self, text: str) -> None:
        """Commit ``text`` into the field the dictation began in; IBusError if it cannot."""
        async with self._lock:
            self._cancel_release()
            try:
                if not self._slot.held:
                    if self._failure is not None:
                        raise IBusError(self._failure)
                    self._field = await self._slot.borrow()
                focus = self._slot.focus
                if focus is None or focus == FAKE_CONTEXT:
                    raise IBusError("no text field has the keyboard focus")
                if self._field not in (None, FAKE_CONTEXT) and focus != self._field:
                    raise IBusError("the keyboard focus left the field the dictation began in")
                self._slot.commit(text)
            finally:
                self._field = self._failure = None
                with contextlib.suppress(IBusError):
                    await self._slot.give_back()


async def serve(environ: dict[str, str] | None = None) -> int:
    """The helper's life: announce readiness, then answer commit requests on stdin."""
    try:
        slot = ExtensionSlot(ibus_address(environ))
        await slot.connect()
    except IBusError as exc:
        _answer({"error": str(exc)})
        return 1
    session = await MessageBus(bus_type=BusType.SESSION).connect()
    dictation = Dictation(slot, session)
    await dictation.start()
    _answer({"ready": True})
    reader = await _stdin_reader()
    while line := await reader.readline():
        request: dict[str, Any] = json.loads(line)
        try:
            await dictation.commit(request["commit"])
        except IBusError as exc:
            _answer({"error": str(exc)})
        else:
            _answer({"ok": True})
    return 0


async def _stdin_reader() -> asyncio.StreamReader:
    reader = asyncio.StreamReader(limit=16 * 1024 * 1024)
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


def _answer(answer: dict[str, Any], out: Callable[[str], Any] = sys.stdout.write) -> None:
    out(json.dumps(answer) + "\n")
    sys.stdout.flush()


def main() -> None:
    log_to_stderr("v2m-ibus: %(message)s", logging.INFO)
    sys.exit(asyncio.run(serve()))


if __name__ == "__main__":
    main()
