"""One SQLite file as every embedded store uses it (the exchange's, the consent
ledger's, the case store's).

WAL lets readers (every lookup) run beside the single writer. ``synchronous =
FULL`` makes each commit reach the disk before the call returns, which is what
"an acknowledged write survives a crash" costs. Each thread gets its own
connection; writes are serialised by one lock and ``BEGIN IMMEDIATE``. A write
SQLite refuses (a full disk, a read-only or failing volume) is rolled back whole
and answered as UNAVAILABLE saying what an operator must fix.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from numrep.core.errors import StoreUnavailable

log = logging.getLogger("numrep.store.sqlite")


class SqliteDatabase:
    def __init__(self, path: Path, schema: str, what: str) -> None:
        """``what`` names the database in errors ("store", "consent ledger", ...)."""
        self.path = path
        self.what = what
        path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._write_lock = threading.Lock()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        with self._write_lock:
            self.connection().executescript(schema)

    def connection(self) -> sqlite3.Connection:
        """This thread's connection."""
        db = getattr(self._local, "db", None)
        if db is None:
            try:
                db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=FULL")
                db.execute("PRAGMA foreign_keys=ON")
            except sqlite3.Error as exc:
                raise StoreUnavailable(f"cannot open the {self.what} at {self.path}: {exc}") from exc
            self._local.db = db
            with self._connections_lock:
                self._connections.append(db)
        return db

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: committed whole on exit, rolled back whole on any error."""
        db = self.connection()
        with self._write_lock:
            try:
                db.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                raise self._write_failed(exc) from exc
            try:
                yield db
                db.execute("COMMIT")
            except BaseException as exc:
                if db.in_transaction:  # SQLite may have rolled back already (a full disk, an I/O error)
                    try:
                        db.execute("ROLLBACK")
                    except sqlite3.Error:
                        pass  # the original error says what happened
                if isinstance(exc, sqlite3.OperationalError):
                    raise self._write_failed(exc) from exc
                raise

    def close(self) -> None:
        """Close every thread's connection, never in the middle of a write."""
        with self._write_lock, self._connections_lock:
            for db in self._connections:
                db.close()
            self._connections.clear()
            self._local = threading.local()

    def _write_failed(self, exc: sqlite3.OperationalError) -> StoreUnavailable:
        """A write SQLite refused, as UNAVAILABLE with what an operator must fix. The
        transaction was rolled back: nothing of the call is stored, reads still work."""
        name = getattr(exc, "sqlite_errorname", "")
        if name == "SQLITE_FULL":
            why = "the exchange's disk is full; lookups of stored data still work"
        elif name.startswith(("SQLITE_READONLY", "SQLITE_IOERR")):
            why = f"the exchange's data volume is read-only or failing ({name}); lookups of stored data still work"
        else:
            why = f"{exc} ({name or 'no SQLite error code'})"
        log.error("SQLite %s %s refused a write: %s (%s)", self.what, self.path, exc, name)
        return StoreUnavailable(f"{self.what} is not writable, nothing was stored: {why}", "store_not_writable")
