"""A data directory written before the verdicts table kept each listed number's
encoded Sync entry: opening it adds the columns, its old rows reach handsets
through the slow path, and rewritten verdicts get their entries."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from datetime import datetime, timedelta, timezone
from pathlib import Path

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
OLD_VERDICTS = ("CREATE TABLE IF NOT EXISTS verdicts (\n"
                "    number TEXT PRIMARY KEY, listed INTEGER NOT NULL, body TEXT NOT NULL, hash32 INTEGER NOT NULL) WITHOUT ROWID;")


def _old_data_dir(data_dir: Path) -> str:
    """A store file in the previous layout holding one published label and its BLOCK verdict."""
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
    old_schema = SCHEMA[:start] + OLD_VERDICTS + SCHEMA[end:]
    assert "entry BLOB" not in old_schema
    now = datetime.now(timezone.utc)
    stored = Verdict(NUMBER, Action.BLOCK, "fraud.impersonation", 0.97, 0.8,
                     (Contribution("carrier-north", Role.CARRIER, "fraud.impersonation", 2.0, "label", label_row[0]),),
                     now, now + timedelta(minutes=5), version=1, valid_until=now + timedelta(days=30))
    with closing(sqlite3.connect(data_dir / DB_FILE)) as db:
        db.executescript(old_schema)
        db.executemany("INSERT INTO participants VALUES (?, ?, ?)", participants)
        db.executemany(f"INSERT INTO participant_keys VALUES ({','.join('?' * len(keys[0]))})", keys)
        db.execute(f"INSERT INTO labels VALUES ({','.join('?' * len(label_row))})", label_row)
        db.execute("INSERT INTO verdicts VALUES (?, 1, ?, ?)", (NUMBER, verdict_to_json(stored), hash32(NUMBER)))
        db.commit()
    return token


def test_an_old_data_directory_opens_and_its_listed_numbers_still_reach_handsets(tmp_path: Path) -> None:
    token = _old_data_dir(tmp_path)

    with closing(SqliteStore.in_directory(tmp_path)) as store:
        columns = {row[1] for row in store._db().execute("PRAGMA table_info(verdicts)")}
        assert {"entry", "valid_until"} <= columns

        now = datetime.now(timezone.utc)
        page = store.listed_wire_page("", 100, now)
        assert (page.count, page.stale) == (0, (NUMBER,)), "no stored entry yet: the slow path"

        exchange = Exchange(store, Pseudonymizer(b"u" * 32))
        [chunk] = [sync_page_to_pb(p) for p in exchange.sync("") if p.snapshot]
        assert [(e.number, list(e.labels)) for e in chunk.entries] == [(NUMBER, [token])]

        exchange.recompute(NUMBER)  # any rewrite of the verdict stores its entry
        page = store.listed_wire_page("", 100, now)
        assert (page.count, page.stale) == (1, ())
        [chunk] = [sync_page_to_pb(p) for p in exchange.sync("") if p.snapshot]
        assert [(e.number, list(e.labels)) for e in chunk.entries] == [(NUMBER, [token])]
