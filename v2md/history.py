"""The dictation history: every final text is stored before anything else happens to it.

SQLite in WAL mode with ``synchronous=FULL``: once ``add`` returns, the text
survives a SIGKILL or a power cut. A file that SQLite says is corrupt is moved
aside (never deleted: it may still hold words someone wants back) and a new one
is started. Calls are synchronous and short; the daemon runs them in an executor.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from pathlib import Path

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    id INTEGER PRIMARY KEY,
    created_ms INTEGER NOT NULL,
    raw TEXT NOT NULL,
    refined TEXT NOT NULL DEFAULT '',
    duration_s REAL NOT NULL,
    model TEXT NOT NULL,
    language TEXT NOT NULL
)
"""


class History:
    def __init__(self, path: Path, max_entries: int) -> None:
        self.path = path
        self._max = max_entries
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            self._db = self._open()
        except sqlite3.DatabaseError as exc:
            aside = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
            path.rename(aside)
            for suffix in ("-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
            log.error(
                "history %s was unreadable (%s): moved to %s, starting a new one", path, exc, aside
            )
            self._db = self._open()

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        try:
            self.path.chmod(0o600)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute(_SCHEMA)
            db.execute("SELECT count(*) FROM entries").fetchone()
        except sqlite3.DatabaseError:
            db.close()
            raise
        return db

    def add(self, raw: str, *, duration_s: float, model: str, language: str) -> int:
        """Store a final text durably; return its id. Prunes beyond ``max_entries``."""
        with self._lock:
            cur = self._db.execute(
                "INSERT INTO entries (created_ms, raw, duration_s, model, language)"
                " VALUES (?, ?, ?, ?, ?)",
                (time.time_ns() // 1_000_000, raw, duration_s, model, language),
            )
            self._db.execute(
                "DELETE FROM entries WHERE id <= (SELECT id FROM entries ORDER BY id DESC"
                " LIMIT 1 OFFSET ?)",
                (self._max,),
            )
            return int(cur.lastrowid)

    def set_refined(self, entry_id: int, refined: str) -> None:
        with self._lock:
            self._db.execute("UPDATE entries SET refined = ? WHERE id = ?", (refined, entry_id))

    def recent(self, limit: int) -> list[tuple[int, str, str]]:
        """Newest first: (unix time in ms, raw text, refined text or "")."""
        with self._lock:
            return self._db.execute(
                "SELECT created_ms, raw, refined FROM entries ORDER BY id DESC LIMIT ?",
                (limit,),
            ).fetchall()

    def clear(self) -> int:
        with self._lock:
            return self._db.execute("DELETE FROM entries").rowcount

    def close(self) -> None:
        with self._lock:
            self._db.close()
