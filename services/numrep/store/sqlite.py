"""The embedded default store: one SQLite file in WAL mode.

WAL lets readers (every lookup) run beside the single writer. ``synchronous =
FULL`` makes each commit reach the disk before the call returns, which is what
"an acknowledged write survives a crash" costs. Each thread gets its own
connection; writes are serialised by one lock and ``BEGIN IMMEDIATE``.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from datetime import datetime
from pathlib import Path
from typing import ContextManager, Iterable, Iterator, Sequence

from numrep.core.errors import AlreadyExists, InvalidArgument, NotFound, StoreUnavailable
from numrep.core.privacy import hash32
from numrep.core.model import Evidence, Flag, FlagTally, FlagVote, Label, LabelVote, Listing, Participant, PublicKeyRecord, Role, Verdict
from numrep.store.base import AddOutcome, Change, Recompute, Store, WirePage
from numrep.store.codec import LISTING_PATHS, from_epoch_ms, listing, listing_of, to_epoch_ms, verdict_from_json, verdict_to_json
from numrep.store.wire import entry_field
from numrep.store.sqlite_db import SqliteDatabase

SCHEMA = """
CREATE TABLE IF NOT EXISTS participants (
    id TEXT PRIMARY KEY, role TEXT NOT NULL, display_name TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS participant_keys (
    participant_id TEXT NOT NULL REFERENCES participants(id), kid TEXT NOT NULL,
    jwk TEXT NOT NULL, added_at INTEGER NOT NULL, revoked_at INTEGER,
    PRIMARY KEY (participant_id, kid));
CREATE TABLE IF NOT EXISTS labels (
    id TEXT PRIMARY KEY, issuer TEXT NOT NULL, number TEXT NOT NULL, category TEXT NOT NULL,
    confidence REAL NOT NULL, issued_at INTEGER NOT NULL, expires_at INTEGER NOT NULL,
    token TEXT NOT NULL, evidence TEXT NOT NULL DEFAULT '', retracted_at INTEGER);
CREATE INDEX IF NOT EXISTS labels_by_number ON labels(number) WHERE retracted_at IS NULL;
CREATE TABLE IF NOT EXISTS flags (
    number TEXT NOT NULL, app_id TEXT NOT NULL, reporter TEXT NOT NULL, category TEXT NOT NULL,
    time INTEGER NOT NULL, comment TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (number, app_id, reporter)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS flag_batches (
    app_id TEXT NOT NULL, batch_id TEXT NOT NULL, received_at INTEGER NOT NULL,
    PRIMARY KEY (app_id, batch_id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS verdicts (
    number TEXT PRIMARY KEY, listed INTEGER NOT NULL, body TEXT NOT NULL, hash32 INTEGER NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS listed_numbers ON verdicts(number) WHERE listed = 1;
CREATE INDEX IF NOT EXISTS listed_by_hash ON verdicts(hash32) WHERE listed = 1;
CREATE TABLE IF NOT EXISTS changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, number TEXT NOT NULL,
    removed_label_id TEXT NOT NULL DEFAULT '', at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS trust_snapshots (
    epoch INTEGER PRIMARY KEY, fitted_at INTEGER NOT NULL, body TEXT NOT NULL);
"""

# listed_entries: each listed number's Sync entry, encoded (numrep.store.wire), and when its
# verdict goes stale (epoch ms), written with the verdict: a snapshot page is one query of
# stored bytes. Its own table, so that verdict rows stay narrow: a WITHOUT ROWID table of
# rows this wide (a verdict plus an entry, ~1.7 KB) spills into overflow pages, and every
# read of it, down to a lookup of one number, was ~3x slower.
# Created by SqliteStore when missing, with the entries of the verdicts already stored
# (MISSING_ENTRIES; nr_entry(body, tokens) is ``encoded_entry``).
LISTED_ENTRIES = ("CREATE TABLE IF NOT EXISTS listed_entries ("
                  " number TEXT PRIMARY KEY, entry BLOB NOT NULL, valid_until INTEGER) WITHOUT ROWID")
MISSING_ENTRIES = (
    "INSERT INTO listed_entries (number, entry, valid_until)"
    " SELECT v.number, nr_entry(v.body, (SELECT group_concat(token, char(10)) FROM (SELECT token FROM labels l"
    "  WHERE l.number = v.number AND l.retracted_at IS NULL ORDER BY l.id))), json_extract(v.body, '$.u')"
    " FROM verdicts v WHERE v.listed = 1 AND v.number NOT IN (SELECT number FROM listed_entries)"
)

DB_FILE = "numrep.sqlite3"
_IN_CHUNK = 500  # numbers per "IN (...)" query, well below SQLite's limit on bound parameters


class SqliteStore(Store):
    reads_are_local = True  # WAL: readers never wait for the writer
    prompt_feed = True  # a change row commits in the transaction of its verdict, numbered in commit order
    serial_rewrites = True  # BEGIN IMMEDIATE: one writer at a time, across processes

    def __init__(self, path: Path) -> None:
        self.path = path
        self._database = SqliteDatabase(path, SCHEMA, "store")
        self._add_listed_entries()

    def _add_listed_entries(self) -> None:
        """Create ``listed_entries`` in a data directory from before it, encoding the
        entries of the listed verdicts stored there (once: afterwards every verdict
        write keeps it whole), and clear the columns where the previous layout kept
        them. Idempotent, so replicas opening one file at once are safe."""
        if self._db().execute("SELECT 1 FROM sqlite_master WHERE name = 'listed_entries'").fetchone() is not None:
            return
        with self._write() as db:
            db.execute(LISTED_ENTRIES)
            db.create_function("nr_entry", 2, encoded_entry, deterministic=True)
            db.execute(MISSING_ENTRIES)
            old_columns = {row[1] for row in db.execute("PRAGMA table_info(verdicts)")} & {"entry", "valid_until"}
            if old_columns:
                db.execute(f"UPDATE verdicts SET {', '.join(f'{c} = NULL' for c in sorted(old_columns))}")

    @classmethod
    def in_directory(cls, data_dir: Path) -> "SqliteStore":
        return cls(data_dir / DB_FILE)

    # --- connections -----------------------------------------------------------
    def _db(self) -> sqlite3.Connection:
        return self._database.connection()

    def _write(self) -> ContextManager[sqlite3.Connection]:
        return self._database.write()

    def ping(self) -> None:
        if not self.path.exists():  # the volume went away under open connections
            raise StoreUnavailable(f"store file {self.path} is gone")
        try:
            self._db().execute("SELECT 1").fetchone()
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"store does not answer: {exc}") from exc

    def close(self) -> None:
        self._database.close()

    # --- registry --------------------------------------------------------------
    def add_participant(self, participant: Participant) -> None:
        with self._write() as db:
            try:
                db.execute(
                    "INSERT INTO participants (id, role, display_name) VALUES (?, ?, ?)",
                    (participant.id, participant.role.value, participant.display_name),
                )
            except sqlite3.IntegrityError:
                raise AlreadyExists(f"participant {participant.id!r} exists already") from None
            for key in participant.keys:
                self._insert_key(db, participant.id, key)

    def get_participant(self, participant_id: str) -> Participant | None:
        db = self._db()
        row = db.execute("SELECT id, role, display_name FROM participants WHERE id = ?", (participant_id,)).fetchone()
        if row is None:
            return None
        return self._participant(db, row)

    def list_participants(self) -> list[Participant]:
        db = self._db()
        rows = db.execute("SELECT id, role, display_name FROM participants ORDER BY id").fetchall()
        return [self._participant(db, row) for row in rows]

    def add_key(self, participant_id: str, key: PublicKeyRecord) -> None:
        with self._write() as db:
            if db.execute("SELECT 1 FROM participants WHERE id = ?", (participant_id,)).fetchone() is None:
                raise NotFound(f"participant {participant_id!r} is not registered")
            self._insert_key(db, participant_id, key)

    def revoke_key(self, participant_id: str, kid: str, at: datetime) -> None:
        with self._write() as db:
            cur = db.execute(
                "UPDATE participant_keys SET revoked_at = COALESCE(revoked_at, ?) WHERE participant_id = ? AND kid = ?",
                (to_epoch_ms(at), participant_id, kid),
            )
            if cur.rowcount == 0:
                raise NotFound(f"participant {participant_id!r} has no key {kid!r}")

    @staticmethod
    def _insert_key(db: sqlite3.Connection, participant_id: str, key: PublicKeyRecord) -> None:
        try:
            db.execute(
                "INSERT INTO participant_keys (participant_id, kid, jwk, added_at, revoked_at) VALUES (?, ?, ?, ?, ?)",
                (participant_id, key.kid, key.jwk, to_epoch_ms(key.added_at),
                 None if key.revoked_at is None else to_epoch_ms(key.revoked_at)),
            )
        except sqlite3.IntegrityError:
            raise AlreadyExists(f"key {key.kid!r} is registered already") from None

    @staticmethod
    def _participant(db: sqlite3.Connection, row: tuple[str, str, str]) -> Participant:
        keys = tuple(
            PublicKeyRecord(kid, jwk, from_epoch_ms(added), None if revoked is None else from_epoch_ms(revoked))
            for kid, jwk, added, revoked in db.execute(
                "SELECT kid, jwk, added_at, revoked_at FROM participant_keys WHERE participant_id = ? ORDER BY added_at, kid",
                (row[0],),
            )
        )
        return Participant(row[0], Role(row[1]), row[2], keys)

    # --- evidence --------------------------------------------------------------
    def add_labels(self, labels: Sequence[Label]) -> list[AddOutcome]:
        with self._write() as db:
            ids = list(dict.fromkeys(label.id for label in labels))
            stored: dict[str, bool] = {}  # id -> retracted
            for chunk, marks in _in_chunks(ids):
                stored.update((lid, retracted is not None) for lid, retracted in db.execute(
                    f"SELECT id, retracted_at FROM labels WHERE id IN ({marks})", chunk))
            outcomes, new = [], []
            for label in labels:
                if label.id in stored:
                    outcomes.append(AddOutcome.RETRACTED if stored[label.id] else AddOutcome.DUPLICATE)
                    continue
                stored[label.id] = False  # the same id again in this call is a duplicate
                new.append(label)
                outcomes.append(AddOutcome.ADDED)
            db.executemany(
                "INSERT INTO labels (id, issuer, number, category, confidence, issued_at, expires_at, token, evidence)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(lb.id, lb.issuer, lb.number, lb.category, lb.confidence, to_epoch_ms(lb.issued_at), to_epoch_ms(lb.expires_at),
                  lb.token, lb.evidence) for lb in new],
            )
        return outcomes

    def get_label(self, label_id: str) -> Label | None:
        row = self._db().execute(
            f"SELECT {_LABEL_COLUMNS} FROM labels WHERE id = ? AND retracted_at IS NULL", (label_id,)
        ).fetchone()
        return None if row is None else _label(row)

    def was_retracted(self, label_id: str) -> bool:
        row = self._db().execute("SELECT retracted_at FROM labels WHERE id = ?", (label_id,)).fetchone()
        return row is not None and row[0] is not None

    def retract_label(self, label_id: str, at: datetime) -> bool:
        with self._write() as db:
            cur = db.execute(
                "UPDATE labels SET retracted_at = ? WHERE id = ? AND retracted_at IS NULL", (to_epoch_ms(at), label_id)
            )
            return cur.rowcount == 1

    def add_flags(self, app_id: str, batch_id: str, flags: Iterable[Flag], at: datetime) -> bool:
        with self._write() as db:
            try:
                db.execute(
                    "INSERT INTO flag_batches (app_id, batch_id, received_at) VALUES (?, ?, ?)",
                    (app_id, batch_id, to_epoch_ms(at)),
                )
            except sqlite3.IntegrityError:
                return False
            db.executemany(
                "INSERT INTO flags (number, app_id, reporter, category, time, comment) VALUES (?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (number, app_id, reporter) DO UPDATE SET"
                " category = excluded.category, time = excluded.time, comment = excluded.comment"
                " WHERE excluded.time >= flags.time",
                [(f.number, app_id, f.reporter, f.category, to_epoch_ms(f.time), f.comment) for f in flags],
            )
            return True

    def evidence(self, number: str) -> Evidence:
        return self.evidence_many([number])[number]

    def evidence_many(self, numbers: Sequence[str]) -> dict[str, Evidence]:
        wanted = list(dict.fromkeys(numbers))
        db = self._db()
        labels: dict[str, list[Label]] = {}
        tallies: dict[str, dict[str, tuple[dict[str, int], int]]] = {}
        for chunk, marks in _in_chunks(wanted):
            for row in db.execute(
                f"SELECT {_LABEL_COLUMNS} FROM labels WHERE number IN ({marks}) AND retracted_at IS NULL ORDER BY number, id", chunk
            ):
                labels.setdefault(row[2], []).append(_label(row))
            for number, app_id, code, count, latest in db.execute(
                f"SELECT number, app_id, category, COUNT(*), MAX(time) FROM flags WHERE number IN ({marks})"
                " GROUP BY number, app_id, category", chunk,
            ):
                by_category, newest = tallies.setdefault(number, {}).setdefault(app_id, ({}, 0))
                by_category[code] = count
                tallies[number][app_id] = (by_category, max(newest, latest))
        return {
            number: Evidence(number, tuple(labels.get(number, ())), tuple(
                FlagTally(app_id, tuple(sorted(by_category.items())), from_epoch_ms(latest))
                for app_id, (by_category, latest) in sorted(tallies.get(number, {}).items())
            ))
            for number in wanted
        }

    # --- verdicts and feed -----------------------------------------------------
    def get_verdict(self, number: str) -> Verdict | None:
        row = self._db().execute("SELECT body FROM verdicts WHERE number = ?", (number,)).fetchone()
        return None if row is None else verdict_from_json(row[0])

    def get_verdicts(self, numbers: Sequence[str]) -> dict[str, Verdict]:
        wanted = list(dict.fromkeys(numbers))
        db = self._db()
        found: dict[str, Verdict] = {}
        for chunk, marks in _in_chunks(wanted):
            rows = db.execute(f"SELECT number, body FROM verdicts WHERE number IN ({marks})", chunk)
            found.update((number, verdict_from_json(body)) for number, body in rows)
        return found

    def put_verdicts(self, updates: Sequence[tuple[Verdict, Sequence[str]]]) -> None:
        with self._write() as db:
            self._put_verdicts(db, updates)

    def rewrite_verdicts(self, numbers: Sequence[str], recompute: Recompute) -> list[Verdict]:
        with self._write() as db:  # this thread's reads below run in the write transaction
            updates = recompute(self.get_verdicts(numbers), self.evidence_many(numbers))
            if updates:
                self._put_verdicts(db, updates)
        return [verdict for verdict, _ in updates]

    def _put_verdicts(self, db: sqlite3.Connection, updates: Sequence[tuple[Verdict, Sequence[str]]]) -> None:
        db.executemany(
            "INSERT INTO verdicts (number, listed, body, hash32) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (number) DO UPDATE SET listed = excluded.listed, body = excluded.body",
            [(v.number, int(v.is_listed), verdict_to_json(v), hash32(v.number)) for v, _ in updates],
        )
        final = list({v.number: v for v, _ in updates}.values())  # a number given twice ends as its last verdict
        listed = [v for v in final if v.is_listed]
        # Their Sync entries, encoded now: with the labels as stored in this transaction.
        tokens = self._live_tokens(db, [v.number for v in listed])
        db.executemany(
            "INSERT OR REPLACE INTO listed_entries (number, entry, valid_until) VALUES (?, ?, ?)",
            [(v.number, entry_field(listing_of(v, tuple(tokens.get(v.number, ())))),
              None if v.valid_until is None else to_epoch_ms(v.valid_until)) for v in listed],
        )
        db.executemany("DELETE FROM listed_entries WHERE number = ?", [(v.number,) for v in final if not v.is_listed])
        db.executemany(
            "INSERT INTO changes (number, removed_label_id, at) VALUES (?, ?, ?)",
            [(v.number, label_id, to_epoch_ms(v.computed_at)) for v, removed in updates for label_id in (list(removed) or [""])],
        )

    @staticmethod
    def _live_tokens(db: sqlite3.Connection, numbers: Sequence[str]) -> dict[str, list[str]]:
        """The tokens of the live labels of ``numbers``, in label-id order, by number."""
        tokens: dict[str, list[str]] = {}
        for chunk, marks in _in_chunks(numbers):
            for number, token in db.execute(
                f"SELECT number, token FROM labels WHERE number IN ({marks}) AND retracted_at IS NULL"
                " ORDER BY number, id", chunk,
            ):
                tokens.setdefault(number, []).append(token)
        return tokens

    def feed_head(self) -> str:
        row = self._db().execute("SELECT COALESCE(MAX(seq), 0) FROM changes").fetchone()
        return str(row[0])

    def changes_after(self, position: str, limit: int) -> list[Change]:
        if position and not position.isdigit():
            raise InvalidArgument(f"cursor holds a bad change-feed position {position!r}; start again with an empty cursor", "bad_cursor")
        after = int(position or 0)
        rows = self._db().execute(
            "SELECT seq, number, removed_label_id FROM changes WHERE seq > ? ORDER BY seq LIMIT ?", (after, limit)
        ).fetchall()
        return [Change(str(seq), number, removed) for seq, number, removed in rows]

    def listed_page(self, after: str, limit: int) -> tuple[list[Listing], str]:
        db = self._db()
        # The listing's fields straight out of the stored text (json_extract runs in
        # SQLite's C code): a snapshot never decodes a whole verdict.
        fields = ", ".join(f"json_extract(body, '{path}')" for path in LISTING_PATHS)
        rows = db.execute(
            f"SELECT number, {fields} FROM verdicts WHERE listed = 1 AND number > ? ORDER BY number LIMIT ?", (after, limit)
        ).fetchall()
        # The page's live labels in one query (not two queries per number: the flags
        # that evidence() also reads are not part of a sync entry).
        tokens: dict[str, list[str]] = {}
        for number, token in db.execute(
            "SELECT number, token FROM labels WHERE retracted_at IS NULL AND number IN"
            " (SELECT number FROM verdicts WHERE listed = 1 AND number > ? ORDER BY number LIMIT ?) ORDER BY number, id",
            (after, limit),
        ):
            tokens.setdefault(number, []).append(token)
        page = [listing(number, *summary, tuple(tokens.get(number, ()))) for number, *summary in rows]
        return page, (rows[-1][0] if len(rows) == limit else "")

    def listed_wire_page(self, after: str, limit: int, now: datetime) -> WirePage:
        # One query concatenates the page's stored entries in SQLite's C code (binary-safe:
        # group_concat appends each value's bytes); a number whose verdict has gone stale
        # is named for the slow path instead (it is recomputed first).
        page = "WITH page AS (SELECT number, entry, valid_until FROM listed_entries WHERE number > ? ORDER BY number LIMIT ?)"
        fresh = "(valid_until IS NULL OR valid_until > ?)"
        cutoff = to_epoch_ms(now)
        db = self._db()
        entries, count, rows, last = db.execute(
            f"{page} SELECT CAST(group_concat(CASE WHEN {fresh} THEN entry END, '') AS BLOB),"
            f" count(CASE WHEN {fresh} THEN 1 END), count(*), max(number) FROM page",
            (after, limit, cutoff, cutoff),
        ).fetchone()
        stale: tuple[str, ...] = ()
        if count < rows:
            stale = tuple(number for (number,) in db.execute(
                f"{page} SELECT number FROM page WHERE NOT {fresh} ORDER BY number", (after, limit, cutoff)))
        return WirePage(entries or b"", count, stale, last if rows == limit else "")

    def listed_in_hash_range(self, low: int, high: int, limit: int) -> list[Verdict]:
        rows = self._db().execute(
            "SELECT body FROM verdicts WHERE listed = 1 AND hash32 BETWEEN ? AND ? ORDER BY hash32, number LIMIT ?",
            (low, high, limit),
        ).fetchall()
        return [verdict_from_json(body) for (body,) in rows]

    # --- learned trust -----------------------------------------------------------
    def flags_of(self, number: str) -> list[Flag]:
        rows = self._db().execute(f"SELECT {_FLAG_COLUMNS} FROM flags WHERE number = ? ORDER BY app_id, reporter", (number,))
        return [_flag(row) for row in rows]

    def label_as_published(self, label_id: str) -> Label | None:
        row = self._db().execute(f"SELECT {_LABEL_COLUMNS} FROM labels WHERE id = ?", (label_id,)).fetchone()
        return None if row is None else _label(row)

    def scan_label_votes(self) -> Iterator[LabelVote]:
        # Its own connection: a long scan must not hold the thread's connection in a read transaction.
        with closing(sqlite3.connect(self.path, check_same_thread=False)) as db:
            rows = db.execute("SELECT number, issuer, category, confidence, issued_at / 1000.0 FROM labels WHERE retracted_at IS NULL")
            yield from map(LabelVote._make, rows)

    def scan_flag_votes(self) -> Iterator[FlagVote]:
        with closing(sqlite3.connect(self.path, check_same_thread=False)) as db:
            yield from map(FlagVote._make, db.execute("SELECT number, app_id, reporter, category, time / 1000.0 FROM flags"))

    def scan_verdict_numbers(self) -> Iterator[str]:
        with closing(sqlite3.connect(self.path, check_same_thread=False)) as db:
            for (number,) in db.execute("SELECT number FROM verdicts"):
                yield number

    def put_trust_snapshot(self, epoch: int, body: str, at: datetime) -> bool:
        with self._write() as db:
            cur = db.execute("INSERT OR IGNORE INTO trust_snapshots (epoch, fitted_at, body) VALUES (?, ?, ?)",
                             (epoch, to_epoch_ms(at), body))
            return cur.rowcount == 1

    def latest_trust_epoch(self) -> int | None:
        return self._db().execute("SELECT max(epoch) FROM trust_snapshots").fetchone()[0]

    def latest_trust_snapshot(self) -> tuple[int, str] | None:
        row = self._db().execute("SELECT epoch, body FROM trust_snapshots ORDER BY epoch DESC LIMIT 1").fetchone()
        return None if row is None else (row[0], row[1])

    def trust_epochs(self) -> list[int]:
        return [epoch for (epoch,) in self._db().execute("SELECT epoch FROM trust_snapshots ORDER BY epoch DESC")]

    def forget_trust_snapshots(self, before_epoch: int) -> int:
        with self._write() as db:
            return db.execute("DELETE FROM trust_snapshots WHERE epoch < ?", (before_epoch,)).rowcount


_LABEL_COLUMNS = "id, issuer, number, category, confidence, issued_at, expires_at, token, evidence"


_FLAG_COLUMNS = "number, app_id, reporter, category, time, comment"


def _flag(row: tuple) -> Flag:
    number, app_id, reporter, code, when, comment = row
    return Flag(number, app_id, reporter, code, from_epoch_ms(when), comment)


def _in_chunks(values: Sequence[str]) -> Iterator[tuple[Sequence[str], str]]:
    """``values`` in slices that one ``IN (...)`` query takes, each with its placeholders."""
    for start in range(0, len(values), _IN_CHUNK):
        chunk = values[start:start + _IN_CHUNK]
        yield chunk, ",".join("?" * len(chunk))


def _label(row: tuple) -> Label:
    lid, issuer, number, code, confidence, issued, expires, token, evidence = row
    return Label(lid, issuer, number, code, confidence, from_epoch_ms(issued), from_epoch_ms(expires), token, evidence)


def encoded_entry(body: str, tokens: str | None) -> bytes:
    """The Sync entry of the verdict stored as ``body`` with its live labels'
    ``tokens`` (newline-separated, in label-id order): SQL's ``nr_entry``."""
    return entry_field(listing_of(verdict_from_json(body), tuple(tokens.split("\n")) if tokens else ()))
