"""Put the final text where the user is typing: clipboard, synthetic typing, paste.

Tools are chosen per display server (Wayland: wl-copy, wtype or ydotool; X11:
xclip or xsel, xdotool). The text always travels on the tool's stdin, never on
a command line (no shell, no argument injection, no length limit, not visible in
``ps``), encoded as UTF-8 and read by the tool in a UTF-8 locale. ``plan``
returns the exact commands so tests can check them.
"""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from os import environ as os_environ

from .config import OutputConfig
from .errors import DeliveryError

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

# The package that provides each tool; the name is the same on Debian, Fedora and Arch.
PACKAGES = {
    "wl-copy": "wl-clipboard",
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
    ) -> None:
        self._cfg = cfg
        self._env = os_environ if environ is None else environ
        self._which = which
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

    def plan(self, text: str) -> list[Command]:
        """The commands ``deliver`` runs for ``text``, in order."""
        cfg = self._cfg
        if not (cfg.clipboard or cfg.type or cfg.paste):
            return []
        wayland = self.session() == "wayland"
        commands = []
        if cfg.clipboard or cfg.paste:
            commands.append(self._copy(text, wayland))
        if cfg.paste:
            commands.append(self._paste(wayland))
        elif cfg.type:
            tool = self._typing_tool(wayland)
            clean = _CONTROL.sub("", text)
            for start in range(0, len(clean), TYPE_CHUNK_CHARS):
                chunk = clean[start : start + TYPE_CHUNK_CHARS]
                timeout = TIMEOUT_S + TYPE_S_PER_CHAR * len(chunk)
                commands.append(Command(_TYPE_ARGV[tool], chunk.encode(), timeout))
        return commands

    async def deliver(self, text: str) -> None:
        """Run ``plan(text)``, after any delivery still in progress."""
        env = self.tool_environment()
        async with self._busy:
            for command in self.plan(text):
                await _run(command, env)
        log.debug("delivered %d characters", len(text))

    def _copy(self, text: str, wayland: bool) -> Command:
        if wayland:
            self._require("wl-copy")
            return Command(_WL_COPY_ARGV, text.encode())
        tool = self._first_name(["xclip", "xsel"])
        return Command(_COPY_ARGV[tool], text.encode())

    def _paste(self, wayland: bool) -> Command:
        tool = self._typing_tool(wayland)
        return Command(_PASTE_ARGV[tool], b"")

    def _typing_tool(self, wayland: bool) -> str:
        choice = self._cfg.typing_tool
        if choice == "auto":
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


# Every tool reads the text from stdin; argv[0] is resolved through PATH at run time.
# wl-copy would guess the MIME type from the content (a dictated "<html>" or "#!/bin/sh"
# would not be offered as text); the text types are announced explicitly instead.
_WL_COPY_ARGV = ("wl-copy", "--type", "text/plain;charset=utf-8")
_COPY_ARGV = {
    "xclip": ("xclip", "-selection", "clipboard", "-in"),
    "xsel": ("xsel", "--clipboard", "--input"),
}
_TYPE_ARGV = {
    "wtype": ("wtype", "-"),
    "ydotool": ("ydotool", "type", "--file", "-"),
    "xdotool": ("xdotool", "type", "--clearmodifiers", "--file", "-"),
}
_PASTE_ARGV = {
    "wtype": ("wtype", "-M", "ctrl", "v", "-m", "ctrl"),
    "ydotool": ("ydotool", "key", "29:1", "47:1", "47:0", "29:0"),  # evdev codes: ctrl, v
    "xdotool": ("xdotool", "key", "--clearmodifiers", "ctrl+v"),
}


async def _run(command: Command, env: Mapping[str, str]) -> None:
    tool = command.argv[0]
    # Clipboard tools fork a child that keeps serving the selection and would hold a
    # pipe open forever, so stderr goes to a file (read once the tool has exited) and
    # stdout to /dev/null; only the exit status and that message count.
    with tempfile.TemporaryFile() as stderr:
        try:
            proc = await asyncio.create_subprocess_exec(
                *command.argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.DEVNULL,
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
            return
        stderr.seek(0)
        message = stderr.read(STDERR_CHARS).decode(errors="replace").strip()
    detail = f": {message}" if message else ""
    hint = f" ({HINTS[tool]})" if tool in HINTS else ""
    raise DeliveryError(f"{tool} failed with exit status {proc.returncode}{detail}{hint}")
