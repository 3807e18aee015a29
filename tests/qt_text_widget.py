"""A real Qt 5 window with two text fields, for the IBus tests, on $DISPLAY.

The Qt twin of tests/gtk_text_widget.py, with the same reports on stdout and the same
commands on stdin. Run with a Python that has PyQt5 (Debian's /usr/bin/python3 with
python3-pyqt5), with QT_IM_MODULE=ibus: Qt's own IBus input context
(libqt5gui5's ibusplatforminputcontextplugin) talks to ibus-daemon.
"""

import json
import sys
import time

from PyQt5.QtCore import QSocketNotifier
from PyQt5.QtWidgets import QApplication, QPlainTextEdit, QVBoxLayout, QWidget

FIELDS = ("first", "second")


def report(*items) -> None:
    print(json.dumps([time.monotonic(), *items]), flush=True)


class Field(QPlainTextEdit):
    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name
        self.preedit = ""
        self.textChanged.connect(lambda: report("changed", name, self.toPlainText()))

    def inputMethodEvent(self, event) -> None:
        if event.preeditString() != self.preedit:
            self.preedit = event.preeditString()
            report("preedit", self.name, self.preedit)
        super().inputMethodEvent(event)

    def keyPressEvent(self, event) -> None:
        report("key", self.name, event.key())
        super().keyPressEvent(event)

    def focusInEvent(self, event) -> None:
        report("focus", self.name)
        super().focusInEvent(event)


def main() -> None:
    app = QApplication(sys.argv[:1])
    window = QWidget()
    window.setWindowTitle(sys.argv[1])
    layout = QVBoxLayout(window)
    views = {}
    for name in FIELDS:
        views[name] = Field(name)
        layout.addWidget(views[name])

    def command() -> None:
        line = sys.stdin.readline().split()
        if not line or line[0] == "quit":
            app.quit()
            return
        verb, name = line
        if verb == "focus":
            views[name].setFocus()
        elif verb == "clear":
            views[name].clear()
        elif verb == "close":
            views.pop(name).deleteLater()
            report("closed", name)

    notifier = QSocketNotifier(sys.stdin.fileno(), QSocketNotifier.Read)
    notifier.activated.connect(command)
    window.show()
    # No window manager under Xvfb gives the focus: the window takes it.
    window.activateWindow()
    views["first"].setFocus()
    sys.exit(app.exec_())


if __name__ == "__main__":
    main()
