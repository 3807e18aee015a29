"""The daemon's named errors.

Every failure a client can see is one of these classes. Each carries its short
name; the bus layer turns it into ``org.v2m.Dictation.Error.<name>`` in one
place (``service.py``), so features raise plain Python exceptions and never
know about D-Bus.
"""

import re

ERROR_PREFIX = "org.v2m.Dictation.Error."
# Longest message a client or the log gets: an argument of any size may end up in one.
MAX_MESSAGE = 500
SHOWN_VALUE = 80  # characters of a rejected value an error message repeats
HIDDEN = "(hidden)"
# A URL's user name and password (scheme://user:pass@host): a message keeps the host only.
_USERINFO = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)[^/?#@\s'\"]+@")
# What an API key looks like when pasted where it does not belong: the prefixes of
# OpenAI, Gemini/Google, Hugging Face, Groq, GitHub, GitLab and Slack keys, or a long
# run of letters and digits mixing upper case, lower case and digits (no path, no words).
_API_KEY = re.compile(
    r"\b(?:sk-|AIza|hf_|gsk_|gh[pousr]_|glpat-|xox[abprs]-)[A-Za-z0-9_-]{8,}"
    r"|(?<![A-Za-z0-9_/.-])(?=[A-Za-z0-9_-]*[a-z])(?=[A-Za-z0-9_-]*[A-Z])(?=[A-Za-z0-9_-]*[0-9])"
    r"[A-Za-z0-9_-]{32,}(?![A-Za-z0-9_/.-])"
)


class V2MError(Exception):
    """Base of every error a client may receive."""

    name = "Failed"

    @property
    def dbus_name(self) -> str:
        return ERROR_PREFIX + self.name

    @property
    def message(self) -> str:
        """The message as clients and the log see it, at most MAX_MESSAGE characters."""
        return brief(str(self), MAX_MESSAGE)


def brief(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, saying how long it was."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text)} characters in all)"


def shown(value: object) -> str:
    """A rejected value as an error message repeats it: its repr, cut to SHOWN_VALUE,
    with anything secret-looking hidden (see ``redacted``)."""
    return brief(redacted(repr(value)), SHOWN_VALUE)


def redacted(text: str) -> str:
    """``text`` with URL passwords and API-key-looking strings replaced by HIDDEN: an
    error message may be pasted into a bug report, and a key is often pasted into the
    wrong key."""
    return _API_KEY.sub(HIDDEN, _USERINFO.sub(rf"\1{HIDDEN}@", text))


class InvalidStateError(V2MError):
    """The call does not fit the current State (Start while recording, …)."""

    name = "InvalidState"


class InvalidArgumentError(V2MError):
    """An argument was rejected (empty text, unknown language, unreadable file, …)."""

    name = "InvalidArgument"


class AudioDeviceError(V2MError):
    """The capture device is missing, busy or vanished."""

    name = "AudioDevice"


class ModelError(V2MError):
    """The Whisper model could not be loaded or failed while decoding."""

    name = "Model"


class LLMError(V2MError):
    """No LLM provider is configured, or every configured one failed."""

    name = "LLM"


class OperationTimeoutError(V2MError):
    """An operation ran past its deadline."""

    name = "Timeout"


class BusyError(V2MError):
    """The worker is already doing this (a second Stop while transcribing)."""

    name = "Busy"


class DeliveryError(V2MError):
    """The text could not be put into the focused app (missing tool, no display, …)."""

    name = "Delivery"


class HistoryError(V2MError):
    """The history file could not be opened or written (disk full, no permission, …)."""

    name = "History"


class StorageError(V2MError):
    """A file of the daemon's own (the vocabulary) could not be read or written."""

    name = "Storage"


ALL_ERRORS: tuple[type[V2MError], ...] = (
    InvalidStateError,
    InvalidArgumentError,
    AudioDeviceError,
    ModelError,
    LLMError,
    OperationTimeoutError,
    BusyError,
    DeliveryError,
    HistoryError,
    StorageError,
)


# Every name a client can receive: the contract XML lists exactly these (a test checks).
# "Failed" is the base's: an unexpected exception, which is a bug in v2md.
ERROR_NAMES = frozenset({V2MError.name, *(cls.name for cls in ALL_ERRORS)})
