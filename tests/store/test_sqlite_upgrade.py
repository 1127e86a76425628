"""Data directories written before listed numbers' encoded Sync entries had a
table of their own (``listed_entries``): none at all (the first layout), or in two
columns of the verdicts table (the second). Opening one encodes the entries of
the listed verdicts stored there, once, and a snapshot streams them as stored."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from numrep.api.convert import sync_page_to_pb
from numrep.core.model import Action, Contribution, Role, Verdict
from numrep.core.privacy import hash32
from numrep.core.pseudonym import Pseudonymizer
from numrep.exchange import Exchange
from numrep.signing.keys import generate_identity
from numrep.signing.labels import sign_label
from numrep.store.codec import verdict_to_json
from numrep.store.sqlite import DB_FILE, SCHEMA, SqliteStore

NUMBER = "+12025550143"
FIRST_VERDICTS = "number TEXT PRIMARY KEY, listed INTEGER NOT NULL, body TEXT NOT NULL, hash32 INTEGER NOT NULL"
SECOND_VERDICTS = FIRST_VERDICTS + ", entry BLOB, valid_until INTEGER"


def _old_data_dir(data_dir: Path, verdict_columns: str) -> str:
    """A store file in an earlier layout holding one published label and its BLOCK verdict."""
    carrier = generate_identity("carrier-north", Role.CARRIER, "EdDSA")
    with closing(SqliteStore.in_directory(data_dir / "new")) as scratch:  # sign and store the label as usual
        exchange = Exchange(scratch, Pseudonymizer(b"u" * 32))
        exchange.register_participant(carrier.participant_id, Role.CARRIER, "", [json.dumps(carrier.public_jwk())])
        token = sign_label(carrier, NUMBER, "fraud.impersonation")
        [outcome] = exchange.publish(exchange.get_participant(carrier.participant_id), [token])
        assert outcome.status == "accepted"
        label_row = scratch._db().execute("SELECT * FROM labels").fetchone()
        participants = scratch._db().execute("SELECT * FROM participants").fetchall()
        keys = scratch._db().execute("SELECT * FROM participant_keys").fetchall()
    start = SCHEMA.index("CREATE TABLE IF NOT EXISTS verdicts")
    end = SCHEMA.index("WITHOUT ROWID;", start) + len("WITHOUT ROWID;")
    old_schema = SCHEMA[:start] + f"CREATE TABLE IF NOT EXISTS verdicts ({verdict_columns}) WITHOUT ROWID;" + SCHEMA[end:]
    assert "listed_entries" not in old_schema
    now = datetime.now(timezone.utc)
    stored = Verdict(NUMBER, Action.BLOCK, "fraud.impersonation", 0.97, 0.8,
                     (Contribution("carrier-north", Role.CARRIER, "fraud.impersonation", 2.0, "label", label_row[0]),),
                     now, now + timedelta(minutes=5), version=1, valid_until=now + timedelta(days=30))
    with closing(sqlite3.connect(data_dir / DB_FILE)) as db:
        db.executescript(old_schema)
        db.executemany("INSERT INTO participants VALUES (?, ?, ?)", participants)
        db.executemany(f"INSERT INTO participant_keys VALUES ({','.join('?' * len(keys[0]))})", keys)
        db.execute(f"INSERT INTO labels VALUES ({','.join('?' * len(label_row))})", label_row)
        db.execute("INSERT INTO verdicts (number, listed, body, hash32) VALUES (?, 1, ?, ?)",
                   (NUMBER, verdict_to_json(stored), hash32(NUMBER)))
        db.commit()
    return token


@pytest.mark.parametrize("verdict_columns", [FIRST_VERDICTS, SECOND_VERDICTS], ids=["first-layout", "second-layout"])
def test_an_old_data_directory_opens_and_its_listed_numbers_reach_handsets_as_stored(tmp_path: Path, verdict_columns: str) -> None:
    token = _old_data_dir(tmp_path, verdict_columns)

    with closing(SqliteStore.in_directory(tmp_path)) as store:
        now = datetime.now(timezone.utc)
        page = store.listed_wire_page("", 100, now)
        assert (page.count, page.stale) == (1, ()), "the entry was encoded when the store opened"

        exchange = Exchange(store, Pseudonymizer(b"u" * 32))
        [chunk] = [sync_page_to_pb(p) for p in exchange.sync("") if p.snapshot]
        assert [(e.number, list(e.labels)) for e in chunk.entries] == [(NUMBER, [token])]
        if verdict_columns == SECOND_VERDICTS:
            assert store._db().execute("SELECT entry, valid_until FROM verdicts").fetchall() == [(None, None)]

        exchange.recompute(NUMBER)  # a rewrite keeps its entry current
        assert store.listed_wire_page("", 100, now).count == 1
        [chunk] = [sync_page_to_pb(p) for p in exchange.sync("") if p.snapshot]
        assert [(e.number, list(e.labels)) for e in chunk.entries] == [(NUMBER, [token])]

    with closing(SqliteStore.in_directory(tmp_path)) as reopened:  # once: nothing left to encode
        assert reopened.listed_wire_page("", 100, now).count == 1


def test_a_verdict_that_stops_being_listed_leaves_the_snapshot(tmp_path: Path) -> None:
    _old_data_dir(tmp_path, FIRST_VERDICTS)
    with closing(SqliteStore.in_directory(tmp_path)) as store:
        exchange = Exchange(store, Pseudonymizer(b"u" * 32))
        carrier = exchange.get_participant("carrier-north")
        assert carrier is not None
        [label_id] = [row[0] for row in store._db().execute("SELECT id FROM labels")]

        [outcome] = exchange.retract(carrier, [label_id])

        assert outcome.status == "accepted"
        page = store.listed_wire_page("", 100, datetime.now(timezone.utc))
        assert (page.entries, page.count, page.stale) == (b"", 0, ())
        assert store._db().execute("SELECT count(*) FROM listed_entries").fetchone() == (0,)
