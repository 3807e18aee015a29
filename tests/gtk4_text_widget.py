"""A real GTK 4 window with two text fields, for the IBus tests, on $DISPLAY.

The GTK 4 twin of tests/gtk_text_widget.py, with the same reports on stdout and the
same commands on stdin. Run with a Python that has PyGObject and GTK 4 (Debian's
/usr/bin/python3 with python3-gi and gir1.2-gtk-4.0), with GTK_IM_MODULE=ibus (IBus's
GTK 4 module: ibus-gtk4).
"""

import sys

import gi

gi.require_version("Gtk", "4.0")
gi.require_version("Gdk", "4.0")
from gi.repository import Gdk, GLib, Gtk  # noqa: E402
from gtk_widget_commands import obey, report, report_text  # noqa: E402

FIELDS = ("first", "second")


def main() -> None:
    loop = GLib.MainLoop()
    window = Gtk.Window(title=sys.argv[1])
    box = Gtk.Box(orientation=Gtk.Orientation.VERTICAL)
    views = {}
    for name in FIELDS:
        view = Gtk.TextView(vexpand=True, wrap_mode=Gtk.WrapMode.WORD_CHAR)
        report_text(view, name)
        focus = Gtk.EventControllerFocus()
        focus.connect("enter", lambda _c, n=name: report("focus", n))
        view.add_controller(focus)
        keys = Gtk.EventControllerKey()
        # Before the view's own controller, which hands keys to the input method.
        keys.set_propagation_phase(Gtk.PropagationPhase.CAPTURE)
        keys.connect(
            "key-pressed",
            lambda _c, keyval, _code, _state, n=name: report("key", n, keyval) or False,
        )
        view.add_controller(keys)
        box.append(view)
        views[name] = view
    window.set_child(box)
    window.connect("close-request", lambda _w: loop.quit() or False)

    def mapped(widget) -> None:
        # No window manager under Xvfb gives the focus: the window takes it.
        widget.get_surface().focus(Gdk.CURRENT_TIME)
        views["first"].grab_focus()

    window.connect("map", mapped)

    obey(views, quit=loop.quit, remove=box.remove)
    window.present()
    loop.run()


if __name__ == "__main__":
    main()
