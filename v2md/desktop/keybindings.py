"""Desktop shortcuts that run Toggle: a GNOME custom keybinding, or a KDE global shortcut.

Each ``bind_*`` returns the lines to show the user: what was done and how to undo
it; with ``dry_run`` they are the exact commands (or file edits) instead, and
nothing is changed. The shortcut runs ``busctl`` rather than v2mctl, so it works
whether or not the Python entry points are on the session's PATH, and D-Bus
activation starts the daemon on the first press.
"""

from __future__ import annotations

import ast
import configparser
import json
import logging
import os
import re
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path

from v2md.config import xdg_dir

log = logging.getLogger(__name__)

TOGGLE_COMMAND = "busctl --user call org.v2m.Dictation /org/v2m/Dictation org.v2m.Dictation Toggle"
SHORTCUT_NAME = "v2m: toggle dictation"

GNOME_SCHEMA = "org.gnome.settings-daemon.plugins.media-keys"
GNOME_LIST_KEY = "custom-keybindings"
# A fixed path of our own: binding again replaces it instead of adding a second one.
GNOME_PATH = "/org/gnome/settings-daemon/plugins/media-keys/custom-keybindings/v2m/"
GNOME_ENTRY = f"{GNOME_SCHEMA}.custom-keybinding:{GNOME_PATH}"
GNOME_ENTRY_KEYS = ("name", "command", "binding")

KDE_DESKTOP_FILE = "v2m-toggle.desktop"
KDE_GROUPS = ("services", KDE_DESKTOP_FILE)
# configparser reads the header [services][v2m-toggle.desktop] as this one section name.
KDE_SECTION = "][".join(KDE_GROUPS)
KDE_KEY = "_launch"
KDE_WRITERS = ("kwriteconfig6", "kwriteconfig5")
# GTK accelerator modifiers (what GNOME and v2mctl's default use) in KDE's spelling.
KDE_MODIFIERS = {
    "super": "Meta",
    "meta": "Meta",
    "primary": "Ctrl",
    "control": "Ctrl",
    "ctrl": "Ctrl",
    "alt": "Alt",
    "shift": "Shift",
}
# And back: KDE's modifiers in GTK's spelling, for ``v2mctl bind gnome Meta+V``.
GTK_MODIFIERS = {"meta": "Super", "ctrl": "Control", "alt": "Alt", "shift": "Shift"}
SUBPROCESS_TIMEOUT_S = 30  # gsettings and kwriteconfig answer at once; a hang is a broken setup


class KeybindingError(RuntimeError):
    """The desktop's settings could not be read or written; the message says why."""


def _require_accelerator(accelerator: str) -> str:
    accelerator = accelerator.strip()
    if not accelerator:
        raise KeybindingError("the shortcut is empty; give one such as '<Super>v' or 'Meta+V'")
    return accelerator


def _run(argv: list[str]) -> str:
    if shutil.which(argv[0]) is None:
        raise KeybindingError(f"{argv[0]} is not installed")
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise KeybindingError(
            f"{shlex.join(argv)} did not finish within {SUBPROCESS_TIMEOUT_S} s"
        ) from None
    if proc.returncode != 0:
        raise KeybindingError(f"{shlex.join(argv)} failed: {proc.stderr.strip()}")
    return proc.stdout.strip()


# ---- GNOME --------------------------------------------------------------------------------


def _gnome_paths() -> list[str]:
    """The user's custom keybinding paths, parsed from gsettings' GVariant text."""
    if shutil.which("gsettings") is None:
        raise KeybindingError(
            "gsettings is not installed (Debian: libglib2.0-bin, Fedora/Arch: glib2)"
        )
    # list-schemas fails outright when no schema at all is installed: same answer.
    try:
        listed = _run(["gsettings", "list-schemas"])
    except KeybindingError:
        listed = ""
    if GNOME_SCHEMA not in listed.split():
        raise KeybindingError(
            f"the GSettings schema {GNOME_SCHEMA} is not installed: this is not a GNOME "
            "session, or gnome-settings-daemon is missing (Debian: gnome-settings-daemon-common)"
        )
    text = _run(["gsettings", "get", GNOME_SCHEMA, GNOME_LIST_KEY])
    # GVariant's text for a string array ("@as []", "['/a/', '/b/']") is a Python literal
    # once the type annotation is dropped; literal_eval never evaluates code.
    try:
        paths = ast.literal_eval(text.removeprefix("@as "))
    except (ValueError, SyntaxError) as exc:
        raise KeybindingError(f"cannot parse {GNOME_LIST_KEY} = {text!r}") from exc
    if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
        raise KeybindingError(f"{GNOME_LIST_KEY} is not a list of paths: {text!r}")
    return paths


def _strv(paths: list[str]) -> str:
    """GVariant text for a string array (type ``as``)."""
    # A JSON array is valid GVariant text, and its double quotes keep the printed
    # dry-run commands free of quote-in-quote escapes.
    return json.dumps(paths)


def _apply(commands: list[list[str]], dry_run: bool) -> list[str]:
    if dry_run:
        return [shlex.join(command) for command in commands]
    for command in commands:
        log.debug("running %s", shlex.join(command))
        _run(command)
    return []


def gnome_accelerator(accelerator: str) -> str:
    """GTK's spelling of a shortcut: ``Meta+V`` becomes ``<Super>v``; ``<Super>v`` stays.

    A string GNOME would store but never match (``<Super>``, ``v<Super>``) is refused
    here, since gsettings accepts any text. From KDE's spelling, modifiers, single
    characters and F keys translate exactly; other named keys differ (Esc/Escape,
    Space/space), so they must be given GNOME's way.
    """
    accelerator = _require_accelerator(accelerator)
    if re.fullmatch(r"(?:<\w+>)*\w+", accelerator):
        return accelerator
    match = re.fullmatch(r"((?:\w+\+)+)(\w+)", accelerator)
    if match is None:
        raise KeybindingError(f"cannot read the shortcut {accelerator!r}; GNOME's is like <Super>v")
    modifiers = []
    for modifier in match.group(1).rstrip("+").split("+"):
        if modifier.lower() not in GTK_MODIFIERS:
            raise KeybindingError(f"unknown modifier {modifier} in {accelerator!r}")
        modifiers.append(f"<{GTK_MODIFIERS[modifier.lower()]}>")
    key = match.group(2)
    if len(key) == 1:
        key = key.lower()
    elif not re.fullmatch(r"F\d{1,2}", key):
        raise KeybindingError(
            f"give {accelerator!r} in GNOME's spelling (e.g. <Super>space): "
            f"key names differ between KDE and GNOME"
        )
    return "".join(modifiers) + key


def bind_gnome(
    accelerator: str, *, dry_run: bool = False, command: str = TOGGLE_COMMAND
) -> list[str]:
    """Point our custom keybinding at ``command``, keeping the user's other ones."""
    accelerator = gnome_accelerator(accelerator)
    paths = _gnome_paths()
    if GNOME_PATH not in paths:
        paths.append(GNOME_PATH)
    values = dict(zip(GNOME_ENTRY_KEYS, (SHORTCUT_NAME, command, accelerator), strict=True))
    commands = [["gsettings", "set", GNOME_ENTRY, key, value] for key, value in values.items()]
    commands.append(["gsettings", "set", GNOME_SCHEMA, GNOME_LIST_KEY, _strv(paths)])
    return _apply(commands, dry_run) or [
        f"GNOME: {accelerator} now runs: {command}",
        "undo with: v2mctl bind gnome --remove",
    ]


def unbind_gnome(*, dry_run: bool = False) -> list[str]:
    """Drop our path from the list and reset its keys; the user's other bindings stay."""
    paths = [p for p in _gnome_paths() if p != GNOME_PATH]
    commands = [["gsettings", "set", GNOME_SCHEMA, GNOME_LIST_KEY, _strv(paths)]]
    commands += [["gsettings", "reset", GNOME_ENTRY, key] for key in GNOME_ENTRY_KEYS]
    return _apply(commands, dry_run) or ["GNOME: the v2m shortcut is removed"]


# ---- KDE ----------------------------------------------------------------------------------


def kde_accelerator(accelerator: str) -> str:
    """KDE's spelling of a shortcut: ``<Super>v`` becomes ``Meta+V``; ``Meta+V`` stays.

    v2mctl's default is GNOME's spelling, so ``v2mctl bind kde`` works without one.
    Modifiers and single keys translate exactly; named keys only where GTK and Qt
    agree apart from case (space, Return, F1, Escape).
    """
    accelerator = _require_accelerator(accelerator)
    if "<" not in accelerator:
        return accelerator
    match = re.fullmatch(r"((?:<\w+>)+)([^<>]+)", accelerator)
    if match is None:
        raise KeybindingError(f"cannot read the shortcut {accelerator!r}")
    parts = []
    for modifier in re.findall(r"<(\w+)>", match.group(1)):
        if modifier.lower() not in KDE_MODIFIERS:
            raise KeybindingError(f"unknown modifier <{modifier}> in {accelerator!r}")
        parts.append(KDE_MODIFIERS[modifier.lower()])
    key = match.group(2)
    parts.append(key.upper() if len(key) == 1 else key[0].upper() + key[1:])
    return "+".join(parts)


def _kde_paths() -> tuple[Path, Path]:
    return (
        xdg_dir("data") / "applications" / KDE_DESKTOP_FILE,
        xdg_dir("config") / "kglobalshortcutsrc",
    )


def _kde_writer() -> str | None:
    return next((tool for tool in KDE_WRITERS if shutil.which(tool)), None)


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _edit_shortcuts(path: Path, accelerator: str | None) -> None:
    """Set (or with None remove) our section in kglobalshortcutsrc, keeping everything else.

    Used only when KDE's own kwriteconfig is not installed (a file prepared ahead of a
    first KDE login): keys keep their case and order, our section is the only change.
    """
    config = configparser.ConfigParser(interpolation=None, delimiters=("=",), strict=False)
    config.optionxform = str  # type: ignore[assignment,method-assign]  # KDE keys are case-sensitive
    try:
        config.read(path, encoding="utf-8")
    except configparser.Error as exc:
        raise KeybindingError(f"cannot read {path}: {exc}") from exc
    if accelerator is None:
        config.remove_section(KDE_SECTION)
    else:
        config[KDE_SECTION] = {KDE_KEY: accelerator}
    lines = []
    for section in config.sections():
        lines.append(f"[{section}]")
        lines += [f"{key}={value}" for key, value in config[section].items()]
        lines.append("")
    _write_atomically(path, "\n".join(lines))


def _set_shortcut(accelerator: str | None, dry_run: bool) -> list[str]:
    """Write (or with None delete) our _launch key, through kwriteconfig when KDE has it."""
    shortcuts = _kde_paths()[1]
    tool = _kde_writer()
    if tool is not None:
        groups = [arg for group in KDE_GROUPS for arg in ("--group", group)]
        value = ["--delete"] if accelerator is None else [accelerator]
        command = [tool, "--file", str(shortcuts), *groups, "--key", KDE_KEY, *value]
        return _apply([command], dry_run)
    if dry_run:
        if accelerator is None:
            return [f"remove [{KDE_SECTION}] from {shortcuts}"]
        return [f"set [{KDE_SECTION}] {KDE_KEY}={accelerator} in {shortcuts}"]
    if accelerator is not None or shortcuts.exists():
        _edit_shortcuts(shortcuts, accelerator)
    return []


def bind_kde(
    accelerator: str, *, dry_run: bool = False, command: str = TOGGLE_COMMAND
) -> list[str]:
    """Install a hidden .desktop launcher and register its global shortcut for kglobalaccel."""
    accelerator = kde_accelerator(accelerator)
    desktop, shortcuts = _kde_paths()
    entry = (
        f"[Desktop Entry]\nType=Application\nName={SHORTCUT_NAME}\n"
        f"Exec={command}\nNoDisplay=true\nX-KDE-Shortcuts={accelerator}\n"
    )
    if dry_run:
        return [f"write {desktop}:", *entry.splitlines(), *_set_shortcut(accelerator, True)]
    _write_atomically(desktop, entry)
    _set_shortcut(accelerator, dry_run=False)
    return [
        f"KDE: {accelerator} runs: {command}",
        f"wrote {desktop} and [{KDE_SECTION}] {KDE_KEY} in {shortcuts}",
        "kglobalaccel reads its shortcuts when the session starts: log out and in to use it",
        "undo with: v2mctl bind kde --remove",
    ]


def unbind_kde(*, dry_run: bool = False) -> list[str]:
    """Remove the launcher and our kglobalshortcutsrc keys; other shortcuts stay."""
    desktop = _kde_paths()[0]
    if dry_run:
        return [f"remove {desktop}", *_set_shortcut(None, dry_run=True)]
    desktop.unlink(missing_ok=True)
    _set_shortcut(None, dry_run=False)
    return ["KDE: the v2m shortcut is removed (kglobalaccel forgets it at the next login)"]
