"""The dictation history: every final text is stored before anything else happens to it.

SQLite in WAL mode with ``synchronous=FULL``: once ``add`` returns, the text
survives a SIGKILL or a power cut. A file that SQLite finds corrupt, when it is
opened or later, is moved aside with its WAL (never deleted: it may still hold
words someone wants back) and a new one is started; so is one whose ``entries`` table
is not the one v2m writes (another program's file, a schema from the future), which
would otherwise refuse every dictation. A file of an older v2m gets the columns it
lacks. Calls are synchronous and
short; the daemon runs them in an executor, so they are serialised by a lock.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from v2md.errors import HistoryError

log = logging.getLogger(__name__)

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    id INTEGER PRIMARY KEY,
    created_ms INTEGER NOT NULL,
    raw TEXT NOT NULL,
    refined TEXT NOT NULL DEFAULT '',
    duration_s REAL NOT NULL,
    model TEXT NOT NULL,
    language TEXT NOT NULL,
    recovered INTEGER NOT NULL DEFAULT 0
)
"""
# Columns added since the first schema, and how: an older file gets them on opening.
_ADDED_COLUMNS = {"recovered": "recovered INTEGER NOT NULL DEFAULT 0"}
_COLUMNS = ("id", "created_ms", "raw", "refined", "duration_s", "model", "language", "recovered")
# Primary result codes meaning the file itself is damaged; anything else (locked, read-only,
# disk full, no permission) is not the file's fault and must not move it away.
_CORRUPT_CODES = frozenset({sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB})


class _Corrupt(sqlite3.DatabaseError):
    """The integrity check found damage that SQLite has not reported yet, or the file's
    table is not one v2m can write."""


def _is_corrupt(exc: sqlite3.DatabaseError) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(exc, _Corrupt) or (code is not None and code & 0xFF in _CORRUPT_CODES)


class History:
    """Every method raises HistoryError when the file cannot be used (disk full, no permission)."""

    def __init__(self, path: Path, max_entries: int) -> None:
        self.path = path
        self._max = max_entries
        self._lock = threading.Lock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            try:
                self._db = self._open()
            except sqlite3.DatabaseError as exc:
                if not _is_corrupt(exc):
                    raise
                self._start_afresh(exc)
        except (OSError, sqlite3.Error) as exc:
            raise HistoryError(f"cannot open the history {path}: {exc}") from exc

    def _open(self) -> sqlite3.Connection:
        if self.path.is_symlink():
            # chmod would change the link's target, and SQLite would write there.
            raise _Corrupt(f"{self.path} is a symbolic link, not the history file")
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        try:
            self.path.chmod(0o600)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute(_SCHEMA)
            _upgrade(db)
            # Finds damaged pages a simple query would step over; milliseconds at max_entries.
            problems = [row[0] for row in db.execute("PRAGMA quick_check")]
            if problems != ["ok"]:
                raise _Corrupt("; ".join(problems[:3]))
        except sqlite3.DatabaseError:
            db.close()
            raise
        return db

    def _start_afresh(self, exc: sqlite3.DatabaseError) -> None:
        """Move the damaged file and its WAL aside under one new name, then open a new file."""
        stamp = time.strftime("%Y%m%d-%H%M%S") + f"-{time.time_ns() // 1_000_000 % 1000:03d}"
        aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        self.path.rename(aside)
        for suffix in ("-wal", "-shm"):
            # Closing normally checkpoints the WAL into the file; where it could not, the WAL
            # goes along under the new name, so opening the aside file still replays it.
            companion = Path(f"{self.path}{suffix}")
            if companion.exists():
                companion.rename(f"{aside}{suffix}")
        log.error(
            "history %s cannot be used (%s): moved to %s, starting a new one", self.path, exc, aside
        )
        self._db = self._open()

    def _locked(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``work`` under the lock; damage found on the way sets the file aside, once."""
        with self._lock:
            try:
                try:
                    return work(self._db)
                except sqlite3.DatabaseError as exc:
                    if not _is_corrupt(exc):
                        raise
                    self._db.close()
                    self._start_afresh(exc)
                    return work(self._db)
            except (OSError, sqlite3.Error) as exc:
                raise HistoryError(f"history {self.path}: {exc}") from exc

    def add(
        self, raw: str, *, duration_s: float, model: str, language: str, recovered: bool = False
    ) -> int:
        """Store a final text durably; return its id. Prunes beyond ``max_entries``.
        ``recovered``: the text of a dictation a dead daemon was capturing (``journal.py``)."""

        def insert(db: sqlite3.Connection) -> int:
            # One transaction, so one fsync, and the new text never exists without the pruning.
            with db:
                db.execute("BEGIN IMMEDIATE")
                cur = db.execute(
                    "INSERT INTO entries (created_ms, raw, duration_s, model, language, recovered)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (time.time_ns() // 1_000_000, raw, duration_s, model, language, recovered),
                )
                db.execute(
                    "DELETE FROM entries WHERE id <= (SELECT id FROM entries ORDER BY id DESC"
                    " LIMIT 1 OFFSET ?)",
                    (self._max,),
                )
            assert cur.lastrowid is not None  # set by the INSERT
            return cur.lastrowid

        return self._locked(insert)

    def set_refined(self, entry_id: int, refined: str) -> None:
        self._locked(
            lambda db: db.execute(
                "UPDATE entries SET refined = ? WHERE id = ?", (refined, entry_id)
            )
        )

    def recent(self, limit: int) -> list[tuple[int, str, str]]:
        """Newest first: (unix time in ms, raw text, refined text or "")."""
        return self._locked(
            lambda db: db.execute(
                "SELECT created_ms, raw, refined FROM entries ORDER BY id DESC LIMIT ?", (limit,)
            ).fetchall()
        )

    def recovered(self) -> list[int]:
        """The ids of the entries recovered from a dead daemon's capture, oldest first."""
        return self._locked(
            lambda db: [
                row[0] for row in db.execute("SELECT id FROM entries WHERE recovered ORDER BY id")
            ]
        )

    def clear(self) -> int:
        """Delete every entry; return how many there were."""
        return self._locked(lambda db: db.execute("DELETE FROM entries").rowcount)

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _upgrade(db: sqlite3.Connection) -> None:
    """Add the columns an older v2m's file lacks; refuse (as damage) a table v2m did not make."""
    have = {row[1] for row in db.execute("PRAGMA table_info(entries)")}
    for column, definition in _ADDED_COLUMNS.items():
        if column not in have and have >= set(_COLUMNS) - set(_ADDED_COLUMNS):
            db.execute(f"ALTER TABLE entries ADD COLUMN {definition}")
            have.add(column)
    missing = [c for c in _COLUMNS if c not in have]
    if missing:
        raise _Corrupt(f"its entries table lacks {', '.join(missing)}: not a v2m history")
