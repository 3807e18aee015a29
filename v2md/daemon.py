"""``v2md``: build the parts, own the bus name, talk to systemd, shut down cleanly.

Start-up order matters: the service is exported before the name is requested
(so the first caller that D-Bus activation lets through finds the object), and
``READY=1`` is sent only once the name is owned. The Whisper model loads in the
background after that, so keybindings work from the first second.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import sdnotify
from dbus_fast import BusType, NameFlag, RequestNameReply
from dbus_fast.aio import MessageBus

from v2md import BUS_NAME, OBJECT_PATH, __version__
from v2md.config import (
    Config,
    ConfigError,
    WhisperConfig,
    default_config_path,
    load_config,
    xdg_dir,
)
from v2md.desktop.delivery import Delivery, uses_ibus
from v2md.desktop.global_shortcuts import Shortcuts
from v2md.desktop.ibus_path import IBusHelper
from v2md.desktop.portal import Portal
from v2md.errors import HistoryError, V2MError
from v2md.logs import log_to_stderr, one_line
from v2md.parts import Events, Features, Listener, Worker
from v2md.service import DictationService
from v2md.workflow import RecordingWorkflow

if TYPE_CHECKING:
    from v2md.asr.types import ModelState
    from v2md.remote.worker import RemoteEngine

log = logging.getLogger("v2md")

# The RemoteDesktop portal's restore token, under $XDG_STATE_HOME/v2m/.
TOKEN_FILE = "remote-desktop.token"


class _Systemd(Listener):
    """sd_notify and the watchdog; silent no-ops when not run by systemd. As a listener of
    the daemon's events it keeps the unit's status line on the model's state."""

    def __init__(self) -> None:
        self._notifier = sdnotify.SystemdNotifier()
        self._watchdog_s = self._watchdog_interval()

    @staticmethod
    def _watchdog_interval() -> float | None:
        usec = os.environ.get("WATCHDOG_USEC")
        pid = os.environ.get("WATCHDOG_PID")
        if not usec or (pid and int(pid) != os.getpid()):
            return None
        return int(usec) / 1e6

    def notify(self, *lines: str) -> None:
        if os.environ.get("NOTIFY_SOCKET"):
            self._notifier.notify("\n".join(lines))

    def start_watchdog(self, loop: asyncio.AbstractEventLoop) -> None:
        """Ping from the event loop itself: a loop that stops turning stops the pings."""
        if self._watchdog_s is None:
            return
        interval = self._watchdog_s / 2

        def ping() -> None:
            self.notify("WATCHDOG=1")
            loop.call_later(interval, ping)

        ping()

    def model_changed(self, state: ModelState, detail: str) -> None:
        # One line: each line of a notification is an assignment of its own, and the detail
        # may be an error's text (a newline and STOPPING=1 in it would stop the unit).
        detail = one_line(detail)
        self.notify(f"STATUS=model {state}: {detail}" if detail else f"STATUS=model {state}")


def _build_features(
    cfg: Config, bus: MessageBus, portal: Portal, ibus: IBusHelper | None, events: Events
) -> Features:
    # Imported here so that `v2md --help` and config errors answer without loading ML libraries.
    from v2md.asr.finalpass import FinalPass
    from v2md.asr.models import whole_words
    from v2md.asr.streaming import PausesOnly, ProvisionalText
    from v2md.asr.vad import SileroVAD
    from v2md.asr.worker import WhisperWorker
    from v2md.audio import capture as audio
    from v2md.audio.format import SAMPLE_RATE
    from v2md.audio.journal import CaptureFile
    from v2md.audio.recordings import state_dir
    from v2md.desktop.notifications import Notifier
    from v2md.desktop.portal import RemoteKeyboard, TokenFile
    from v2md.history import History
    from v2md.llm import LLMService
    from v2md.remote.worker import RemoteWorker
    from v2md.session import LiveSession, SessionEvents
    from v2md.text import TextRules
    from v2md.text.nearmiss import Lexicon
    from v2md.text.vocabulary import FILE_NAME, Vocabulary

    # The local model makes live text, and the final text unless a server does (remote.py).
    remote = cfg.whisper.engine != "local"
    vocabulary = Vocabulary(xdg_dir("data") / "v2m" / FILE_NAME)
    text = TextRules(cfg.commands, cfg.path.parent, vocabulary, Lexicon.of(whole_words()))

    local: WhisperWorker | None = None
    if not cfg.whisper.remote_only:
        # With a server making the final text, the local model is its safety net: no second
        # model is held for final text the server makes (final_model is for local text).
        local_cfg = cfg.whisper.model_copy(update={"final_model": ""}) if remote else cfg.whisper
        local = WhisperWorker(
            local_cfg,
            on_state=None if remote else events.model_changed,
            on_download=events.model_progress,
            on_language=events.language_detected,
            bias=text.prompt,
        )
    worker: Worker
    if remote:
        worker = RemoteWorker(
            _remote_engine(cfg.whisper, text.prompt),
            local,
            cfg.whisper,
            on_state=events.model_changed,
            # A speech server failed and the local model's text was used: clients hear why.
            on_error=events.error,
        )
    else:
        assert local is not None  # remote_only needs a speech server (config.py)
        worker = local
        if local.english_only:
            # All it hears is English: with Language auto, commands and their prompt apply
            # from the first decode (a file's too), not only once a dictation reported it.
            text.language_heard("en")
    try:
        history = History(xdg_dir("data") / "v2m" / "history.sqlite3", cfg.history.max_entries)
    except HistoryError as exc:
        # Dictation still works; the texts go to the caller and the focused app only.
        log.error("%s: running without a history", exc)
        history = None

    def open_session(events: SessionEvents) -> LiveSession:
        return LiveSession(
            cfg,
            audio.open_source(cfg.audio),
            ProvisionalText(local, cfg.whisper) if local is not None else PausesOnly(),
            FinalPass(worker),
            SileroVAD(cfg.vad) if cfg.vad.enabled else None,
            events,
            dictating=worker.dictating,
            capture=partial(CaptureFile, SAMPLE_RATE),
        )

    keyboard = RemoteKeyboard(portal, TokenFile(state_dir() / TOKEN_FILE))
    return Features(
        worker=worker,
        open_session=open_session,
        llm=LLMService(cfg.llm, cfg.path, glossary=lambda: vocabulary.words),
        history=history,
        delivery=Delivery(
            cfg.output, keyboard=keyboard, ibus=ibus, on_path=events.delivery_path_changed
        ),
        notifier=Notifier(bus, cfg.notifications),
        text=text,
        list_devices=partial(audio.list_input_devices, cfg.audio.backend),
    )


def _remote_engine(cfg: WhisperConfig, bias: Callable[[str], str]) -> RemoteEngine:
    """The client of the speech server ``[whisper] engine`` names; ``bias`` gives the words
    for the prompt of a server that takes one (Wyoming's Transcribe has no such field)."""
    if cfg.engine == "wyoming":
        from v2md.remote.wyoming_protocol import WyomingEngine

        return WyomingEngine(cfg)
    from v2md.remote.openai_compatible import OpenAIEngine

    return OpenAIEngine(cfg, bias)


async def run(cfg: Config) -> int:
    from v2md.audio import capture as audio

    systemd = _Systemd()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    removed = audio.cleanup_stale_segments()
    if removed:
        log.info("removed %d shared-memory segments left by dead daemons", removed)

    try:
        bus = await MessageBus(bus_type=BusType.SESSION).connect()
    except (OSError, ValueError) as exc:  # dbus-fast's address errors are ValueErrors
        log.error("cannot connect to the session bus: %s", exc)
        return 1
    portal = Portal(bus)
    # The app id is the basename of the installed org.v2m.Dictation.desktop.
    portal.register(BUS_NAME)
    # The IBus helper follows dictations from their first words, so it starts with v2md.
    ibus = IBusHelper() if uses_ibus(cfg.output) else None
    events = Events()
    events.attach(systemd)
    features = _build_features(cfg, bus, portal, ibus, events)
    workflow = RecordingWorkflow(cfg, features, events)
    service = DictationService(workflow)
    events.attach(service)
    bus.export(OBJECT_PATH, service)

    reply = await bus.request_name(BUS_NAME, NameFlag.DO_NOT_QUEUE)
    if reply not in (RequestNameReply.PRIMARY_OWNER, RequestNameReply.ALREADY_OWNER):
        log.error("%s is already owned by another process (%s); exiting", BUS_NAME, reply.name)
        bus.disconnect()
        return 1
    log.info("v2md %s owns %s", __version__, BUS_NAME)
    systemd.notify("READY=1", "STATUS=ready, loading the model")
    systemd.start_watchdog(loop)

    load = asyncio.create_task(_load_model(features, workflow), name="v2m-model-load")
    ibus_start = None
    if isinstance(features.delivery, Delivery):
        ibus_start = asyncio.create_task(
            _announce_delivery(features.delivery, ibus, events), name="v2m-delivery-path"
        )
    binding = None
    if cfg.shortcuts.enabled:
        # In the background: the first binding waits for the user's answer to a dialog.
        shortcuts = _shortcuts(cfg, portal, workflow)
        binding = asyncio.create_task(shortcuts.bind(), name="v2m-shortcuts")
    disconnected = asyncio.ensure_future(bus.wait_for_disconnect())  # type: ignore[no-untyped-call]
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({disconnected, stopping}, return_when=asyncio.FIRST_COMPLETED)
    if disconnected.done():
        log.error("lost the session bus; exiting")
        return 1

    log.info("stopping")
    systemd.notify("STOPPING=1", "STATUS=stopping")
    load.cancel()
    if binding is not None:
        binding.cancel()
    await workflow.shutdown()
    if ibus_start is not None:
        ibus_start.cancel()
    if ibus is not None:
        await ibus.close()
    await _close(features)  # may still announce ModelState, so before the bus goes
    with contextlib.suppress(Exception):
        await bus.release_name(BUS_NAME)
    bus.disconnect()
    return 0


def _shortcuts(cfg: Config, portal: Portal, workflow: RecordingWorkflow) -> Shortcuts:
    """Toggle and push-to-talk through the GlobalShortcuts portal, driving the workflow; an
    error of a shortcut's action has no caller, so the workflow reports it like its own."""

    async def report(error: V2MError) -> None:
        workflow.report(error)

    return Shortcuts(
        portal,
        cfg.shortcuts,
        start=workflow.start,
        stop=workflow.stop,
        toggle=workflow.toggle,
        report=report,
    )


async def _announce_delivery(delivery: Delivery, ibus: IBusHelper | None, events: Events) -> None:
    """Start the IBus helper, if used, and say which delivery path is in use."""
    if ibus is not None and not await ibus.available():
        log.info("not typing through IBus: %s", ibus.reason)
    try:
        path = await delivery.path()
    except V2MError as exc:  # no graphical session: every delivery will say so
        log.info("no delivery path: %s", exc)
        path = "none"
    log.info("delivery path: %s", path)
    events.delivery_path_changed(path)


async def _load_model(features: Features, workflow: RecordingWorkflow) -> None:
    try:
        await features.worker.load()
    except V2MError as exc:  # Model, or Timeout: a speech server that did not answer
        log.error("model not loaded: %s", exc)
    # Once loaded (or not: then the audio of each is kept as a recording, and said so).
    await workflow.recover()


async def _close(features: Features) -> None:
    await features.worker.close()
    if features.llm is not None:
        await features.llm.close()
    if features.history is not None:
        features.history.close()


def _setup_logging(level: str) -> None:
    # Under systemd the journal stamps time and unit already.
    fmt = "%(levelname)s %(name)s: %(message)s"
    if not os.environ.get("JOURNAL_STREAM"):
        fmt = "%(asctime)s " + fmt
    log_to_stderr(fmt, level.upper())
    # faster-whisper logs every decode at INFO; the worker reports what matters.
    logging.getLogger("faster_whisper").setLevel(logging.WARNING)
    # httpx logs every request: huggingface_hub's model downloads and a speech server's.
    for name in ("httpx", "httpcore", "httpx2", "httpcore2"):
        logging.getLogger(name).setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="v2md", description="v2m dictation daemon")
    parser.add_argument(
        "--config", type=Path, help=f"config file (default: {default_config_path()})"
    )
    parser.add_argument(
        "--log-level",
        default=os.environ.get("V2M_LOG_LEVEL", "info"),
        choices=["debug", "info", "warning", "error"],
    )
    parser.add_argument("--version", action="version", version=f"v2md {__version__}")
    args = parser.parse_args(argv)
    _setup_logging(args.log_level)
    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        print(f"v2md: {exc}", file=sys.stderr)
        return 2
    return asyncio.run(run(cfg))


if __name__ == "__main__":
    sys.exit(main())
