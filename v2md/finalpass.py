"""The final text of a dictation, decoded with full context while the user speaks.

Provisional text (``streaming.py``) sees a few seconds at a time and is meant for
the screen. The final text comes from here: at each pause the VAD finds, the
audio from the last final point up to the pause is decoded again as one piece,
the way a batch decode of a file sees it (30 s windows, no text prompt). Each
decode replaces the previous one, so a sentence is always decoded knowing
everything said before it in the window. Once a window would grow past
WINDOW_S, the previous decode becomes final and the next window starts where it
ended; text before that point is never decoded again, and its audio is dropped.

Measured with tiny.en on recorded speech (tests/recorded.py, two cores):
audiobook 25 s, batch 4.2% WER, this pass 2.8%; telephone prompts 55 s with
pauses, batch 5.0%, this pass 3.4%. Words decoded alone, or with the previous
text as prompt, were several points worse, which is why the window grows.

Nothing is dropped: every sample stays here until final text covers it, up to
the capacity the caller sets; past that the oldest audio is handed back
(``spill``) for the caller to keep as a WAV.
"""

from __future__ import annotations

import logging
from typing import Protocol

import numpy as np

from v2md.audioformat import SAMPLE_RATE

log = logging.getLogger(__name__)

# Whisper's window is 30 s; a little room so that the padded speech end fits in it.
WINDOW_S = 28.0
# Audio kept before speech begins after a long silence, so a first word is never clipped.
LEAD_IN_S = 1.0


class SpeechDecoder(Protocol):
    """What the final pass needs of the Whisper worker."""

    async def transcribe_speech(self, audio: np.ndarray) -> str: ...


class FinalPass:
    """Full-context final text over a growing recording (16 kHz mono float32).

    ``decode_to`` and ``finish`` must not overlap; ``append``, ``drop_silence`` and
    ``spill`` may run while a decode is in flight (its result is then discarded if
    the audio it started from was dropped meanwhile).
    """

    def __init__(self, decoder: SpeechDecoder) -> None:
        self._decoder = decoder
        self._chunks: list[np.ndarray] = []  # audio from self._origin on
        self._kept = 0  # samples in _chunks
        self._origin = 0  # absolute sample where the kept audio starts: all before is final
        self._final: list[str] = []
        self._pending = ""  # text of the latest decode, from _origin to _pending_end
        self._pending_end = 0

    @property
    def text(self) -> str:
        """The final text so far and the latest decode after it."""
        return " ".join(t for t in (*self._final, self._pending) if t)

    @property
    def settled_text(self) -> str:
        """The final text of the audio no longer held."""
        return " ".join(self._final)

    @property
    def decoded_until(self) -> int:
        """Absolute sample up to which every sample has been decoded."""
        return max(self._pending_end, self._origin)

    @property
    def kept_samples(self) -> int:
        """Samples held because no final text covers them yet."""
        return self._kept

    @property
    def unfinished_audio(self) -> np.ndarray:
        """The audio final text does not cover yet (to keep if decoding fails)."""
        return np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.float32)

    def append(self, samples: np.ndarray) -> None:
        self._chunks.append(samples)
        self._kept += samples.size

    async def decode_to(self, end: int) -> None:
        """Decode from the last final point up to absolute sample ``end`` (a pause)."""
        end = min(end, self._origin + self._kept)
        if end <= self.decoded_until:
            return
        if self._pending_end > self._origin and end - self._origin > WINDOW_S * SAMPLE_RATE:
            self._settle()
        origin = self._origin
        text = await self._decoder.transcribe_speech(self._audio(origin, end))
        log.debug("decoded %.2f-%.2f s: %s", origin / SAMPLE_RATE, end / SAMPLE_RATE, text)
        if origin != self._origin:
            return  # audio it started from was spilled meanwhile; that decode no longer fits
        self._pending, self._pending_end = text.strip(), end

    async def finish(self, end: int) -> str:
        """Decode what is left up to absolute sample ``end``; return the whole final text."""
        await self.decode_to(end)
        self._settle()
        return self.text

    def drop_silence(self, now: int) -> None:
        """Nothing was said after the last decode up to absolute sample ``now``: forget the
        silence no window needs. Before any speech that is all but LEAD_IN_S; after a
        decode, silence stays context until a window would overflow with it anyway."""
        pending = self._pending_end > self._origin
        if now - self.decoded_until < (WINDOW_S if pending else LEAD_IN_S) * SAMPLE_RATE:
            return
        self._settle()
        self._drop(now - round(LEAD_IN_S * SAMPLE_RATE))

    def spill(self, limit: int) -> np.ndarray:
        """Hand back the oldest audio no text covers, so that at most ``limit`` samples stay
        held (a worker that cannot keep up); the decode pending is made final first."""
        if self._kept <= limit:
            return np.zeros(0, np.float32)
        self._settle()
        excess = max(0, self._kept - limit)
        spilled = self._audio(self._origin, self._origin + excess)
        self._drop(self._origin + excess)
        return spilled

    def _settle(self) -> None:
        """The pending decode becomes final; its audio is no longer needed."""
        if self._pending_end <= self._origin:
            return
        if self._pending:
            self._final.append(self._pending)
        self._drop(self._pending_end)
        self._pending = ""

    def _audio(self, start: int, end: int) -> np.ndarray:
        whole = self.unfinished_audio
        return whole[start - self._origin : end - self._origin]

    def _drop(self, before: int) -> None:
        """Forget the audio before absolute sample ``before``."""
        drop = min(max(before - self._origin, 0), self._kept)
        self._origin += drop
        self._kept -= drop
        while drop:
            head = self._chunks[0]
            if head.size <= drop:
                self._chunks.pop(0)
                drop -= head.size
            else:
                self._chunks[0] = head[drop:]
                drop = 0
