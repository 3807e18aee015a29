"""v2m: local-first voice dictation for the Linux desktop, served on the session bus."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("v2m")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+source"

BUS_NAME = "org.v2m.Dictation"
OBJECT_PATH = "/org/v2m/Dictation"
INTERFACE = "org.v2m.Dictation"
