"""A Wyoming speech-to-text server as the maker of final text (Home Assistant's
``wyoming-faster-whisper`` and its kin).

Wyoming is JSON-lines events over TCP or a Unix socket; the ``wyoming`` package
frames and parses them. One connection per request, as Home Assistant does:
``describe`` → ``info``; ``transcribe``, ``audio-start``, ``audio-chunk``…,
``audio-stop`` → ``transcript``. The connection is opened here rather than by the
package's client, so that a request abandoned at its deadline drops the socket at
once instead of waiting to flush audio a hung server never reads.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import TypeVar
from urllib.parse import urlsplit

import numpy as np
from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.error import Error
from wyoming.event import Eventable, async_read_event, async_write_event
from wyoming.info import Describe, Info

from v2md.audio.format import SAMPLE_RATE
from v2md.config import WhisperConfig
from v2md.errors import ModelError
from v2md.remote.worker import pcm16, shown_url

# Audio goes out in chunks of this many bytes (1 s of 16-bit audio), as satellites send it.
CHUNK_BYTES = 2 * SAMPLE_RATE
# The most non-answer events (transcript chunks, pings) read while waiting for an answer.
MAX_EVENTS = 10_000

E = TypeVar("E", bound=Eventable)


class WyomingEngine:
    """Final text from a Wyoming ASR server at ``[whisper] url``."""

    def __init__(self, cfg: WhisperConfig) -> None:
        self._url = urlsplit(cfg.url)
        self._model = cfg.remote_model or None
        self.name = f"Wyoming server {shown_url(cfg.url)}"

    async def describe(self) -> str:
        async with self._connection() as (reader, writer):
            await async_write_event(Describe().event(), writer)
            info = await self._answer(reader, Info)
        programs = [p for p in info.asr if p.installed] or info.asr
        models = [m.name for p in programs for m in p.models if m.installed]
        if not programs:
            raise ModelError(f"{self.name} offers no speech-to-text")
        if self._model is not None and models and self._model not in models:
            raise ModelError(
                f"{self.name} has no model {self._model!r}, only {', '.join(models)}: "
                "set [whisper] remote_model to one of them, or to '' for its own"
            )
        return self._model or (models[0] if models else programs[0].name)

    async def transcribe(self, audio: np.ndarray, language: str | None, deadline: float) -> str:
        pcm = pcm16(audio)
        audio_format = {"rate": SAMPLE_RATE, "width": 2, "channels": 1}
        async with self._connection() as (reader, writer):
            await async_write_event(Transcribe(name=self._model, language=language).event(), writer)
            await async_write_event(AudioStart(**audio_format).event(), writer)
            for offset in range(0, len(pcm), CHUNK_BYTES):
                chunk = AudioChunk(audio=pcm[offset : offset + CHUNK_BYTES], **audio_format)
                await async_write_event(chunk.event(), writer)
            await async_write_event(AudioStop().event(), writer)
            transcript = await self._answer(reader, Transcript)
        return transcript.text

    async def close(self) -> None:
        """Nothing held between requests."""

    @contextlib.asynccontextmanager
    async def _connection(
        self,
    ) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
        try:
            if self._url.scheme == "unix":
                reader, writer = await asyncio.open_unix_connection(self._url.path)
            else:
                reader, writer = await asyncio.open_connection(self._url.hostname, self._url.port)
        except OSError as exc:
            raise ModelError(f"{self.name}: cannot connect: {exc.strerror or exc}") from None
        try:
            yield reader, writer
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            # ValueError: a line that is not a Wyoming event (json's errors are ValueErrors).
            raise ModelError(f"{self.name}: connection failed: {exc}") from None
        finally:
            writer.transport.abort()  # done with it, or given up on: nothing left to flush

    async def _answer(self, reader: asyncio.StreamReader, kind: type[E]) -> E:
        """Read events until one of ``kind`` (other events, such as transcript chunks,
        are not needed); a Wyoming error event or a closed connection is a ModelError."""
        for _ in range(MAX_EVENTS):
            event = await async_read_event(reader)
            if event is None:
                raise ModelError(f"{self.name} closed the connection without an answer")
            if Error.is_type(event.type):
                raise ModelError(f"{self.name}: {Error.from_event(event).text}")
            if kind.is_type(event.type):
                answer = kind.from_event(event)
                assert isinstance(answer, kind)
                return answer
        raise ModelError(f"{self.name} sent {MAX_EVENTS} events without an answer")
