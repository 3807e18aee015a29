"""Log lines that callers cannot forge: one record is one line.

Messages carry what callers sent (a model name, a path, a server's error text); a
newline in one would start what reads as a log line of its own. Control characters
in the message are written as escapes (``\\n``); a traceback, added after the message,
keeps its lines.
"""

from __future__ import annotations

import logging
import sys

# Every C0 control character and DEL, as Python writes it in a string literal.
_ESCAPES = {c: repr(chr(c))[1:-1] for c in (*range(0x20), 0x7F)}


def one_line(text: str) -> str:
    return text.translate(_ESCAPES)


class OneLineFormatter(logging.Formatter):
    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = one_line(record.message)
        return super().formatMessage(record)


def log_to_stderr(fmt: str, level: str | int) -> None:
    """Every process of v2m's logs this way: one record, one line, on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(OneLineFormatter(fmt))
    logging.basicConfig(level=level, handlers=[handler])
