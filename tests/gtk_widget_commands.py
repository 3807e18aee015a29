"""What the GTK test windows (tests/gtk_text_widget.py, tests/gtk4_text_widget.py) write
and read: reports on stdout as JSON lines led by ``time.monotonic()``, commands on stdin
(``focus FIELD``, ``clear FIELD``, ``close FIELD``, ``quit``)."""

import json
import sys
import time

from gi.repository import GLib


def report(*items) -> None:
    print(json.dumps([time.monotonic(), *items]), flush=True)


def report_text(view, name: str) -> None:
    """Report each change of ``view``'s contents and of its input method's preedit."""
    view.get_buffer().connect(
        "changed",
        lambda b: report("changed", name, b.get_text(b.get_start_iter(), b.get_end_iter(), True)),
    )
    view.connect("preedit-changed", lambda _v, text: report("preedit", name, text))


def obey(views: dict, *, quit, remove) -> None:
    """Carry out stdin's commands on ``views`` (the fields by name) from the main loop;
    ``quit`` ends the loop, ``remove(view)`` takes a field out of its window."""

    def command(channel, _condition) -> bool:
        line = channel.readline().split()
        if not line or line[0] == "quit":
            quit()
            return False
        verb, name = line
        if verb == "focus":
            views[name].grab_focus()
        elif verb == "clear":
            views[name].get_buffer().set_text("")
        elif verb == "close":
            remove(views.pop(name))
            report("closed", name)
        return True

    GLib.io_add_watch(GLib.IOChannel.unix_new(sys.stdin.fileno()), GLib.IO_IN, command)
