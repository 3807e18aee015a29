"""A real GTK 3 window with two text fields, for the IBus tests, on $DISPLAY.

Run with a Python that has PyGObject and GTK 3 (Debian's /usr/bin/python3 with
python3-gi and gir1.2-gtk-3.0), with GTK_IM_MODULE=ibus. It writes JSON lines on
stdout, each led by the time it was written (``time.monotonic()``, CLOCK_MONOTONIC: one
clock for every process): ``["focus", field]``, ``["preedit", field, text]`` when the
input method's provisional text changes, ``["changed", field, text]`` after each change
of a field's contents, ``["key", field, keyval]`` for each key event a field receives.
It reads commands on stdin: ``focus FIELD`` moves the keyboard focus, ``clear FIELD``
empties the field, ``close FIELD`` removes it, ``quit`` closes the window.
"""

import sys

import gi

gi.require_version("Gtk", "3.0")
gi.require_version("Gdk", "3.0")
from gi.repository import Gdk, Gtk  # noqa: E402
from gtk_widget_commands import obey, report, report_text  # noqa: E402

FIELDS = ("first", "second")


def main() -> None:
    window = Gtk.Window(title=sys.argv[1])
    box = Gtk.Box(orientation=Gtk.Orientation.VERTICAL)
    views = {}
    for name in FIELDS:
        view = Gtk.TextView(wrap_mode=Gtk.WrapMode.WORD_CHAR)
        report_text(view, name)
        view.connect("focus-in-event", lambda _v, _e, n=name: report("focus", n) or False)
        view.connect("key-press-event", lambda _v, e, n=name: report("key", n, e.keyval) or False)
        box.pack_start(view, True, True, 0)
        views[name] = view
    window.add(box)
    window.connect("destroy", Gtk.main_quit)

    def mapped(widget, _event) -> bool:
        # No window manager under Xvfb gives the focus: the window takes it.
        widget.get_window().focus(Gdk.CURRENT_TIME)
        views["first"].grab_focus()
        return False

    window.connect("map-event", mapped)

    obey(views, quit=Gtk.main_quit, remove=lambda view: view.destroy())
    window.show_all()
    Gtk.main()


if __name__ == "__main__":
    main()
