"""A real X11 text widget for the typing tests: a Tk ``Text`` that takes the keyboard
focus and reports what it holds.

``python3 x11_text_widget.py TITLE`` opens it on $DISPLAY. It writes JSON lines on stdout:
``["changed", text]`` after each change of its contents, and ``["final", text]`` when F12
is pressed, then exits. F12 is the test's marker: the X server delivers key events in
order, so the final text holds every key sent before the marker and nothing after.
"""

from __future__ import annotations

import json
import sys
import tkinter


def report(kind: str, text: str) -> None:
    print(json.dumps([kind, text]), flush=True)


def main() -> None:
    root = tkinter.Tk()
    root.title(sys.argv[1])
    text = tkinter.Text(root)
    text.pack()

    def contents() -> str:
        return text.get("1.0", "end-1c")  # without the newline Tk keeps at the end

    def changed(_event: tkinter.Event) -> None:
        if text.edit_modified():  # clearing the flag fires <<Modified>> again
            report("changed", contents())
            text.edit_modified(False)

    def final(_event: tkinter.Event) -> None:
        report("final", contents())
        root.destroy()

    text.bind("<<Modified>>", changed)
    text.bind("<F12>", final)
    # There is no window manager under Xvfb to give the focus; the widget takes it once
    # it is mapped (before, X refuses to focus it).
    root.bind("<Map>", lambda _event: text.focus_force())
    root.mainloop()


if __name__ == "__main__":
    main()
