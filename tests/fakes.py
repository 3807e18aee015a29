"""In-memory stand-ins for a capture source and the VAD, shared by the unit tests."""

from __future__ import annotations

import asyncio

import numpy as np


class FakeSource:
    """Yields ``chunks`` (and what ``feed`` adds) then waits for stop(); ``end_on_its_own``
    ends it after the chunks."""

    device_name = "fake"

    def __init__(self, chunks=(), *, end_on_its_own=False, error=None, overruns=0):
        self._queue: asyncio.Queue[np.ndarray] = asyncio.Queue()
        for chunk in chunks:
            self._queue.put_nowait(chunk)
        if end_on_its_own:
            self._queue.put_nowait(np.zeros(0, np.float32))
        self.error = error
        self.overruns = overruns
        self.closed = False
        self._reading = False

    def feed(self, chunk):
        """Deliver one more chunk, as a device does while recording."""
        self._queue.put_nowait(chunk)

    @property
    def starved(self) -> bool:
        """The reader waits for audio: every chunk so far was read and dealt with."""
        return self._reading and self._queue.empty()

    def start(self):
        pass

    async def read(self):
        self._reading = True
        try:
            return await self._queue.get()
        finally:
            self._reading = False

    def stop(self):
        self._queue.put_nowait(np.zeros(0, np.float32))

    def close(self):
        self.closed = True


class FakeVAD:
    """Speech while samples are non-zero; silence counted after speech; 100-sample padding.
    With ``hangover_ms``, speech stays active that long into silence, as Silero's
    min_silence_ms keeps it."""

    def __init__(self, hangover_ms: float = 0.0):
        self._hangover_ms = hangover_ms
        self.speech_active = False
        self.silence_after_speech_ms = 0.0
        self.samples_seen = 0
        self._speech_end: int | None = None

    def process(self, samples):
        self.samples_seen += samples.size
        loud = bool(np.any(samples))
        if loud:
            self._speech_end = self.samples_seen
            self.silence_after_speech_ms = 0.0
        elif self._speech_end is not None:
            self.silence_after_speech_ms += samples.size / 16.0
        self.speech_active = loud or (
            self._speech_end is not None and self.silence_after_speech_ms < self._hangover_ms
        )

    def speech_bounds(self, *, padded=True):
        if self._speech_end is None:
            return None
        return 0, min(self.samples_seen, self._speech_end + (100 if padded else 0))
