"""What a handset vendor keeps: the synced label set in a local SQLite file,
applied chunk by chunk, every label verified offline against its publisher's key."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import jwt

from numrep.api.convert import ACTION_FROM_PB, ROLE_FROM_PB
from numrep.core.model import Label, Participant, PublicKeyRecord
from numrep.signing.jws import JwsRejected, SignatureMemo, time_claim
from numrep.signing.labels import verify_label
from numrep.v1 import registry_pb2, sync_pb2

if TYPE_CHECKING:
    from numrep_client._client import ExchangeClient


@dataclass
class SyncReport:
    chunks: int = 0
    upserts: int = 0
    tombstones: int = 0
    labels_verified: int = 0
    # of those, labels the store held already, byte for byte, verified with the same key:
    # every check ran again but the signature's (a delta re-sends a number's whole set)
    signatures_reused: int = 0
    labels_dropped: list[tuple[str, str]] = field(default_factory=list)  # (number, reason)
    # (number, label id, kid): kept, but signed with a key its owner revoked after the label was issued
    labels_with_revoked_key: list[tuple[str, str, str]] = field(default_factory=list)


class KeyDirectory:
    """Publishers' public keys as fetched from the registry, for offline checks."""

    def __init__(self, participants: Iterable[registry_pb2.Participant]) -> None:
        self._by_id = {
            p.id: Participant(
                p.id,
                ROLE_FROM_PB[p.role],
                p.display_name,
                tuple(
                    PublicKeyRecord(
                        k.kid,
                        k.jwk,
                        k.added_at.ToDatetime(tzinfo=timezone.utc),
                        k.revoked_at.ToDatetime(tzinfo=timezone.utc) if k.HasField("revoked_at") else None,
                    )
                    for k in p.keys
                ),
            )
            for p in participants
        }

    def __call__(self, participant_id: str) -> Participant | None:
        return self._by_id.get(participant_id)


class HandsetLabelStore:
    """The synced label set in one SQLite file (the stdlib's, and what phones
    themselves use): per number its action, category, probability, version and
    the signed labels behind it, plus the cursor to resume from.

    Each chunk is applied in one transaction together with its cursor, so an
    interrupted sync resumes from the last applied cursor with no gap and no
    duplicate, and a chunk costs what it holds, not what the whole set holds (a
    file rewritten per chunk made a snapshot's cost grow with the square of its
    size). A file written by the JSON store of earlier SDK versions is imported
    on first open."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        if _is_legacy_json(path):
            _import_legacy_json(path)
        self._db = _open(path)
        row = self._db.execute("SELECT cursor FROM sync_state").fetchone()
        self.cursor: str = "" if row is None else row[0]
        self.numbers = HeldNumbers(self._db)

    def __enter__(self) -> "HandsetLabelStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._db.close()

    def apply(self, chunk: sync_pb2.SyncChunk, keys: KeyDirectory, report: SyncReport, now: datetime | None = None) -> None:
        """Verify the chunk's labels, then store its entries and its cursor in one transaction."""
        when = now or datetime.now(timezone.utc)
        gone: list[tuple[str]] = []
        held: list[tuple[str, str, str, float, int, str]] = []
        signed: list[tuple[str, bytes, bytes]] = []  # (number, token digest, key digest) of every label kept
        entries = list({entry.number: entry for entry in chunk.entries}.values())  # a number given twice: its last entry
        memo = _HeldSignatures(self._db, [entry.number for entry in entries])
        for entry in entries:
            if entry.tombstone:
                gone.append((entry.number,))
                report.tombstones += 1
                continue
            tokens = _verified_tokens(entry, keys, when, report, memo)
            held.append((entry.number, ACTION_FROM_PB[entry.action].value, entry.category, entry.spam_probability,
                         entry.version, json.dumps(tokens, separators=(",", ":"))))
            signed += [(entry.number, _digest(token), memo.key_of(token)) for token in tokens]
            report.upserts += 1
            report.signatures_reused += sum(token in memo.reused for token in tokens)
        with self._db:  # one transaction: the entries and the cursor they bring the set up to
            self._db.executemany("DELETE FROM numbers WHERE number = ?", gone)
            self._db.executemany("INSERT OR REPLACE INTO numbers VALUES (?, ?, ?, ?, ?, ?)", held)
            self._db.executemany("DELETE FROM verified_labels WHERE number = ?", [(entry.number,) for entry in entries])
            self._db.executemany("INSERT OR REPLACE INTO verified_labels VALUES (?, ?, ?)", signed)
            self._db.execute("INSERT OR REPLACE INTO sync_state (id, cursor) VALUES (0, ?)", (chunk.cursor,))
        self.cursor = chunk.cursor
        report.chunks += 1

    def block_list(self) -> list[tuple[str, str, str]]:
        """(number, action, category), sorted by number: what a call-directory extension takes."""
        return self._db.execute("SELECT number, action, category FROM numbers ORDER BY number").fetchall()


class HeldNumbers(Mapping[str, dict]):
    """The numbers a handset holds, read from its store: ``number -> {action,
    category, spam_probability, version, labels}``."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __getitem__(self, number: str) -> dict:
        row = self._db.execute(f"SELECT {_ENTRY_COLUMNS} FROM numbers WHERE number = ?", (number,)).fetchone()
        if row is None:
            raise KeyError(number)
        return _entry(row)

    def __contains__(self, number: object) -> bool:
        return self._db.execute("SELECT 1 FROM numbers WHERE number = ?", (number,)).fetchone() is not None

    def __iter__(self) -> Iterator[str]:
        return (number for (number,) in self._db.execute("SELECT number FROM numbers ORDER BY number").fetchall())

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM numbers").fetchone()[0]


class _HeldSignatures:
    """The ``SignatureMemo`` of one chunk: the labels the store already holds for the
    chunk's numbers (by digest), each with the digest of the public key that verified
    it. A delta re-sends a number's whole label set when one label changes; the ones
    held byte for byte skip only their signature check, and only while the directory
    still gives their kid that same key."""

    def __init__(self, db: sqlite3.Connection, numbers: list[str]) -> None:
        self._held: dict[bytes, bytes] = {}  # token digest -> key digest
        for start in range(0, len(numbers), _IN_BATCH):
            part = numbers[start:start + _IN_BATCH]
            self._held.update(db.execute(
                f"SELECT token_sha, key_sha FROM verified_labels WHERE number IN ({','.join('?' * len(part))})", part))
        self._keys: dict[str, bytes] = {}  # token -> digest of the key it verified with, in this chunk or before
        self.reused: set[str] = set()  # the held tokens whose signature was not checked again

    def verified(self, token: str, jwk: str) -> bool:
        key = _key_digest(jwk)
        if self._held and self._held.get(_digest(token)) == key:
            self._keys[token] = key
            self.reused.add(token)
            return True
        return False

    def remember(self, token: str, jwk: str) -> None:
        self._keys[token] = _key_digest(jwk)

    def key_of(self, token: str) -> bytes:
        """The digest of the key a kept token verified with (now or before)."""
        return self._keys[token]


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


@functools.lru_cache(maxsize=1024)
def _key_digest(jwk: str) -> bytes:
    return hashlib.sha256(jwk.encode()).digest()


_SCHEMA = """
CREATE TABLE IF NOT EXISTS sync_state (id INTEGER PRIMARY KEY CHECK (id = 0), cursor TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS numbers (
    number TEXT PRIMARY KEY,
    action TEXT NOT NULL,
    category TEXT NOT NULL,
    spam_probability REAL NOT NULL,
    version INTEGER NOT NULL,
    labels TEXT NOT NULL  -- JSON array of the signed tokens, verbatim
);
-- Which public key verified each held label, so that a delta re-sending it skips its signature check.
-- A table of its own, so that a store stays readable and writable by the SDK before it; a row left
-- behind by that SDK still says something true about the bytes of a token and a key.
CREATE TABLE IF NOT EXISTS verified_labels (
    number TEXT NOT NULL,
    token_sha BLOB NOT NULL,  -- SHA-256 of the token
    key_sha BLOB NOT NULL,  -- SHA-256 of the public JWK it verified with
    PRIMARY KEY (number, token_sha)
) WITHOUT ROWID;
"""
_ENTRY_COLUMNS = "action, category, spam_probability, version, labels"
_IN_BATCH = 500  # numbers per IN (...) query
_SQLITE_MAGIC = b"SQLite format 3\x00"


def _open(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    # A commit lost to a power cut takes its cursor with it: the next sync asks
    # for that chunk again. So NORMAL (no fsync per chunk) loses no label.
    db.execute("PRAGMA synchronous=NORMAL")
    db.executescript(_SCHEMA)
    return db


def _entry(row: tuple[str, str, float, int, str]) -> dict:
    action, category, probability, version, labels = row
    return {"action": action, "category": category, "spam_probability": probability, "version": version,
            "labels": json.loads(labels)}


def _verified_tokens(entry: sync_pb2.SyncEntry, keys: KeyDirectory, when: datetime, report: SyncReport,
                     memo: SignatureMemo | None = None) -> list[str]:
    """The entry's labels that verify offline (and are about its number); the rest are reported as dropped."""
    tokens = []
    for token in entry.labels:
        try:
            label = verify_label(token, keys, when, memo=memo)
        except JwsRejected as exc:
            label = _issued_before_revocation(token, keys, when, memo) if exc.reason == "revoked_key" else None
            if label is None:
                report.labels_dropped.append((entry.number, exc.reason))
                continue
            report.labels_with_revoked_key.append((entry.number, label.id, jwt.get_unverified_header(token)["kid"]))
        if label.number != entry.number:
            report.labels_dropped.append((entry.number, "number_mismatch"))
            continue
        tokens.append(token)
        report.labels_verified += 1
    return tokens


def _is_legacy_json(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(len(_SQLITE_MAGIC))
    except FileNotFoundError:
        return False
    return head != _SQLITE_MAGIC and head.lstrip().startswith(b"{")


def _import_legacy_json(path: Path) -> None:
    """Replace a JSON store (``{cursor, numbers}``) with the same set in SQLite:
    built beside it, then swapped in, so a crash midway leaves the JSON file."""
    data = json.loads(path.read_text())
    building = path.with_name(path.name + ".importing")
    for leftover in ("", "-wal", "-shm"):  # what an import cut short leaves behind
        path.with_name(building.name + leftover).unlink(missing_ok=True)
    db = _open(building)
    try:
        with db:
            db.executemany("INSERT OR REPLACE INTO numbers VALUES (?, ?, ?, ?, ?, ?)", [
                (number, held["action"], held["category"], held["spam_probability"], held.get("version", 0),
                 json.dumps(held.get("labels", []), separators=(",", ":")))
                for number, held in data.get("numbers", {}).items()
            ])
            db.execute("INSERT OR REPLACE INTO sync_state (id, cursor) VALUES (0, ?)", (data.get("cursor", ""),))
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # everything in the main file before it moves
    finally:
        db.close()
    os.replace(building, path)


def _issued_before_revocation(token: str, keys: KeyDirectory, now: datetime, memo: SignatureMemo | None = None) -> Label | None:
    """A synced label whose key was revoked after the label was issued. The exchange
    refuses labels signed with a key that is revoked when they arrive, so this one was
    accepted before the revocation and stays valid: verified as of its issue time, and
    still unexpired now."""
    try:
        issued = time_claim(jwt.decode(token, options={"verify_signature": False}), "iat")
        label = verify_label(token, keys, issued, memo=memo)
    except (jwt.InvalidTokenError, JwsRejected):
        return None
    return label if label.expires_at > now else None


def sync_handset(client: "ExchangeClient", store: HandsetLabelStore, chunk_size: int = 0) -> SyncReport:
    """Bring ``store`` up to date: a snapshot on the first run, deltas after."""
    keys = KeyDirectory(client.list_participants())
    report = SyncReport()
    for chunk in client.sync(store.cursor, chunk_size):
        store.apply(chunk, keys, report)
    return report
