"""Desktop shortcuts that run Toggle: a GNOME custom keybinding, or a KDE global shortcut.

Each ``bind_*`` returns the lines to show the user: what was done and how to undo
it; with ``dry_run`` they are the exact commands instead, and nothing is changed.
The shortcut runs ``busctl`` rather than v2mctl, so it works whether or not the
Python entry points are on the session's PATH, and D-Bus activation starts the
daemon on the first press.
"""

from __future__ import annotations

import ast
import configparser
import os
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path

from .config import xdg_dir

TOGGLE_COMMAND = "busctl --user call org.v2m.Dictation /org/v2m/Dictation org.v2m.Dictation Toggle"

GNOME_SCHEMA = "org.gnome.settings-daemon.plugins.media-keys"
GNOME_LIST_KEY = "custom-keybindings"
# A fixed path of our own: binding again replaces it instead of adding a second one.
GNOME_PATH = "/org/gnome/settings-daemon/plugins/media-keys/custom-keybindings/v2m/"
GNOME_ENTRY = f"{GNOME_SCHEMA}.custom-keybinding:{GNOME_PATH}"

KDE_DESKTOP_FILE = "v2m-toggle.desktop"
KDE_SECTION = f"services][{KDE_DESKTOP_FILE}"  # written as [services][v2m-toggle.desktop]


class KeybindingError(RuntimeError):
    """The desktop's settings could not be read or written; the message says why."""


# ---- GNOME --------------------------------------------------------------------------------


def _gsettings(*args: str) -> str:
    if shutil.which("gsettings") is None:
        raise KeybindingError("gsettings is not installed (package libglib2.0-bin / glib2)")
    proc = subprocess.run(["gsettings", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise KeybindingError(f"gsettings {shlex.join(args)}: {proc.stderr.strip()}")
    return proc.stdout.strip()


def _gnome_paths() -> list[str]:
    """The user's custom keybinding paths, parsed from gsettings' GVariant text."""
    text = _gsettings("get", GNOME_SCHEMA, GNOME_LIST_KEY).removeprefix("@as ")
    return list(ast.literal_eval(text))


def _apply(commands: list[list[str]], dry_run: bool) -> list[str]:
    if dry_run:
        return [shlex.join(command) for command in commands]
    for command in commands:
        _gsettings(*command[1:])
    return []


def bind_gnome(
    accelerator: str, *, dry_run: bool = False, command: str = TOGGLE_COMMAND
) -> list[str]:
    paths = _gnome_paths()
    if GNOME_PATH not in paths:
        paths.append(GNOME_PATH)
    commands = [
        ["gsettings", "set", GNOME_ENTRY, "name", "v2m: toggle dictation"],
        ["gsettings", "set", GNOME_ENTRY, "command", command],
        ["gsettings", "set", GNOME_ENTRY, "binding", accelerator],
        ["gsettings", "set", GNOME_SCHEMA, GNOME_LIST_KEY, str(paths)],
    ]
    return _apply(commands, dry_run) or [
        f"GNOME: {accelerator} now runs: {command}",
        "undo with: v2mctl bind gnome --remove",
    ]


def unbind_gnome(*, dry_run: bool = False) -> list[str]:
    paths = [p for p in _gnome_paths() if p != GNOME_PATH]
    commands = [["gsettings", "set", GNOME_SCHEMA, GNOME_LIST_KEY, str(paths)]]
    commands += [["gsettings", "reset", GNOME_ENTRY, key] for key in ("name", "command", "binding")]
    return _apply(commands, dry_run) or ["GNOME: the v2m shortcut is removed"]


# ---- KDE ----------------------------------------------------------------------------------


def _kde_paths() -> tuple[Path, Path]:
    return (
        xdg_dir("data") / "applications" / KDE_DESKTOP_FILE,
        xdg_dir("config") / "kglobalshortcutsrc",
    )


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.replace(tmp, path)


def _edit_shortcuts(path: Path, accelerator: str | None) -> None:
    """Set (or with None remove) our entry in kglobalshortcutsrc, keeping everything else."""
    config = configparser.ConfigParser(interpolation=None, delimiters=("=",), strict=False)
    config.optionxform = str  # KDE keys are case-sensitive
    config.read(path, encoding="utf-8")
    if accelerator is None:
        config.remove_section(KDE_SECTION)
    else:
        config[KDE_SECTION] = {"_k_friendly_name": "v2m: toggle dictation", "_launch": accelerator}
    lines = []
    for section in config.sections():
        lines.append(f"[{section}]")
        lines += [f"{key}={value}" for key, value in config[section].items()]
        lines.append("")
    _write_atomically(path, "\n".join(lines))


def bind_kde(
    accelerator: str, *, dry_run: bool = False, command: str = TOGGLE_COMMAND
) -> list[str]:
    desktop, shortcuts = _kde_paths()
    entry = (
        "[Desktop Entry]\nType=Application\nName=v2m: toggle dictation\n"
        f"Exec={command}\nNoDisplay=true\nX-KDE-Shortcuts={accelerator}\n"
    )
    if dry_run:
        return [
            f"write {desktop}:",
            *entry.splitlines(),
            f"set [services][{KDE_DESKTOP_FILE}] _launch={accelerator} in {shortcuts}",
        ]
    _write_atomically(desktop, entry)
    _edit_shortcuts(shortcuts, accelerator)
    return [
        f"KDE: {accelerator} runs: {command}",
        f"wrote {desktop} and the [services][{KDE_DESKTOP_FILE}] entry of {shortcuts}",
        "KDE reads it at the next login (or now: kquitapp6 kglobalaccel, then log out and in)",
        "undo with: v2mctl bind kde --remove",
    ]


def unbind_kde(*, dry_run: bool = False) -> list[str]:
    desktop, shortcuts = _kde_paths()
    if dry_run:
        return [f"remove {desktop}", f"remove [services][{KDE_DESKTOP_FILE}] from {shortcuts}"]
    desktop.unlink(missing_ok=True)
    if shortcuts.exists():
        _edit_shortcuts(shortcuts, None)
    return ["KDE: the v2m shortcut is removed (effective at the next login)"]
