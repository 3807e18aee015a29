"""The history keeps every final text, survives SIGKILL, and sets a corrupt file aside."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

from v2md.history import History


def test_add_recent_refine_clear(tmp_path):
    history = History(tmp_path / "h.sqlite3", max_entries=100)
    first = history.add("first", duration_s=1.0, model="m", language="en")
    history.add("second", duration_s=2.0, model="m", language="en")
    history.set_refined(first, "First.")
    rows = history.recent(10)
    assert [(raw, refined) for _, raw, refined in rows] == [("second", ""), ("first", "First.")]
    assert rows[0][0] >= rows[1][0] > 1_600_000_000_000  # unix time in ms
    assert history.recent(1)[0][1] == "second"
    assert history.clear() == 2 and history.recent(10) == []
    assert oct((tmp_path / "h.sqlite3").stat().st_mode & 0o777) == "0o600"


def test_prunes_oldest_beyond_max_entries(tmp_path):
    history = History(tmp_path / "h.sqlite3", max_entries=3)
    for n in range(5):
        history.add(f"text {n}", duration_s=1, model="m", language="en")
    assert [raw for _, raw, _ in history.recent(10)] == ["text 4", "text 3", "text 2"]


def test_text_survives_sigkill_right_after_add(tmp_path):
    path = tmp_path / "h.sqlite3"
    script = textwrap.dedent(f"""
        import os, signal, sys
        from pathlib import Path
        from v2md.history import History
        History(Path({str(path)!r}), 10).add("said just before the crash", duration_s=1,
                                             model="m", language="en")
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, "-c", script], env={**os.environ}, timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert History(path, 10).recent(1)[0][1] == "said just before the crash"


def test_corrupt_file_is_moved_aside_and_a_new_one_started(tmp_path, caplog):
    path = tmp_path / "h.sqlite3"
    path.write_bytes(b"this is not a database" * 100)
    history = History(path, 10)
    history.add("fresh", duration_s=1, model="m", language="en")
    aside = list(tmp_path.glob("h.sqlite3.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_bytes().startswith(b"this is not a database")
    assert "moved to" in caplog.text
    assert history.recent(5)[0][1] == "fresh"
