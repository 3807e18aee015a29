"""The parts the workflow drives, and the one road their events take.

Each part is a Protocol, so that the daemon's real parts (built in ``daemon.py``) and
the tests' fakes are held to the same shape by the type checker; ``Features`` bundles
them for ``workflow.RecordingWorkflow``. ``Events`` is where every part reports what
the user should hear of, and the bus service listens.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from pathlib import Path

    import numpy as np

    from v2md.asr.downloads import LocalModel
    from v2md.asr.types import ModelState
    from v2md.errors import V2MError
    from v2md.session import SessionEvents
    from v2md.text import TextRules
    from v2md.workflow import State


class Listener(Protocol):
    """What the daemon's parts report (through ``Events``); the bus layer turns these into
    properties and signals. A class that names Listener as its base hears nothing but the
    events it overrides."""

    def state_changed(self, state: State) -> None:
        return None

    def speech_active_changed(self, active: bool) -> None:
        return None

    def transcription_updated(self, text: str, final: bool) -> None:
        return None

    def last_text_changed(self, text: str) -> None:
        return None

    def error(self, error: V2MError) -> None:
        return None

    def model_changed(self, state: ModelState, detail: str) -> None:
        return None

    def model_progress(self, fraction: float) -> None:
        return None

    def language_detected(self, code: str) -> None:
        return None

    def delivery_path_changed(self, path: str) -> None:
        return None


class Events(Listener):
    """The one road from the daemon's parts to their audience. The workflow, the worker
    (model state, download progress, the language heard, a speech server's failure) and the
    delivery report here; the listeners attached (the bus service, systemd's status line)
    hear it in the order they were attached. Before any is attached, events go unheard."""

    def __init__(self) -> None:
        self._listeners: list[Listener] = []

    def attach(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def state_changed(self, state: State) -> None:
        for listener in self._listeners:
            listener.state_changed(state)

    def speech_active_changed(self, active: bool) -> None:
        for listener in self._listeners:
            listener.speech_active_changed(active)

    def transcription_updated(self, text: str, final: bool) -> None:
        for listener in self._listeners:
            listener.transcription_updated(text, final)

    def last_text_changed(self, text: str) -> None:
        for listener in self._listeners:
            listener.last_text_changed(text)

    def error(self, error: V2MError) -> None:
        for listener in self._listeners:
            listener.error(error)

    def model_changed(self, state: ModelState, detail: str) -> None:
        for listener in self._listeners:
            listener.model_changed(state, detail)

    def model_progress(self, fraction: float) -> None:
        for listener in self._listeners:
            listener.model_progress(fraction)

    def language_detected(self, code: str) -> None:
        for listener in self._listeners:
            listener.language_detected(code)

    def delivery_path_changed(self, path: str) -> None:
        for listener in self._listeners:
            listener.delivery_path_changed(path)


class Session(Protocol):
    """One recording, from open source to final text (``session.LiveSession``)."""

    @property
    def device_name(self) -> str: ...
    @property
    def speech_active(self) -> bool: ...
    @property
    def duration_s(self) -> float: ...
    async def start(self) -> None: ...
    async def finish(self) -> str: ...
    async def cancel(self) -> None: ...
    async def keep_audio(self, reason: str) -> str: ...
    def discard_capture(self) -> None: ...
    @property
    def settled_text(self) -> str: ...


class Worker(Protocol):
    """Speech to text, local (``worker.WhisperWorker``) or through a speech server
    (``remote.RemoteWorker``): what the workflow and the daemon use of either."""

    @property
    def model_name(self) -> str: ...
    @property
    def state(self) -> ModelState: ...
    @property
    def language(self) -> str: ...
    @language.setter
    def language(self, code: str) -> None: ...

    async def load(self) -> None: ...
    async def close(self) -> None: ...
    def dictating(self) -> Callable[[], None]: ...
    async def transcribe_speech(self, audio: np.ndarray, *, in_speech: bool = False) -> str: ...
    async def transcribe_file(
        self, path: str | Path, on_progress: Callable[[float], None] | None = None
    ) -> str: ...
    async def pull_model(self, name: str) -> str: ...
    async def list_models(self) -> list[LocalModel]: ...
    async def remove_model(self, name: str) -> int: ...


class TextService(Protocol):
    """Refine and Translate (``llm.LLMService``)."""

    async def refine(self, text: str) -> str: ...
    async def translate(self, text: str, target_language: str) -> str: ...
    async def close(self) -> None: ...


class Archive(Protocol):
    """Where final texts are kept, and read back (``history.History``)."""

    def add(
        self, text: str, *, duration_s: float, model: str, language: str, recovered: bool = False
    ) -> int: ...
    def set_refined(self, entry: int, refined: str) -> None: ...
    def recent(self, limit: int) -> list[tuple[int, str, str]]: ...
    def clear(self) -> int: ...
    def close(self) -> None: ...


class Deliverer(Protocol):
    """Puts text into the focused app (``delivery.Delivery``)."""

    async def deliver(self, text: str) -> None: ...


class Notices(Protocol):
    """Desktop notifications (``notifications.Notifier``)."""

    async def notify(self, summary: str, body: str) -> None: ...
    async def alert(self, summary: str, body: str) -> None: ...


@dataclass
class Features:
    """The parts the workflow drives; built by the daemon, replaced by fakes in unit tests."""

    worker: Worker
    open_session: Callable[[SessionEvents], Session]
    llm: TextService | None = None
    history: Archive | None = None
    delivery: Deliverer | None = None
    notifier: Notices | None = None
    text: TextRules | None = None  # spoken commands; None leaves the decoded text as it is
    list_devices: Callable[[], list[str]] | None = None  # the capture devices, by name
