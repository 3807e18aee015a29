"""Put the final text where the user is typing: clipboard, synthetic typing, paste.

Tools are chosen per display server (Wayland: wl-copy, wtype or ydotool; X11:
xclip or xsel, xdotool). The text always travels on the tool's stdin, never on
a command line (no shell, no argument injection, no length limit, not visible in
``ps``), encoded as UTF-8 and read by the tool in a UTF-8 locale. ``plan``
returns the exact commands so tests can check them. xdotool would type the
capitals a layout lacks in lowercase; it presses those with Shift instead.

On GNOME and KDE Wayland sessions, keys can also go through the desktop portal's
RemoteDesktop keyboard (``portal.RemoteKeyboard``), unprivileged and on the
user's own layout. The compositor drops keysyms its layout lacks, so only ASCII
is typed that way; other characters are pasted: the clipboard is saved, set to
them, the paste chord is pressed, and the saved clipboard is put back.

Where IBus runs, typing can go through it instead (``ibus_path.IBusHelper``, v2md/desktop/ibus.py):
the text is committed whole into the focused field, whatever the layout, with no key
pressed and the clipboard untouched; only when that fails is the text put on the
clipboard (with ``clipboard``), and the error says so.
"""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from itertools import groupby
from os import environ as os_environ

from v2md.config import OutputConfig
from v2md.desktop.ibus_path import IBusHelper, IBusUnavailable
from v2md.desktop.portal import PortalError, RemoteKeyboard
from v2md.errors import DeliveryError

log = logging.getLogger(__name__)

TYPE_CHUNK_CHARS = 1000  # typing tools stall on huge inputs; several calls keep them responsive
TIMEOUT_S = 30.0
# Typing tools pace their key presses (ydotool: about 30 ms a character by default), so a
# chunk gets this much time per character on top of TIMEOUT_S.
TYPE_S_PER_CHAR = 0.1
# Control characters (C0 and C1) would be typed as key presses (escape, backspace, ...);
# tab and newline are kept because they are the text's layout.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
STDERR_CHARS = 500  # of a failing tool's message, quoted in the error
# Characters typed as portal keysyms: ASCII, which Latin layouts have (its keysyms are its
# code points). The compositor drops keysyms the layout lacks, so the rest is pasted.
_PORTAL_TYPED = re.compile(r"[\x20-\x7e\t\n]+")
_KEYSYMS = {"\n": 0xFF0D, "\t": 0xFF09}  # Return, Tab
_CONTROL_L, _SHIFT_L, _V = 0xFFE3, 0xFFE1, 0x76
PASTE_CHORD = ((_CONTROL_L, True), (_V, True), (_V, False), (_CONTROL_L, False))
# The focused app reads the clipboard after it sees the paste chord; the clipboard must
# not change (next pasted run, or the saved content put back) before it has.
PASTE_SETTLE_S = 0.3
# Desktops whose portal offers a keyboard where wtype cannot work (XDG_CURRENT_DESKTOP).
PORTAL_DESKTOPS = frozenset({"GNOME", "KDE"})

# The package that provides each tool; the name is the same on Debian, Fedora and Arch.
PACKAGES = {
    "wl-copy": "wl-clipboard",
    "wl-paste": "wl-clipboard",
    "xclip": "xclip",
    "xsel": "xsel",
    "wtype": "wtype",
    "ydotool": "ydotool",
    "xdotool": "xdotool",
}
# Said when the tool is there but fails: the usual reason, which its own message may not give.
HINTS = {
    "ydotool": "ydotool needs its ydotoold daemon running, with access to /dev/uinput",
    "wtype": "wtype needs the virtual-keyboard protocol, which GNOME lacks: "
    "there, set [output] typing_tool = 'ydotool'",
}


@dataclass(frozen=True)
class Command:
    argv: tuple[str, ...]
    stdin: bytes
    timeout_s: float = TIMEOUT_S


class Delivery:
    def __init__(
        self,
        cfg: OutputConfig,
        environ: Mapping[str, str] | None = None,
        which: Callable[[str], str | None] = shutil.which,
        keyboard: RemoteKeyboard | None = None,
        ibus: IBusHelper | None = None,
        on_path: Callable[[str], None] = lambda _path: None,
    ) -> None:
        self._cfg = cfg
        self._env = os_environ if environ is None else environ
        self._which = which
        self._keyboard = keyboard  # None: no session bus, so no portal
        self._ibus = ibus  # None: IBus is not used (see uses_ibus)
        self._on_path = on_path  # told the path each delivery took (DeliveryPath)
        # Two final texts in quick succession must not interleave their typed chunks.
        self._busy = asyncio.Lock()

    def tool_environment(self) -> dict[str, str]:
        """The environment the tools run in: the daemon's, with a UTF-8 character type.

        The text is sent as UTF-8, and typing tools decode it with the C library's
        multibyte functions: under a C/POSIX locale (a bare service environment)
        they would drop every non-ASCII character. LC_ALL would override LC_CTYPE.
        """
        env = {k: v for k, v in self._env.items() if k != "LC_ALL"}
        env["LC_CTYPE"] = "C.UTF-8"
        return env

    def session(self) -> str:
        if self._cfg.session != "auto":
            return self._cfg.session
        if self._env.get("WAYLAND_DISPLAY"):
            return "wayland"
        if self._env.get("DISPLAY"):
            return "x11"
        raise DeliveryError(
            "no graphical session: neither WAYLAND_DISPLAY nor DISPLAY is set for v2md "
            "(run 'systemctl --user import-environment WAYLAND_DISPLAY DISPLAY')"
        )

    def plan(self, text: str, *, by_portal: bool = False) -> list[Command]:
        """The commands ``deliver`` runs for ``text``, in order; with ``by_portal`` (or
        typing_tool "portal"), those before the portal's key presses."""
        cfg = self._cfg
        if not (cfg.clipboard or cfg.type or cfg.paste):
            return []
        if cfg.type and not cfg.paste and cfg.typing_tool == "ibus":
            return []  # committed through IBus; the clipboard is only its fallback
        wayland = self.session() == "wayland"
        commands = []
        paste = self._pasted(text)
        if cfg.clipboard or paste:
            commands.append(self._copy(text.encode(), wayland))
        if by_portal or cfg.typing_tool == "portal":
            return commands
        if paste:
            commands.append(self._paste(wayland))
        elif cfg.type:
            tool = self._typing_tool(wayland)
            commands += _typing_commands(tool, _CONTROL.sub("", text), cfg.newline)
        return commands

    def _pasted(self, text: str) -> bool:
        """Whether ``text`` is pasted rather than typed: [output] paste, or a text with a
        line break where newline = "paste" (no key press can send a chat message)."""
        cfg = self._cfg
        return cfg.paste or (cfg.type and cfg.newline == "paste" and "\n" in text)

    async def deliver(self, text: str) -> None:
        """Run ``plan(text)``, then any portal key presses, after any delivery in progress."""
        env = self.tool_environment()
        async with self._busy:
            if await self._by_ibus():
                self._on_path("ibus")
                await self._commit_by_ibus(text, env)
                log.debug("committed %d characters through IBus", len(text))
                return
            by_portal = await self._by_portal()
            self._on_path(self._path(by_portal))
            for command in self.plan(text, by_portal=by_portal):
                await run_command(command, env)
            if by_portal:
                await self._keys_by_portal(text, env)
        log.debug("delivered %d characters", len(text))

    async def path(self) -> str:
        """How the next text would be delivered (the DeliveryPath property's values)."""
        if await self._by_ibus():
            return "ibus"
        return self._path(await self._by_portal())

    def _path(self, by_portal: bool) -> str:
        cfg = self._cfg
        if by_portal:
            return "portal"
        if not (cfg.type or cfg.paste):
            return "clipboard" if cfg.clipboard else "none"
        try:
            return self._typing_tool(self.session() == "wayland")
        except DeliveryError:
            return "none"

    async def _by_ibus(self) -> bool:
        """Whether the text is committed through IBus (asks the helper when "auto")."""
        cfg = self._cfg
        if not cfg.type or cfg.paste:
            return False
        if cfg.typing_tool == "ibus":
            return True
        return cfg.typing_tool == "auto" and self._ibus is not None and await self._ibus.available()

    async def _commit_by_ibus(self, text: str, env: Mapping[str, str]) -> None:
        """Commit through IBus; on failure, the text goes on the clipboard (with
        ``clipboard``) and the error says where it is."""
        try:
            if self._ibus is None:
                raise IBusUnavailable("v2md has no IBus helper")
            await self._ibus.commit(text)
            return
        except IBusUnavailable as exc:
            reason = str(exc)
        where = "kept in the history: v2mctl history"
        if self._cfg.clipboard:
            try:
                await run_command(self._copy(text.encode(), self.session() == "wayland"), env)
                where = "on the clipboard and in the history"
            except DeliveryError as exc:
                log.warning("the IBus fallback could not use the clipboard: %s", exc)
        raise DeliveryError(f"cannot commit the text through IBus: {reason}. The text is {where}")

    async def _by_portal(self) -> bool:
        """Whether keys go through the desktop portal (asks the portal when "auto")."""
        cfg = self._cfg
        if not (cfg.type or cfg.paste):
            return False
        if cfg.typing_tool == "portal":
            return True
        if cfg.typing_tool != "auto" or self._keyboard is None:
            return False
        desktops = set(self._env.get("XDG_CURRENT_DESKTOP", "").upper().split(":"))
        if self.session() != "wayland" or not desktops & PORTAL_DESKTOPS:
            return False
        return await self._keyboard.available()

    async def _keys_by_portal(self, text: str, env: Mapping[str, str]) -> None:
        if self._keyboard is None:
            raise DeliveryError(
                "cannot type through the desktop portal: v2md has no session bus connection. "
                "The text is kept in the history: v2mctl history"
            )
        try:
            if self._pasted(text):
                await self._keyboard.send(PASTE_CHORD)
            else:
                await self._type_by_portal(self._keyboard, _CONTROL.sub("", text), env)
        except PortalError as exc:
            raise DeliveryError(
                f"cannot type through the desktop portal: {exc}. "
                "The text is kept in the history: v2mctl history"
            ) from None

    async def _type_by_portal(
        self, keyboard: RemoteKeyboard, text: str, env: Mapping[str, str]
    ) -> None:
        """Type what every layout has as keysyms; paste the rest, then restore the clipboard."""
        wayland = self.session() == "wayland"
        pieces = _portal_pieces(text)
        saved = None
        if any(not typed for typed, _ in pieces):
            saved = await self._saved_clipboard(wayland, env)
        try:
            for typed, piece in pieces:
                if typed:
                    await keyboard.send(_key_events(piece, self._cfg.newline))
                else:
                    await run_command(self._copy(piece.encode(), wayland), env)
                    await keyboard.send(PASTE_CHORD)
                    await asyncio.sleep(PASTE_SETTLE_S)
        finally:
            if saved is not None:
                await run_command(self._copy(saved, wayland), env)

    async def _saved_clipboard(self, wayland: bool, env: Mapping[str, str]) -> bytes | None:
        """The clipboard's text, to put back after pasting; None when it holds none."""
        tool = self._require("wl-paste") if wayland else self._first_name(["xclip", "xsel"])
        try:
            return await run_command(Command(_CLIPBOARD_OUT_ARGV[tool], b""), env)
        except DeliveryError as exc:  # empty, or not text: the pasted text stays there
            log.debug("clipboard not saved: %s", exc)
            return None

    def _copy(self, data: bytes, wayland: bool) -> Command:
        if wayland:
            self._require("wl-copy")
            return Command(_WL_COPY_ARGV, data)
        tool = self._first_name(["xclip", "xsel"])
        return Command(_COPY_ARGV[tool], data)

    def _paste(self, wayland: bool) -> Command:
        tool = self._typing_tool(wayland)
        return Command(_PASTE_ARGV[tool], b"")

    def _typing_tool(self, wayland: bool) -> str:
        choice: str = self._cfg.typing_tool
        if choice in ("auto", "ibus"):  # "ibus" only types; pasting takes a tool
            choice = self._first_name(self._typing_candidates(wayland))
        self._require(choice)
        return choice

    def _typing_candidates(self, wayland: bool) -> list[str]:
        if not wayland:
            return ["xdotool"]
        # GNOME's compositor has no virtual-keyboard protocol, so wtype cannot work there.
        if "GNOME" in self._env.get("XDG_CURRENT_DESKTOP", "").upper().split(":"):
            return ["ydotool"]
        return ["wtype", "ydotool"]

    def _first_name(self, tools: list[str]) -> str:
        for tool in tools:
            if self._which(tool):
                return tool
        raise self._missing(tools)

    def _require(self, tool: str) -> str:
        if not self._which(tool):
            raise self._missing([tool])
        return tool

    @staticmethod
    def _missing(tools: list[str]) -> DeliveryError:
        names = " or ".join(tools)
        packages = " or ".join(f"'{PACKAGES[t]}'" for t in tools)
        return DeliveryError(
            f"cannot deliver the text: {names} is not installed; install the package {packages} "
            "(the same name on Debian, Fedora and Arch). "
            "The text is kept in the history: v2mctl history"
        )


def uses_ibus(cfg: OutputConfig) -> bool:
    """Whether deliveries may go through IBus, so that its helper should run."""
    return cfg.type and not cfg.paste and cfg.typing_tool in ("auto", "ibus")


# Every tool reads the text from stdin; argv[0] is resolved through PATH at run time.
# wl-copy would guess the MIME type from the content (a dictated "<html>" or "#!/bin/sh"
# would not be offered as text); the text types are announced explicitly instead.
_WL_COPY_ARGV = ("wl-copy", "--type", "text/plain;charset=utf-8")
_COPY_ARGV = {
    "xclip": ("xclip", "-selection", "clipboard", "-in"),
    "xsel": ("xsel", "--clipboard", "--input"),
}
# What the clipboard holds, as text, unchanged (wl-paste would add a newline).
_CLIPBOARD_OUT_ARGV = {
    "wl-paste": ("wl-paste", "--no-newline", "--type", "text"),
    "xclip": ("xclip", "-selection", "clipboard", "-out"),
    "xsel": ("xsel", "--clipboard", "--output"),
}
_TYPE_ARGV = {
    "wtype": ("wtype", "-"),
    "ydotool": ("ydotool", "type", "--file", "-"),
    "xdotool": ("xdotool", "type", "--clearmodifiers", "--file", "-"),
}
# xdotool types a character missing from the layout by binding its keysym alone to a
# spare keycode, which X reads as a letter's lowercase then uppercase: pressed without
# Shift, the capital comes out small (Ü as ü; xdotool issues #41 and #97, open upstream).
# Those capitals are pressed with Shift instead, right on any layout, by keysym name in a
# script on stdin, one line a key.
_XDOTOOL_SCRIPT_ARGV = ("xdotool", "-")
_SHIFT_RETURN_ARGV = {
    "wtype": ("wtype", "-M", "shift", "-k", "Return", "-m", "shift"),
    "ydotool": ("ydotool", "key", "42:1", "28:1", "28:0", "42:0"),  # evdev: shift, enter
    "xdotool": ("xdotool", "key", "--clearmodifiers", "shift+Return"),
}
_PASTE_ARGV = {
    "wtype": ("wtype", "-M", "ctrl", "v", "-m", "ctrl"),
    "ydotool": ("ydotool", "key", "29:1", "47:1", "47:0", "29:0"),  # evdev codes: ctrl, v
    "xdotool": ("xdotool", "key", "--clearmodifiers", "ctrl+v"),
}


def _typing_commands(tool: str, text: str, newline: str = "return") -> list[Command]:
    """The commands that type ``text`` with ``tool``, in chunks; with newline
    "shift-return", each line break is pressed as Shift+Return."""
    if newline == "shift-return" and "\n" in text:
        commands = []
        for index, line in enumerate(text.split("\n")):
            if index:
                commands.append(Command(_SHIFT_RETURN_ARGV[tool], b""))
            commands += _typing_commands(tool, line)
        return commands
    runs = groupby(text, _xdotool_capital) if tool == "xdotool" else [(False, text)]
    commands = []
    for shifted, chars in runs:
        run = "".join(chars)
        for start in range(0, len(run), TYPE_CHUNK_CHARS):
            chunk = run[start : start + TYPE_CHUNK_CHARS]
            timeout = TIMEOUT_S + TYPE_S_PER_CHAR * len(chunk)
            if shifted:
                script = "".join(f"key --clearmodifiers shift+U{ord(c):04X}\n" for c in chunk)
                commands.append(Command(_XDOTOOL_SCRIPT_ARGV, script.encode(), timeout))
            else:
                commands.append(Command(_TYPE_ARGV[tool], chunk.encode(), timeout))
    return commands


def _xdotool_capital(char: str) -> bool:
    """Whether xdotool would type ``char`` in lowercase: a capital outside ASCII (every
    layout has the ASCII ones, and xdotool presses Shift for them)."""
    return not char.isascii() and char != char.lower()


def _portal_pieces(text: str) -> list[tuple[bool, str]]:
    """``text`` cut into runs: (True, run) to type as keysyms, (False, run) to paste."""
    pieces, end = [], 0
    for match in _PORTAL_TYPED.finditer(text):
        if match.start() > end:
            pieces.append((False, text[end : match.start()]))
        pieces.append((True, match.group()))
        end = match.end()
    if end < len(text):
        pieces.append((False, text[end:]))
    return pieces


def _key_events(run: str, newline: str = "return") -> list[tuple[int, bool]]:
    events = []
    for char in run:
        keysym = _KEYSYMS.get(char, ord(char))
        if char == "\n" and newline == "shift-return":
            events += [(_SHIFT_L, True), (keysym, True), (keysym, False), (_SHIFT_L, False)]
        else:
            events += [(keysym, True), (keysym, False)]
    return events


async def run_command(command: Command, env: Mapping[str, str]) -> bytes:
    """Run ``command`` (one of a plan's) in ``env``; its standard output. A tool that fails,
    or is still running after the command's ``timeout_s`` (it is killed then), is a
    DeliveryError."""
    tool = command.argv[0]
    # Clipboard tools fork a child that keeps serving the selection and would hold a
    # pipe open forever, so stdout and stderr go to files, read once the tool has
    # exited; only the exit status, stdout and that message count.
    with tempfile.TemporaryFile() as stdout, tempfile.TemporaryFile() as stderr:
        try:
            proc = await asyncio.create_subprocess_exec(
                *command.argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=stdout,
                stderr=stderr,
                env=dict(env),
            )
        except OSError as exc:  # removed since plan() looked, or not executable
            raise DeliveryError(f"cannot run {tool}: {exc.strerror}") from None
        try:
            await asyncio.wait_for(proc.communicate(command.stdin), command.timeout_s)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise DeliveryError(f"{tool} did not finish within {command.timeout_s:g} s") from None
        if proc.returncode == 0:
            stdout.seek(0)
            return stdout.read()
        stderr.seek(0)
        message = stderr.read(STDERR_CHARS).decode(errors="replace").strip()
    detail = f": {message}" if message else ""
    hint = f" ({HINTS[tool]})" if tool in HINTS else ""
    raise DeliveryError(f"{tool} failed with exit status {proc.returncode}{detail}{hint}")
