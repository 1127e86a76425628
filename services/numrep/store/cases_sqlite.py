"""Cases in SQLite, with the main store's discipline: WAL, ``synchronous=FULL``,
one connection per thread, writes serialised by a lock and ``BEGIN IMMEDIATE``,
each write one transaction (a case and its label links are stored together or
not at all).

The cases live in their own file beside the main store's (``numrep-cases.sqlite3``
beside ``numrep.sqlite3``): they change rarely and must not queue behind label
and flag writes.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime
from pathlib import Path
from typing import ContextManager

from numrep.core.cases import Case, CaseKind, CaseRecord, CaseStatus, Particulars, publisher_of
from numrep.core.errors import AlreadyExists
from numrep.store.cases_base import CaseStore
from numrep.store.codec import from_epoch_ms, to_epoch_ms
from numrep.store.sqlite_db import SqliteDatabase

SUFFIX = "-cases"

SCHEMA = """
CREATE TABLE IF NOT EXISTS cases (
    case_id TEXT PRIMARY KEY, kind TEXT NOT NULL, number TEXT NOT NULL, category TEXT NOT NULL,
    status TEXT NOT NULL, filed_at INTEGER NOT NULL, deadline INTEGER NOT NULL, resolved_at INTEGER,
    outcome TEXT NOT NULL DEFAULT '', occurred_at INTEGER,
    text TEXT NOT NULL DEFAULT '', contact TEXT NOT NULL DEFAULT '', evidence TEXT NOT NULL DEFAULT '',
    filed_by TEXT NOT NULL DEFAULT '', filed_via TEXT NOT NULL DEFAULT '') WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS cases_by_status ON cases(kind, status, filed_at, case_id);
CREATE TABLE IF NOT EXISTS case_labels (
    case_id TEXT NOT NULL REFERENCES cases(case_id), position INTEGER NOT NULL,
    label_id TEXT NOT NULL, publisher TEXT NOT NULL,
    PRIMARY KEY (case_id, position)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS case_labels_by_publisher ON case_labels(publisher, case_id);
"""

_COLUMNS = ("case_id, kind, number, category, status, filed_at, deadline, resolved_at, outcome, occurred_at,"
            " text, contact, evidence, filed_by, filed_via")


class SqliteCaseStore(CaseStore):
    def __init__(self, path: Path) -> None:
        self.path = path
        self._database = SqliteDatabase(path, SCHEMA, "case store")

    @classmethod
    def beside(cls, main_store_file: Path) -> "SqliteCaseStore":
        """In a sibling of the main store's file: ``numrep.sqlite3`` -> ``numrep-cases.sqlite3``."""
        return cls(main_store_file.with_name(main_store_file.stem + SUFFIX + main_store_file.suffix))

    def _db(self) -> sqlite3.Connection:
        return self._database.connection()

    def _write(self) -> ContextManager[sqlite3.Connection]:
        return self._database.write()

    def close(self) -> None:
        self._database.close()

    # --- writes ----------------------------------------------------------------
    def add_case(self, record: CaseRecord) -> None:
        case, private = record.case, record.particulars
        with self._write() as db:
            try:
                db.execute(
                    f"INSERT INTO cases ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (case.case_id, case.kind.value, case.number, case.category, case.status.value,
                     to_epoch_ms(case.filed_at), to_epoch_ms(case.deadline), _ms(case.resolved_at), case.outcome,
                     _ms(case.occurred_at), private.text, private.contact, private.evidence, private.filed_by,
                     private.filed_via),
                )
            except sqlite3.IntegrityError:
                raise AlreadyExists(f"case {case.case_id} exists already") from None
            db.executemany(
                "INSERT INTO case_labels (case_id, position, label_id, publisher) VALUES (?, ?, ?, ?)",
                [(case.case_id, i, label_id, publisher_of(label_id)) for i, label_id in enumerate(case.label_ids)],
            )

    def resolve_case(self, case_id: str, status: CaseStatus, resolved_at: datetime, outcome: str) -> bool:
        with self._write() as db:
            cur = db.execute(
                "UPDATE cases SET status = ?, resolved_at = ?, outcome = ? WHERE case_id = ? AND status = ?",
                (status.value, to_epoch_ms(resolved_at), outcome, case_id, CaseStatus.OPEN.value),
            )
            return cur.rowcount == 1

    # --- reads -----------------------------------------------------------------
    def get_case(self, case_id: str) -> CaseRecord | None:
        db = self._db()
        row = db.execute(f"SELECT {_COLUMNS} FROM cases WHERE case_id = ?", (case_id,)).fetchone()
        return None if row is None else self._record(db, row)

    def cases_with(self, kind: CaseKind, status: CaseStatus, limit: int | None) -> list[CaseRecord]:
        order = "ASC" if status is CaseStatus.OPEN else "DESC"
        db = self._db()
        rows = db.execute(
            f"SELECT {_COLUMNS} FROM cases WHERE kind = ? AND status = ?"
            f" ORDER BY filed_at {order}, case_id {order} LIMIT ?",
            (kind.value, status.value, -1 if limit is None else limit),
        ).fetchall()
        return [self._record(db, row) for row in rows]

    def disputes_for_publisher(self, publisher_id: str, limit: int) -> list[CaseRecord]:
        db = self._db()
        rows = db.execute(
            f"SELECT {_COLUMNS} FROM cases WHERE kind = ? AND case_id IN"
            " (SELECT case_id FROM case_labels WHERE publisher = ?) ORDER BY filed_at DESC, case_id DESC LIMIT ?",
            (CaseKind.DISPUTE.value, publisher_id, limit),
        ).fetchall()
        return [self._record(db, row) for row in rows]

    @staticmethod
    def _record(db: sqlite3.Connection, row: tuple) -> CaseRecord:
        (case_id, kind, number, category, status, filed_at, deadline, resolved_at, outcome, occurred_at,
         text, contact, evidence, filed_by, filed_via) = row
        label_ids = tuple(
            label_id for (label_id,) in db.execute(
                "SELECT label_id FROM case_labels WHERE case_id = ? ORDER BY position", (case_id,))
        )
        case = Case(case_id, CaseKind(kind), number, category, CaseStatus(status), from_epoch_ms(filed_at),
                    from_epoch_ms(deadline), _dt(resolved_at), outcome, label_ids, _dt(occurred_at))
        return CaseRecord(case, Particulars(text, contact, evidence, filed_by, filed_via))


def _ms(when: datetime | None) -> int | None:
    return None if when is None else to_epoch_ms(when)


def _dt(value: int | None) -> datetime | None:
    return None if value is None else from_epoch_ms(value)
