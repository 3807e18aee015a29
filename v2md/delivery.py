"""Put the final text where the user is typing: clipboard, synthetic typing, paste.

Tools are chosen per display server (Wayland: wl-copy, wtype or ydotool; X11:
xclip or xsel, xdotool). The text always travels on the tool's stdin, never on
a command line (no shell, no argument injection, no length limit, not visible in
``ps``). ``plan`` returns the exact commands so tests can check them.
"""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from os import environ as os_environ

from .config import OutputConfig
from .errors import DeliveryError

log = logging.getLogger(__name__)

TYPE_CHUNK_CHARS = 1000  # typing tools stall on huge inputs; several calls keep them responsive
TIMEOUT_S = 30.0
# Control characters would be typed as key presses (escape, backspace, ...); keep text layout.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")

PACKAGES = {  # tool -> package names on Debian / Fedora / Arch
    "wl-copy": "wl-clipboard (Debian, Fedora, Arch)",
    "xclip": "xclip (Debian, Fedora, Arch)",
    "xsel": "xsel (Debian, Fedora, Arch)",
    "wtype": "wtype (Debian, Fedora, Arch)",
    "ydotool": "ydotool (Debian, Fedora, Arch; its ydotoold daemon must run)",
    "xdotool": "xdotool (Debian, Fedora, Arch)",
}


@dataclass(frozen=True)
class Command:
    argv: tuple[str, ...]
    stdin: bytes


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
                chunk = clean[start : start + TYPE_CHUNK_CHARS].encode()
                commands.append(Command(_TYPE_ARGV[tool], chunk))
        return commands

    async def deliver(self, text: str) -> None:
        for command in self.plan(text):
            await _run(command, self._env)
        log.debug("delivered %d characters", len(text))

    def _copy(self, text: str, wayland: bool) -> Command:
        if wayland:
            return Command((self._require("wl-copy"),), text.encode())
        tool = self._first_name(["xclip", "xsel"])
        return Command(_COPY_ARGV[tool], text.encode())

    def _paste(self, wayland: bool) -> Command:
        tool = self._typing_tool(wayland)
        return Command(_PASTE_ARGV[tool], b"")

    def _typing_tool(self, wayland: bool) -> str:
        choice = self._cfg.typing_tool
        if choice == "auto":
            choice = self._first_name(["wtype", "ydotool"] if wayland else ["xdotool"])
        self._require(choice)
        return choice

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
        options = " or ".join(f"{t} (package {PACKAGES[t]})" for t in tools)
        return DeliveryError(
            f"cannot deliver the text: install {options}; "
            "the text is kept in the history (v2mctl history)"
        )


# Every tool reads the text from stdin; argv[0] is resolved through PATH at run time.
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
    # Clipboard tools fork a child that keeps serving the selection and would hold
    # pipes open forever, so output goes to /dev/null and only the status counts.
    proc = await asyncio.create_subprocess_exec(
        *command.argv,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        env=dict(env),
    )
    try:
        await asyncio.wait_for(proc.communicate(command.stdin), TIMEOUT_S)
    except TimeoutError:
        proc.kill()
        raise DeliveryError(f"{command.argv[0]} did not finish within {TIMEOUT_S:.0f} s") from None
    if proc.returncode != 0:
        raise DeliveryError(f"{command.argv[0]} failed with exit status {proc.returncode}")
