"""A caller's newline never forges a log line of the daemon's."""

from __future__ import annotations

import logging
import subprocess
import sys

from v2md.logs import OneLineFormatter


def test_control_characters_in_a_message_are_escaped_and_tracebacks_kept():
    formatter = OneLineFormatter("%(levelname)s %(name)s: %(message)s")
    name = "tiny\nINFO v2md: model removed\r\x1b[2J"
    record = logging.LogRecord("v2md", logging.ERROR, __file__, 1, "no model %r: %s", None, None)
    record.args = (name, ValueError("two\nlines"))
    line = formatter.format(record)
    assert "\n" not in line and "\r" not in line and "\x1b" not in line
    assert "tiny\\nINFO v2md: model removed\\r\\x1b[2J" in line and "two\\nlines" in line
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        record = logging.LogRecord(
            "v2md", logging.ERROR, __file__, 1, "failed", None, sys.exc_info()
        )
    assert formatter.format(record).count("\n") >= 2  # the traceback keeps its lines


def test_the_daemon_logs_through_it():
    script = (
        "import logging; from v2md.daemon import _setup_logging; _setup_logging('info');"
        "logging.getLogger('v2md').warning('pull %s', 'x\\nINFO v2md: forged')"
    )
    err = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    ).stderr
    assert err.count("\n") == 1 and "x\\nINFO v2md: forged" in err, err


def test_the_ibus_helper_logs_through_it():
    script = (
        "import logging, v2md.desktop.ibus as helper\n"
        "async def serve():\n"
        "    helper.log.warning('no preedit: %s', 'x\\nv2m-ibus: forged')\n"
        "    return 0\n"
        "helper.serve = serve\n"
        "helper.main()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == "v2m-ibus: no preedit: x\\nv2m-ibus: forged\n", done.stderr
