"""v2m: local-first voice dictation for the Linux desktop, served on the session bus."""

import re
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("v2m")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+source"

BUS_NAME = "org.v2m.Dictation"
OBJECT_PATH = "/org/v2m/Dictation"
INTERFACE = "org.v2m.Dictation"


def help_text(docstring: str) -> str:
    """A module docstring's first paragraph as plain text for ``--help``: one line, without
    reStructuredText's inline markup (literals in double backticks, roles like :mod:)."""
    paragraph = " ".join(docstring.strip().split("\n\n")[0].split())
    return re.sub(r"(?::\w+:)?`+([^`]+)`+", r"\1", paragraph)
