"""The D-Bus face of the daemon: ``org.v2m.Dictation`` at ``/org/v2m/Dictation``.

A thin layer: each method validates nothing itself and calls the workflow, and
nothing else; each event of the daemon's parts (``parts.Events``) becomes a
property change or a signal. The one place where
the errors of ``errors.py`` become D-Bus error names is ``_bus_errors``.
``v2md/data/org.v2m.Dictation.xml`` is the contract; a test compares it with what
this class introspects as.
"""

import asyncio
import functools
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, ParamSpec, TypeVar

from dbus_fast import DBusError, PropertyAccess
from dbus_fast.annotations import (
    DBusBool,
    DBusDouble,
    DBusSignature,
    DBusStr,
    DBusUInt32,
    DBusUInt64,
)
from dbus_fast.introspection import Arg
from dbus_fast.introspection import Interface as Introspection
from dbus_fast.service import ServiceInterface, dbus_property, method, signal

from v2md import INTERFACE, __version__
from v2md.client import contract_interface
from v2md.errors import ERROR_PREFIX, V2MError

if TYPE_CHECKING:
    from v2md.asr.types import ModelState as ModelLife  # the name ModelState is the property's
    from v2md.workflow import RecordingWorkflow
    from v2md.workflow import State as DictationState  # the name State is the property's

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

HistoryRows = Annotated[list[tuple[int, str, str]], DBusSignature("a(xss)")]
StrList = Annotated[list[str], DBusSignature("as")]
TextAndFinal = Annotated[tuple[str, bool], DBusSignature("sb")]
NameAndMessage = Annotated[tuple[str, str], DBusSignature("ss")]
PathAndFraction = Annotated[tuple[str, float], DBusSignature("sd")]
Replacements = Annotated[list[tuple[str, str]], DBusSignature("a(ss)")]
ModelRows = Annotated[list[tuple[str, str, int, bool, bool]], DBusSignature("a(sstbb)")]

# FileProgress at most this often per TranscribeFile call: a bar moves smoothly at four
# updates a second, and a fast decoder does not flood the bus with one per segment.
FILE_PROGRESS_INTERVAL_S = 0.25
# ModelProgress changes at most this often, for the same reasons.
MODEL_PROGRESS_INTERVAL_S = 0.25


def _to_dbus(exc: V2MError) -> DBusError:
    return DBusError(exc.dbus_name, exc.message)


def _bus_errors(fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Turn the daemon's named errors into D-Bus errors; log anything unexpected."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await fn(*args, **kwargs)
        except V2MError as exc:
            log.info("%s failed: %s: %s", fn.__name__, exc.name, exc.message)
            raise _to_dbus(exc) from None
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s failed unexpectedly", fn.__name__)
            raise DBusError(ERROR_PREFIX + "Failed", f"{fn.__name__}: internal error") from None

    return wrapper


class Throttle:
    """Passes values on at most once per ``interval_s``: a value at once when the last
    went out long enough ago, otherwise the latest of those held back once the interval
    is over, so that the newest value always gets through."""

    def __init__(
        self,
        emit: Callable[[float], None],
        interval_s: float,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._emit = emit
        self._interval_s = interval_s
        self._clock = clock
        self._last_sent = -math.inf
        self._held: float | None = None  # the value waiting for the interval to end
        self._timer: asyncio.TimerHandle | None = None

    def __call__(self, value: float) -> None:
        self._held = value
        wait = self._last_sent + self._interval_s - self._clock()
        if wait <= 0:
            self.flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(wait, self.flush)

    def flush(self) -> None:
        """Pass on the value held back, if any, now."""
        self.close()
        if self._held is not None:
            value, self._held = self._held, None
            self._last_sent = self._clock()
            self._emit(value)

    def close(self) -> None:
        """Stop the timer of a held value (that value stays held until ``flush``)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


def _name_args(args: list[Arg], named: list[Arg]) -> None:
    if [a.signature for a in args] == [a.signature for a in named]:
        for arg, contract in zip(args, named, strict=True):
            arg.name = contract.name


class DictationService(ServiceInterface):
    """Serves the workflow on the bus and relays its events as signals.

    Member names are CamelCase because they are the D-Bus names of the contract.
    """

    def __init__(self, workflow: "RecordingWorkflow") -> None:
        super().__init__(INTERFACE)
        self._wf = workflow
        self._model_progress = 0.0
        self._detected_language = ""
        self._delivery_path = ""
        self._announce_model_progress = Throttle(
            lambda fraction: self.emit_properties_changed({"ModelProgress": fraction}),
            MODEL_PROGRESS_INTERVAL_S,
        )

    def introspect(self) -> Introspection:
        """dbus-fast's introspection, its out-arguments and signal arguments named as the
        contract names them (dbus-fast names only in-arguments, after the parameters):
        ``busctl introspect`` and d-feet show what a reply's values mean. Names are taken
        only where the member's arguments have the contract's types, in its order."""
        live = super().introspect()
        contract = contract_interface()
        methods = {m.name: m.out_args for m in contract.methods}
        signals = {s.name: s.args for s in contract.signals}
        for m in live.methods:
            _name_args(m.out_args, methods.get(m.name, []))
        for s in live.signals:
            _name_args(s.args, signals.get(s.name, []))
        return live

    # ---- methods ------------------------------------------------------------------------

    @method()
    @_bus_errors
    async def Start(self) -> None:
        await self._wf.start()

    @method()
    @_bus_errors
    async def Stop(self) -> DBusStr:
        return await self._wf.stop()

    @method()
    @_bus_errors
    async def Toggle(self) -> DBusStr:
        return str(await self._wf.toggle())

    @method()
    @_bus_errors
    async def Cancel(self) -> None:
        await self._wf.cancel()

    @method()
    @_bus_errors
    async def TranscribeFile(self, path: DBusStr) -> DBusStr:
        progress = Throttle(functools.partial(self.FileProgress, path), FILE_PROGRESS_INTERVAL_S)
        try:
            text = await self._wf.transcribe_file(path, progress)
        finally:
            progress.close()
        progress.flush()  # the final 1 goes out before the reply
        return text

    @method()
    @_bus_errors
    async def Refine(self, text: DBusStr) -> DBusStr:
        return await self._wf.refine(text)

    @method()
    @_bus_errors
    async def Translate(self, text: DBusStr, target_language: DBusStr) -> DBusStr:
        return await self._wf.translate(text, target_language)

    @method()
    @_bus_errors
    async def GetHistory(self, limit: DBusUInt32) -> HistoryRows:
        return await self._wf.history(limit or 2**31 - 1)

    @method()
    @_bus_errors
    async def ClearHistory(self) -> DBusUInt32:
        return await self._wf.clear_history()

    @method()
    @_bus_errors
    async def ListDevices(self) -> StrList:
        return await self._wf.list_devices()

    @method()
    @_bus_errors
    async def PullModel(self, name: DBusStr) -> DBusStr:
        path = await self._wf.pull_model(name)
        self._announce_model_progress.flush()  # the final 1 goes out before the reply
        return path

    @method()
    @_bus_errors
    async def ListModels(self) -> ModelRows:
        return [
            (m.name, str(m.path), m.size, m.multilingual, m.bundled)
            for m in await self._wf.list_models()
        ]

    @method()
    @_bus_errors
    async def RemoveModel(self, name: DBusStr) -> DBusUInt64:
        return await self._wf.remove_model(name)

    @method()
    @_bus_errors
    async def AddWord(self, word: DBusStr) -> None:
        self._wf.vocabulary.add_word(word)

    @method()
    @_bus_errors
    async def RemoveWord(self, word: DBusStr) -> None:
        self._wf.vocabulary.remove_word(word)

    @method()
    @_bus_errors
    async def ListWords(self) -> StrList:
        return self._wf.vocabulary.words

    @method()
    @_bus_errors
    async def SetReplacement(self, heard: DBusStr, written: DBusStr) -> None:
        self._wf.vocabulary.set_replacement(heard, written)

    @method()
    @_bus_errors
    async def RemoveReplacement(self, heard: DBusStr) -> None:
        self._wf.vocabulary.remove_replacement(heard)

    @method()
    @_bus_errors
    async def ListReplacements(self) -> Replacements:
        return self._wf.vocabulary.replacements

    # ---- signals -------------------------------------------------------------------------

    @signal()
    def TranscriptionUpdated(self, text: str, final: bool) -> TextAndFinal:
        return (text, final)

    @signal()
    def Error(self, name: str, message: str) -> NameAndMessage:
        return (name, message)

    @signal()
    def FileProgress(self, path: str, fraction: float) -> PathAndFraction:
        return (path, fraction)

    # ---- properties ----------------------------------------------------------------------

    @dbus_property(access=PropertyAccess.READ)
    def State(self) -> DBusStr:
        return str(self._wf.state)

    @dbus_property(access=PropertyAccess.READ)
    def ModelState(self) -> DBusStr:
        return str(self._wf.model_state)

    @dbus_property(access=PropertyAccess.READ)
    def Model(self) -> DBusStr:
        return self._wf.model_name

    @dbus_property(access=PropertyAccess.READ)
    def ModelProgress(self) -> DBusDouble:
        return self._model_progress

    @dbus_property()
    def Language(self) -> DBusStr:
        return self._wf.language

    @Language.setter  # type: ignore[no-redef]  # dbus-fast's property, which mypy does not know
    def Language(self, code: DBusStr) -> None:
        try:
            self._wf.language = code
        except V2MError as exc:
            raise _to_dbus(exc) from None
        self.emit_properties_changed({"Language": self._wf.language})

    @dbus_property(access=PropertyAccess.READ)
    def DetectedLanguage(self) -> DBusStr:
        return self._detected_language

    @dbus_property(access=PropertyAccess.READ)
    def LastText(self) -> DBusStr:
        return self._wf.last_text

    @dbus_property(access=PropertyAccess.READ)
    def SpeechActive(self) -> DBusBool:
        return self._wf.speech_active

    @dbus_property(access=PropertyAccess.READ)
    def DeliveryPath(self) -> DBusStr:
        return self._delivery_path

    @dbus_property(access=PropertyAccess.READ)
    def Version(self) -> DBusStr:
        return __version__

    # ---- listener of the daemon's events (workflow.Events) ------------------------------------

    def state_changed(self, state: "DictationState") -> None:
        self.emit_properties_changed({"State": str(state)})

    def speech_active_changed(self, active: bool) -> None:
        self.emit_properties_changed({"SpeechActive": active})

    def transcription_updated(self, text: str, final: bool) -> None:
        self.TranscriptionUpdated(text, final)

    def last_text_changed(self, text: str) -> None:
        self.emit_properties_changed({"LastText": text})

    def error(self, error: V2MError) -> None:
        log.warning("%s: %s", error.name, error.message)
        self.Error(error.dbus_name, error.message)

    def delivery_path_changed(self, path: str) -> None:
        if path != self._delivery_path:
            self._delivery_path = path
            self.emit_properties_changed({"DeliveryPath": path})

    def model_changed(self, state: "ModelLife", detail: str) -> None:
        self.emit_properties_changed({"ModelState": str(state), "Model": self._wf.model_name})

    def language_detected(self, code: str) -> None:
        """The language the latest final decode of a dictation was in."""
        if code != self._detected_language:
            self._detected_language = code
            self.emit_properties_changed({"DetectedLanguage": code})

    def model_progress(self, fraction: float) -> None:
        """How much of a model download has arrived; announced at most four times a second."""
        self._model_progress = fraction
        self._announce_model_progress(fraction)
