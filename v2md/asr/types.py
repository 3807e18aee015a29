"""The words and model states every speech-to-text part speaks in.

Kept apart from the worker so that the streaming, final-pass and remote modules can
name them without importing faster-whisper or CTranslate2.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


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
