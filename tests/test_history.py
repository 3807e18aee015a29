"""The history keeps every final text, survives SIGKILL, and sets a corrupt file aside."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import textwrap

import pytest

from v2md.errors import HistoryError
from v2md.history import History

PAGE = 4096  # SQLite's default page size


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


def add_then_sigkill(path, text: str) -> None:
    """A process stores ``text`` and is SIGKILLed at once: nothing closes the database."""
    script = textwrap.dedent(f"""
        import os, signal
        from pathlib import Path
        from v2md.history import History
        History(Path({str(path)!r}), 10_000).add({text!r}, duration_s=1, model="m", language="en")
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, "-c", script], env={**os.environ}, timeout=60)
    assert proc.returncode == -signal.SIGKILL


def test_text_survives_sigkill_right_after_add(tmp_path):
    path = tmp_path / "h.sqlite3"
    add_then_sigkill(path, "said just before the crash")
    assert History(path, 10).recent(1)[0][1] == "said just before the crash"


def test_corrupt_file_is_moved_aside_and_a_new_one_started(tmp_path, caplog):
    path = tmp_path / "h.sqlite3"
    path.write_bytes(b"this is not a database" * 100)
    history = History(path, 10)
    history.add("fresh", duration_s=1, model="m", language="en")
    (aside,) = tmp_path.glob("h.sqlite3.corrupt-*")
    assert aside.read_bytes().startswith(b"this is not a database")
    (record,) = [r for r in caplog.records if r.name == "v2md.history"]
    assert record.levelno == logging.ERROR
    assert f"moved to {aside}, starting a new one" in record.getMessage()
    assert history.recent(5)[0][1] == "fresh"


def filled(path, entries: int) -> None:
    """A history of several megabytes (more than SQLite's page cache), checkpointed."""
    History(path, entries).close()  # the schema
    db = sqlite3.connect(path)
    with db:  # one transaction: quicker than one fsync per entry
        db.executemany(
            "INSERT INTO entries (created_ms, raw, duration_s, model, language)"
            " VALUES (0, ?, 1, 'm', 'en')",
            ((f"entry {n} " + "x" * 200,) for n in range(entries)),
        )
    db.close()  # checkpoints the WAL into the file
    assert path.stat().st_size > 500 * PAGE


def damage(path) -> None:
    """Overwrite pages in the middle of the file, leaving the header intact."""
    with open(path, "r+b") as db:
        db.seek(50 * PAGE)
        db.write(b"\xa5" * 5 * PAGE)


def test_damaged_pages_are_found_when_opening_and_the_last_words_stay_in_the_aside_file(
    tmp_path,
):
    path = tmp_path / "h.sqlite3"
    filled(path, 10_000)
    add_then_sigkill(path, "said just before the crash")  # left in the WAL
    damage(path)
    history = History(path, 10)
    assert history.recent(5) == []
    (aside,) = tmp_path.glob("h.sqlite3.corrupt-*")
    db = sqlite3.connect(aside)
    newest = db.execute("SELECT raw FROM entries ORDER BY id DESC LIMIT 1").fetchone()
    db.close()
    assert newest == ("said just before the crash",)


def test_damage_found_while_running_sets_the_file_aside_and_the_write_lands(tmp_path):
    path = tmp_path / "h.sqlite3"
    filled(path, 10_000)
    history = History(path, 20_000)
    damage(path)  # behind the open connection's back
    history.recent(20_000)  # reads the damaged pages
    history.add("after the damage", duration_s=1, model="m", language="en")
    assert [raw for _, raw, _ in history.recent(5)] == ["after the damage"]
    assert len(list(tmp_path.glob("h.sqlite3.corrupt-*"))) == 1


def test_a_file_that_cannot_be_opened_is_an_error_and_stays(tmp_path):
    path = tmp_path / "h.sqlite3"
    path.mkdir()  # not corrupt, just unusable: never moved away
    with pytest.raises(HistoryError, match="cannot open the history"):
        History(path, 10)
    assert path.is_dir() and not list(tmp_path.glob("*.corrupt-*"))


def test_a_write_the_file_refuses_is_a_history_error_and_the_file_stays(tmp_path):
    path = tmp_path / "h.sqlite3"
    history = History(path, 10)
    history.add("kept", duration_s=1, model="m", language="en")
    # The file itself refuses new entries, with the error a full disk gives.
    with contextlib.closing(sqlite3.connect(path)) as other:
        other.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON entries"
            " BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"
        )
    with pytest.raises(HistoryError, match="disk is full"):
        history.add("refused", duration_s=1, model="m", language="en")
    assert [raw for _, raw, _ in history.recent(5)] == ["kept"]
    assert not list(tmp_path.glob("*.corrupt-*"))


def test_a_history_of_another_schema_is_set_aside_and_a_new_one_made(tmp_path):
    path = tmp_path / "h.sqlite3"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE entries (id INTEGER PRIMARY KEY, body TEXT)")
    db.close()
    history = History(path, 10)
    history.add("after the repair", duration_s=1, model="m", language="en")
    assert history.recent(5)[0][1] == "after the repair"
    (aside,) = tmp_path.glob("h.sqlite3.corrupt-*")
    columns = [row[1] for row in sqlite3.connect(aside).execute("PRAGMA table_info(entries)")]
    assert columns == ["id", "body"]


def test_an_older_history_gets_the_recovered_column_and_keeps_its_entries(tmp_path):
    path = tmp_path / "h.sqlite3"
    db = sqlite3.connect(path)
    db.execute(
        "CREATE TABLE entries (id INTEGER PRIMARY KEY, created_ms INTEGER NOT NULL, raw TEXT"
        " NOT NULL, refined TEXT NOT NULL DEFAULT '', duration_s REAL NOT NULL, model TEXT"
        " NOT NULL, language TEXT NOT NULL)"
    )
    db.execute("INSERT INTO entries VALUES (1, 5, 'old words', '', 1.0, 'm', 'en')")
    db.commit()
    db.close()
    history = History(path, 10)
    history.add("recovered words", duration_s=1, model="m", language="en", recovered=True)
    assert [row[1] for row in history.recent(5)] == ["recovered words", "old words"]
    assert history.recovered() == [2]
    assert not list(tmp_path.glob("h.sqlite3.corrupt-*"))


def test_a_history_that_is_a_symlink_leaves_its_target_alone(tmp_path):
    target = tmp_path / "notes.txt"
    target.write_text("someone's notes")
    target.chmod(0o644)
    path = tmp_path / "h.sqlite3"
    path.symlink_to(target)
    history = History(path, 10)
    history.add("fresh", duration_s=1, model="m", language="en")
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert target.read_text() == "someone's notes"
    assert not path.is_symlink() and history.recent(1)[0][1] == "fresh"
