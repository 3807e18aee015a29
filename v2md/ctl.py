"""``v2mctl``: a thin command-line client over the org.v2m.Dictation bus API.

Everything it does, ``busctl --user call`` can do too; it only makes the
common calls short and prints live updates readably. Calling any method
starts v2md through D-Bus activation when it is installed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TextIO

from dbus_fast import BusType, DBusError, Variant
from dbus_fast.aio import MessageBus

from v2md import INTERFACE, help_text
from v2md.client import Proxy, contract_properties, dictation_proxy


async def listen(iface: Proxy, props: Proxy, *, until_final: bool) -> str:
    """Print TranscriptionUpdated and property changes; return the first final text if asked."""
    final: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    def on_text(text: str, is_final: bool) -> None:
        print(f"{'final' if is_final else 'live '}: {text}", flush=True)
        if is_final and not final.done():
            final.set_result(text)

    def on_error(name: str, message: str) -> None:
        print(f"error: {name}: {message}", flush=True)

    def on_props(interface: str, changed: dict[str, Variant], _invalidated: list[str]) -> None:
        if interface == INTERFACE:
            for name, variant in changed.items():
                print(f"{name} = {variant.value}", flush=True)

    iface.on_transcription_updated(on_text)
    iface.on_error(on_error)
    props.on_properties_changed(on_props)
    if until_final:
        return await final
    await asyncio.Event().wait()
    return ""


async def transcribe(iface: Proxy, path: str, terminal: TextIO | None) -> str:
    """TranscribeFile, with a progress bar on ``terminal`` while it runs, if one is given.

    It waits as long as the decoding takes: dbus-fast's calls have no reply timeout."""
    # A daemon started before an upgrade may not have FileProgress yet: no bar then.
    if terminal is None or not hasattr(iface, "on_file_progress"):
        return str(await iface.call_transcribe_file(path))
    bar = ProgressBar(terminal)

    def on_progress(of: str, fraction: float) -> None:
        if of == path:  # not another client's file
            bar.draw(fraction)

    iface.on_file_progress(on_progress)
    try:
        return str(await iface.call_transcribe_file(path))
    finally:
        iface.off_file_progress(on_progress)
        bar.clear()


async def pull_model(iface: Proxy, props: Proxy, name: str, terminal: TextIO | None) -> str:
    """PullModel, with ModelProgress drawn as a bar on ``terminal`` while it runs, if one
    is given; returns the model's directory."""
    if terminal is None:
        return str(await iface.call_pull_model(name))
    bar = ProgressBar(terminal)

    def on_props(interface: str, changed: dict[str, Variant], _invalidated: list[str]) -> None:
        if interface == INTERFACE and "ModelProgress" in changed:
            bar.draw(changed["ModelProgress"].value)

    props.on_properties_changed(on_props)
    try:
        return str(await iface.call_pull_model(name))
    finally:
        props.off_properties_changed(on_props)
        bar.clear()


def model_lines(models: list[tuple[str, str, int, bool, bool]]) -> list[str]:
    """One model a line: name, size, languages, and whether it is bundled or downloaded."""
    width = max((len(name) for name, *_ in models), default=0)
    return [
        f"{name:<{width}}  {size / 1e6:6.0f} MB  "
        f"{'multilingual' if multilingual else 'English only':<12}  "
        f"{'bundled' if bundled else 'cached: ' + path}"
        for name, path, size, multilingual, bundled in models
    ]


def history_lines(entries: list[tuple[int, str, str]]) -> list[str]:
    """One dictation a line, its time and its text (refined where it was); a line saying
    there is none rather than nothing at all."""
    if not entries:
        return ["no dictations in the history yet"]
    return [
        f"{datetime.fromtimestamp(stamp / 1000).isoformat(' ', 'seconds')}  {refined or raw}"
        for stamp, raw, refined in entries
    ]


class ProgressBar:
    """One line on a terminal, redrawn in place, and wiped at the end."""

    def __init__(self, terminal: TextIO) -> None:
        self._terminal = terminal
        self._line = ""

    def draw(self, fraction: float) -> None:
        line = bar_line(fraction, _columns(self._terminal))
        if line != self._line:
            self._terminal.write("\r" + line)
            self._terminal.flush()
            self._line = line

    def clear(self) -> None:
        if self._line:
            self._terminal.write("\r" + " " * len(self._line) + "\r")
            self._terminal.flush()
            self._line = ""


def bar_line(fraction: float, columns: int) -> str:
    """``[########------------]  40%``: at most 40 marks, one column short of ``columns``
    (a line that fills the last column wraps on some terminals)."""
    fraction = min(max(fraction, 0.0), 1.0)
    width = max(10, min(40, columns - 8))
    filled = round(fraction * width)
    return f"[{'#' * filled}{'-' * (width - filled)}] {fraction:4.0%}"


def _bar_terminal() -> TextIO | None:
    """Where progress bars go: stderr when it is a terminal (stdout carries the result)."""
    return sys.stderr if sys.stderr.isatty() else None


def _columns(terminal: TextIO) -> int:
    """The terminal's width; 80 where it does not say (a new pseudo-terminal says 0)."""
    try:
        return os.get_terminal_size(terminal.fileno()).columns or 80
    except (OSError, ValueError):
        return 80


async def _run(args: argparse.Namespace) -> int:
    if args.command == "bind":
        return _bind(args)
    bus = await MessageBus(bus_type=BusType.SESSION).connect()
    try:
        iface, props = await dictation_proxy(bus)
        match args.command:
            case "start":
                await iface.call_start()
            case "stop":
                print(await iface.call_stop())
            case "toggle":
                print(await iface.call_toggle())
            case "cancel":
                await iface.call_cancel()
            case "status":
                values = await props.call_get_all(INTERFACE)
                for name in contract_properties():
                    print(f"{name}: {values[name].value}")
            case "listen":
                await listen(iface, props, until_final=args.until_final)
            case "refine":
                print(await iface.call_refine(args.text))
            case "translate":
                print(await iface.call_translate(args.text, args.language))
            case "transcribe":
                path = str(Path(args.file).resolve())
                print(await transcribe(iface, path, _bar_terminal()))
            case "devices":
                print_devices(await iface.call_list_devices())
            case "model":
                await _model(iface, props, args)
            case "words":
                await _words(iface, args)
            case "history":
                if args.clear:
                    print(f"removed {await iface.call_clear_history()} entries")
                else:
                    print("\n".join(history_lines(await iface.call_get_history(args.limit))))
        return 0
    finally:
        bus.disconnect()


async def _model(iface: Proxy, props: Proxy, args: argparse.Namespace) -> None:
    match args.model_command:
        case "list":
            for line in model_lines(await iface.call_list_models()):
                print(line)
        case "pull":
            print(await pull_model(iface, props, args.name, _bar_terminal()))
        case "rm":
            freed = await iface.call_remove_model(args.name)
            print(f"removed {args.name} ({freed / 1e6:.0f} MB)")


async def _words(iface: Proxy, args: argparse.Namespace) -> None:
    match args.words_command:
        case "list":
            for word in await iface.call_list_words():
                print(word)
            for heard, written in await iface.call_list_replacements():
                print(f"{heard} -> {written}")
        case "add":
            await iface.call_add_word(args.word)
        case "rm":
            await iface.call_remove_word(args.word)
        case "replace":
            await iface.call_set_replacement(args.heard, args.written)
        case "unreplace":
            await iface.call_remove_replacement(args.heard)


def print_devices(names: list[str]) -> None:
    """One name a line on stdout, for scripts; stderr is left to errors, such as finding none
    (that none was opened to check it is said by ``v2mctl devices --help``)."""
    if names:
        print("\n".join(names))
    else:
        print("v2mctl: no capture devices found", file=sys.stderr)


def _bind(args: argparse.Namespace) -> int:
    from v2md.desktop import keybindings

    actions: dict[tuple[str, bool], Callable[..., list[str]]] = {
        ("gnome", False): keybindings.bind_gnome,
        ("kde", False): keybindings.bind_kde,
        ("gnome", True): keybindings.unbind_gnome,
        ("kde", True): keybindings.unbind_kde,
    }
    action = actions[(args.desktop, args.remove)]
    kwargs = {"dry_run": args.dry_run}
    try:
        lines = action(**kwargs) if args.remove else action(args.accelerator, **kwargs)
    except keybindings.KeybindingError as exc:
        print(f"v2mctl: {exc}", file=sys.stderr)
        return 1
    print("\n".join(lines))
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="v2mctl", description=help_text(__doc__))
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in [
        ("start", "start recording"),
        ("stop", "stop recording and print the final text"),
        ("toggle", "start or stop; prints the new state"),
        ("cancel", "drop the current recording"),
        ("status", "print the daemon's properties"),
        ("devices", "list capture device names (not opened to check them)"),
    ]:
        sub.add_parser(name, help=text)
    sub.choices["devices"].description = (
        "List the capture device names [audio] device takes, without opening them to check "
        "them: 'v2mctl start' says whether the configured one opens, and if not, why."
    )
    listen_p = sub.add_parser("listen", help="print live text and state changes")
    listen_p.add_argument("--until-final", action="store_true", help="exit after the final text")
    sub.add_parser("refine", help="clean up text with the LLM").add_argument("text")
    translate = sub.add_parser("translate", help="translate text with the LLM")
    translate.add_argument("text")
    translate.add_argument("language", help="ISO 639-1 code, e.g. de")
    sub.add_parser("transcribe", help="transcribe an audio file").add_argument("file")
    history = sub.add_parser("history", help="print recent dictations, newest first")
    history.add_argument("limit", type=_count, nargs="?", default=20)
    history.add_argument("--clear", action="store_true", help="delete the history first")
    model = sub.add_parser("model", help="list, download or remove Whisper models")
    model_sub = model.add_subparsers(dest="model_command", required=True)
    model_sub.add_parser("list", help="print the models that load offline: bundled and cached")
    model_sub.add_parser("pull", help="download a model into the cache").add_argument(
        "name", help="a faster-whisper model name (base, small, ...) or a repository id"
    )
    model_sub.add_parser("rm", help="remove a model from the cache").add_argument("name")
    words = sub.add_parser("words", help="the personal vocabulary: words and replacements")
    words_sub = words.add_subparsers(dest="words_command", required=True)
    words_sub.add_parser("list", help="print the words, then the replacements (heard -> written)")
    words_sub.add_parser("add", help="add a name or term to recognise").add_argument("word")
    words_sub.add_parser("rm", help="remove a word").add_argument("word")
    replace = words_sub.add_parser("replace", help="write WRITTEN wherever HEARD is decoded")
    replace.add_argument("heard")
    replace.add_argument("written")
    words_sub.add_parser("unreplace", help="remove a replacement").add_argument("heard")
    bind = sub.add_parser("bind", help="bind a desktop shortcut to Toggle")
    bind.add_argument("desktop", choices=["gnome", "kde"])
    bind.add_argument("accelerator", nargs="?", default="<Super>v")
    bind.add_argument("--remove", action="store_true", help="remove the shortcut instead")
    bind.add_argument("--dry-run", action="store_true", help="only show what would be done")
    return parser


def _count(text: str) -> int:
    """A number of entries: 0 or more (0 means all)."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a count of entries (0 or more)")
    return value


# What the bus daemon answers when nobody owns the name and it cannot start v2md either
# (no activation file installed: v2md has never been installed, or not on this bus).
_NOT_RUNNING = frozenset(
    {"org.freedesktop.DBus.Error.ServiceUnknown", "org.freedesktop.DBus.Error.NameHasNoOwner"}
)
_HOW_TO_START = (
    "v2md is not running on this session bus, and D-Bus cannot start it (not installed): "
    "start it with `systemctl --user start v2md` once installed (see the README's "
    "'Install for real use'), or run it by hand in another terminal: `python3 -m v2md.daemon`"
)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return asyncio.run(_run(args))
    except DBusError as exc:
        if exc.type in _NOT_RUNNING:
            print(f"v2mctl: {_HOW_TO_START}", file=sys.stderr)
        else:
            print(f"v2mctl: {exc.type}: {exc.text}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as exc:
        if isinstance(exc, BrokenPipeError):
            # `v2mctl status | head -1`: the reader left; say nothing more to it.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 141
        # No session bus (DBUS_SESSION_BUS_ADDRESS unset, or its socket gone).
        print(f"v2mctl: cannot reach the session bus: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
