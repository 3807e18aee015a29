"""Final text from a speech server elsewhere, with the local model as the safety net.

A laptop runs tiny.en well and little else; a GPU box on the same network may
already run a bigger model behind a Wyoming server (Home Assistant) or an
OpenAI-compatible one. With ``[whisper] engine`` set to either, live text still
comes from the local model (instant, offline) while the final text of each
utterance, and each piece of a file, comes from the server.

``RemoteWorker`` takes the local worker's place wherever final text is made. When
the server fails or does not answer within ``remote_timeout_s``, the local
model's text is used and ``on_error`` hears which server failed, so nothing is
lost. After a failure the server rests for RETRY_AFTER_S: the utterances in
between go straight to the local model, and one Error is reported, not one per
pause. With ``remote_only`` there is no local model to fall back on; the error
then goes to the caller, and a dictation's audio is kept as a WAV.

``Model`` names the server and its model; ``ModelState`` is the server's: ready
once it answered a describe request (or a transcription), failed after a failure.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from v2md.asr.downloads import LocalModel
from v2md.asr.filedecode import check_audio, decode_file
from v2md.asr.types import ModelState
from v2md.audio.format import SAMPLE_RATE
from v2md.config import WhisperConfig
from v2md.errors import (
    InvalidArgumentError,
    InvalidStateError,
    ModelError,
    OperationTimeoutError,
    V2MError,
)
from v2md.languages import validate_language

if TYPE_CHECKING:  # the local worker is handed in: no need to import faster-whisper here
    from v2md.asr.worker import WhisperWorker

log = logging.getLogger(__name__)

# After a failure, the local model makes the final text for this long before the server
# is asked again: a server that is down costs one timeout and one Error, not one per pause.
RETRY_AFTER_S = 30.0


class RemoteEngine(Protocol):
    """A speech server's client (``remote_wyoming``, ``remote_openai``).

    Failures are ModelErrors whose message names the server; the caller bounds the
    time (``deadline``, in the event loop's clock, says until when)."""

    name: str  # how messages name the server: "Wyoming server tcp://host:10300"

    async def describe(self) -> str:
        """Ask the server what it serves; the model name that will make the text."""
        ...

    async def transcribe(self, audio: np.ndarray, language: str | None, deadline: float) -> str:
        """The text of 16 kHz mono float32 speech."""
        ...

    async def close(self) -> None: ...


def pcm16(audio: np.ndarray) -> bytes:
    """16 kHz mono float32 as the little-endian 16-bit PCM speech servers take."""
    pcm: bytes = (np.clip(audio, -1.0, 1.0) * 32767).astype("<i2").tobytes()
    return pcm


def shown_url(url: str) -> str:
    """A server's URL as messages show it: without a user name or password in it."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


class RemoteWorker:
    """Final text from ``engine``, the local worker's text when it fails (see above).

    Shaped like ``WhisperWorker`` where the workflow, the final pass and the daemon
    use it, so that it takes its place."""

    def __init__(
        self,
        engine: RemoteEngine,
        local: WhisperWorker | None,
        cfg: WhisperConfig,
        *,
        on_state: Callable[[ModelState, str], None] | None = None,
        on_error: Callable[[V2MError], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._engine = engine
        self._local = local
        self._cfg = cfg
        self._on_state = on_state
        self._on_error = on_error
        self._clock = clock
        self._resting_until = -math.inf  # when the server may be asked again after a failure
        self._language = cfg.language
        self._model = cfg.remote_model  # until the server says which it serves
        self.state = ModelState.UNLOADED

    @property
    def model_name(self) -> str:
        return f"{self._model} on {self._engine.name}" if self._model else self._engine.name

    @property
    def language(self) -> str:
        return self._local.language if self._local is not None else self._language

    @language.setter
    def language(self, code: str) -> None:
        if self._local is not None:
            self._local.language = code  # its model must understand it too: it makes live text
            return
        try:
            self._language = validate_language(code)
        except ValueError as exc:
            raise InvalidArgumentError(str(exc)) from None

    async def pull_model(self, name: str) -> str:
        return await self._require_local().pull_model(name)

    async def list_models(self) -> list[LocalModel]:
        return await self._require_local().list_models()

    async def remove_model(self, name: str) -> int:
        return await self._require_local().remove_model(name)

    def _require_local(self) -> WhisperWorker:
        """The local worker, for managing local models; none with ``remote_only``."""
        if self._local is None:
            raise InvalidStateError(
                "[whisper] remote_only = true: this v2md loads no local model and manages none"
            )
        return self._local

    def dictating(self) -> Callable[[], None]:
        """A dictation begins (see ``WhisperWorker.dictating``): the local model's file
        decoding waits, and its decodes keep the language heard."""
        if self._local is None:
            return lambda: None
        return self._local.dictating()

    async def load(self) -> None:
        """Load the local model and ask the server what it serves, side by side; once
        both are done, the error (Model, or Timeout) of one that failed."""
        results = await asyncio.gather(
            self._describe(),
            *([self._local.load()] if self._local is not None else []),
            return_exceptions=True,
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def _describe(self) -> None:
        self._set_state(ModelState.LOADING, f"asking {self._engine.name} what it serves")
        try:
            async with asyncio.timeout(self._cfg.remote_timeout_s):
                self._model = await self._engine.describe()
        except TimeoutError:
            error: V2MError = self._timeout_error()
        except V2MError as exc:
            error = exc
        else:
            self._set_state(ModelState.READY, f"{self._engine.name} serves {self._model}")
            return
        self._set_state(ModelState.FAILED, error.message)
        raise error

    async def transcribe_speech(self, audio: np.ndarray, *, in_speech: bool = False) -> str:
        """The final text of complete speech: the server's, else the local model's (see
        ``WhisperWorker.transcribe_speech`` for ``in_speech``; a server decodes its own way)."""
        audio = check_audio(audio)
        if audio.size == 0:
            return ""
        return await self._final_text(
            audio, lambda: self._require_local().transcribe_speech(audio, in_speech=in_speech)
        )

    async def transcribe_file(
        self, path: str | Path, on_progress: Callable[[float], None] | None = None
    ) -> str:
        """A file sent to the server a piece at a time, with the local worker's progress and
        bounds; a piece the server fails goes to the local model."""

        async def piece(audio: np.ndarray, at: Callable[[float], None]) -> str:
            return await self._final_text(
                audio, lambda: self._require_local().transcribe_file_piece(audio, at)
            )

        return await decode_file(path, self._cfg.max_file_s, piece, on_progress)

    async def _final_text(self, audio: np.ndarray, local: Callable[[], Awaitable[str]]) -> str:
        """The server's text of ``audio``; on failure, reported, the ``local`` decode's
        (called only where there is a local model)."""
        if self._local is not None and self._clock() < self._resting_until:
            return await local()  # the server failed moments ago: let it rest
        try:
            return await self._ask(audio)
        except V2MError as exc:
            self._resting_until = self._clock() + RETRY_AFTER_S
            self._set_state(ModelState.FAILED, exc.message)
            if self._local is None:
                raise
            self._report(type(exc)(f"{exc.message}; the local model's text is used"))
        return await local()

    async def _ask(self, audio: np.ndarray) -> str:
        timeout = self._cfg.remote_timeout_s
        language = None if self.language == "auto" else self.language
        started = time.perf_counter()
        try:
            async with asyncio.timeout(timeout):
                deadline = asyncio.get_running_loop().time() + timeout
                text = await self._engine.transcribe(audio, language, deadline)
        except TimeoutError:
            raise self._timeout_error() from None
        except V2MError:
            raise
        except Exception as exc:  # a client library's own failure: still only a failed server
            log.exception("%s failed unexpectedly", self._engine.name)
            raise ModelError(f"{self._engine.name} failed: {exc}") from exc
        log.debug(
            "%s: %.1f s of speech in %.2f s",
            self._engine.name,
            audio.size / SAMPLE_RATE,
            time.perf_counter() - started,
        )
        self._set_state(ModelState.READY, f"{self._engine.name} answered")
        return text.strip()

    def _timeout_error(self) -> OperationTimeoutError:
        return OperationTimeoutError(
            f"{self._engine.name} did not answer within {self._cfg.remote_timeout_s:g} s "
            "([whisper] remote_timeout_s)"
        )

    def _set_state(self, state: ModelState, detail: str) -> None:
        if state == self.state:
            return
        self.state = state
        log.info("final text from %s: %s (%s)", self.model_name, state, detail)
        if self._on_state is not None:
            self._on_state(state, detail)

    def _report(self, error: V2MError) -> None:
        log.warning("%s", error.message)
        if self._on_error is not None:
            self._on_error(error)

    async def close(self) -> None:
        await self._engine.close()
        if self._local is not None:
            await self._local.close()
        self._set_state(ModelState.UNLOADED, "worker closed")
