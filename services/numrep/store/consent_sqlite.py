"""The consent ledger in the embedded SQLite database (the same file as the
main store, ``numrep.sqlite3``), with the same discipline as ``store/sqlite.py``:
WAL, ``synchronous = FULL``, a connection per thread, writes serialised by a
lock and ``BEGIN IMMEDIATE``, one transaction per batch. SQLite's busy timeout
orders these writes with the main store's writers on the same file.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime
from pathlib import Path
from typing import ContextManager, Sequence

from numrep.core.consent import ANY_CALLER, ConsentRecord
from numrep.store.codec import from_epoch_ms, to_epoch_ms
from numrep.store.consent_base import ConsentStore, RecordOutcome, partition_callers, record_from_json, record_to_json
from numrep.store.sqlite_db import SqliteDatabase

SCHEMA = """
CREATE TABLE IF NOT EXISTS consent_records (
    id TEXT PRIMARY KEY, kind TEXT NOT NULL, callee_hash TEXT NOT NULL, token_digest TEXT NOT NULL,
    body TEXT NOT NULL, revoked_at INTEGER);
CREATE TABLE IF NOT EXISTS consent_by_pair (
    caller TEXT NOT NULL, callee_hash TEXT NOT NULL, record_id TEXT NOT NULL REFERENCES consent_records(id),
    PRIMARY KEY (caller, callee_hash, record_id)) WITHOUT ROWID;
"""


class SqliteConsentStore(ConsentStore):
    def __init__(self, path: Path) -> None:
        self.path = path
        self._database = SqliteDatabase(path, SCHEMA, "consent ledger")

    def _db(self) -> sqlite3.Connection:
        return self._database.connection()

    def _write(self) -> ContextManager[sqlite3.Connection]:
        return self._database.write()

    def close(self) -> None:
        self._database.close()

    def add_records(self, records: Sequence[ConsentRecord]) -> list[RecordOutcome]:
        outcomes = []
        with self._write() as db:
            for record in records:
                row = db.execute("SELECT token_digest, revoked_at FROM consent_records WHERE id = ?", (record.id,)).fetchone()
                if row is not None:
                    outcomes.append(_existing(row[0], row[1], record))
                    continue
                db.execute(
                    "INSERT INTO consent_records (id, kind, callee_hash, token_digest, body) VALUES (?, ?, ?, ?, ?)",
                    (record.id, record.kind.value, record.callee_hash, record.token_digest, record_to_json(record)),
                )
                db.executemany(
                    "INSERT INTO consent_by_pair (caller, callee_hash, record_id) VALUES (?, ?, ?)",
                    [(caller, record.callee_hash, record.id) for caller in partition_callers(record)],
                )
                outcomes.append(RecordOutcome.ADDED)
        return outcomes

    def records_for(self, caller: str, callee_hash: str) -> list[ConsentRecord]:
        rows = self._db().execute(
            "SELECT r.body, r.revoked_at FROM consent_by_pair p JOIN consent_records r ON r.id = p.record_id"
            " WHERE p.callee_hash = ? AND p.caller IN (?, ?) ORDER BY r.id",
            (callee_hash, caller, ANY_CALLER),
        ).fetchall()
        return [record_from_json(body, None if revoked is None else from_epoch_ms(revoked)) for body, revoked in rows]

    def get_record(self, record_id: str) -> ConsentRecord | None:
        row = self._db().execute("SELECT body, revoked_at FROM consent_records WHERE id = ?", (record_id,)).fetchone()
        return None if row is None else record_from_json(row[0], None if row[1] is None else from_epoch_ms(row[1]))

    def revoke_record(self, record_id: str, at: datetime) -> bool:
        with self._write() as db:
            cur = db.execute("UPDATE consent_records SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", (to_epoch_ms(at), record_id))
            return cur.rowcount == 1


def _existing(digest: str, revoked_at: int | None, record: ConsentRecord) -> RecordOutcome:
    if revoked_at is not None:
        return RecordOutcome.REVOKED
    return RecordOutcome.DUPLICATE if digest == record.token_digest else RecordOutcome.CONFLICT
