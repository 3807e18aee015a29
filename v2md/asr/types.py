"""The words, model states and decode options every speech-to-text part speaks in.

Kept apart from the worker so that the streaming, final-pass and remote modules can
name them without importing faster-whisper or CTranslate2.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any


class ModelState(StrEnum):
    """Where the speech-to-text model is in its life (the bus's ModelState property)."""

    UNLOADED = "unloaded"
    LOADING = "loading"
    DOWNLOADING = "downloading"
    READY = "ready"
    FAILED = "failed"


@dataclass(frozen=True)
class Word:
    """A decoded word; times in seconds from the start of the audio passed in.

    ``text`` is spelled as Whisper produced it, leading space included, so
    joining words with "" is right for every language.
    """

    start: float
    end: float
    text: str


@dataclass(frozen=True)
class DecodeOptions:
    """What v2m asks of faster-whisper's ``transcribe`` for one decode; what is not here
    keeps faster-whisper's default (temperature fallback included)."""

    beam_size: int
    language: str | None  # None: detected from the audio
    initial_prompt: str | None
    hotwords: str | None
    word_timestamps: bool
    vad_filter: bool  # skip long silences, as for a file
    condition_on_previous_text: bool = False
    max_new_tokens: int | None = None  # None: the model's limit
    temperature: float | None = None  # None: faster-whisper's fallback ladder
    no_repeat_ngram_size: int = 0

    def transcribe_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of ``WhisperModel.transcribe``."""
        kwargs = asdict(self)
        if self.temperature is None:
            del kwargs["temperature"]
        return kwargs
