"""The handset SDK's label store (``HandsetLabelStore``): what a phone holds
between syncs, applied chunk by chunk from ``SyncChunk`` messages as the
exchange sends them, every label verified offline against its publisher's key."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from numrep.api.convert import participant_to_pb
from numrep.core.model import Participant, PublicKeyRecord, Role
from numrep.signing.keys import Identity, generate_identity
from numrep.signing.labels import sign_label
from numrep.v1 import common_pb2, sync_pb2
from numrep_client import HandsetLabelStore, KeyDirectory, SyncReport
from numrep_testkit import now_utc, numbers

SPAMMERS = numbers(6, start=300)


@pytest.fixture(scope="module")
def carrier() -> Identity:
    return generate_identity("carrier-test", Role.CARRIER, "EdDSA")


@pytest.fixture(scope="module")
def keys(carrier: Identity) -> KeyDirectory:
    record = PublicKeyRecord(carrier.kid, json.dumps(carrier.public_jwk()), now_utc())
    return KeyDirectory([participant_to_pb(Participant(carrier.participant_id, Role.CARRIER, "", (record,)))])


def chunk(cursor: str, *entries: sync_pb2.SyncEntry) -> sync_pb2.SyncChunk:
    return sync_pb2.SyncChunk(cursor=cursor, entries=list(entries))


def listed(carrier: Identity, number: str, *, labels: list[str] | None = None, version: int = 1) -> sync_pb2.SyncEntry:
    tokens = [sign_label(carrier, number, "fraud.impersonation")] if labels is None else labels
    return sync_pb2.SyncEntry(number=number, action=common_pb2.ACTION_BLOCK, category="fraud.impersonation",
                              spam_probability=0.97, labels=tokens, version=version)


def test_an_applied_chunk_is_held_with_its_cursor_after_the_store_is_reopened(tmp_path: Path, carrier: Identity, keys: KeyDirectory) -> None:
    path = tmp_path / "handset.sqlite3"
    with HandsetLabelStore(path) as store:
        report = SyncReport()
        store.apply(chunk("c1", *(listed(carrier, n) for n in SPAMMERS[:3])), keys, report)
        assert (report.chunks, report.upserts, report.labels_verified) == (1, 3, 3)

    with HandsetLabelStore(path) as again:
        assert again.cursor == "c1"
        assert len(again.numbers) == 3 and list(again.numbers) == sorted(SPAMMERS[:3])
        held = again.numbers[SPAMMERS[0]]
        assert held["action"] == "block" and held["category"] == "fraud.impersonation"
        assert held["spam_probability"] == 0.97 and held["version"] == 1 and len(held["labels"]) == 1
        assert again.block_list() == [(n, "block", "fraud.impersonation") for n in sorted(SPAMMERS[:3])]


def test_a_later_entry_replaces_the_number_and_a_tombstone_removes_it(tmp_path: Path, carrier: Identity, keys: KeyDirectory) -> None:
    with HandsetLabelStore(tmp_path / "h.sqlite3") as store:
        store.apply(chunk("c1", listed(carrier, SPAMMERS[0]), listed(carrier, SPAMMERS[1])), keys, SyncReport())
        two_labels = [sign_label(carrier, SPAMMERS[0], "fraud.impersonation"), sign_label(carrier, SPAMMERS[0], "marketing.robocall")]
        report = SyncReport()
        store.apply(chunk("c2", listed(carrier, SPAMMERS[0], labels=two_labels, version=2),
                          sync_pb2.SyncEntry(number=SPAMMERS[1], tombstone=True)), keys, report)

        assert (report.upserts, report.tombstones) == (1, 1)
        assert store.numbers[SPAMMERS[0]]["version"] == 2 and store.numbers[SPAMMERS[0]]["labels"] == two_labels
        assert SPAMMERS[1] not in store.numbers
        with pytest.raises(KeyError):
            store.numbers[SPAMMERS[1]]
        assert store.cursor == "c2"
    with sqlite3.connect(tmp_path / "h.sqlite3") as db:  # which key verified each label: kept for the labels held, no more
        assert db.execute("SELECT number, COUNT(*) FROM verified_labels GROUP BY number").fetchall() == [(SPAMMERS[0], 2)]
    db.close()



def test_a_number_given_twice_in_one_chunk_ends_as_its_last_entry_says(tmp_path: Path, carrier: Identity, keys: KeyDirectory) -> None:
    gone_again = sync_pb2.SyncEntry(number=SPAMMERS[0], tombstone=True)
    with HandsetLabelStore(tmp_path / "h.sqlite3") as store:
        store.apply(chunk("c1", listed(carrier, SPAMMERS[0]), gone_again, gone_again, listed(carrier, SPAMMERS[1])), keys, SyncReport())
        store.apply(chunk("c2", sync_pb2.SyncEntry(number=SPAMMERS[1], tombstone=True), listed(carrier, SPAMMERS[1], version=2)),
                    keys, SyncReport())
        assert list(store.numbers) == [SPAMMERS[1]] and store.numbers[SPAMMERS[1]]["version"] == 2

def test_labels_that_do_not_verify_offline_are_dropped_and_reported(tmp_path: Path, carrier: Identity, keys: KeyDirectory) -> None:
    stranger = generate_identity("carrier-unknown", Role.CARRIER, "EdDSA")
    good = sign_label(carrier, SPAMMERS[0], "fraud.impersonation")
    head, payload, signature = sign_label(carrier, SPAMMERS[0], "marketing.robocall").split(".")
    forged = f"{head}.{payload}.{signature[:-4]}AAAA"
    about_another_number = sign_label(carrier, SPAMMERS[1], "marketing.robocall")
    unknown_publisher = sign_label(stranger, SPAMMERS[0], "marketing.robocall")
    report = SyncReport()

    with HandsetLabelStore(tmp_path / "h.sqlite3") as store:
        store.apply(chunk("c1", listed(carrier, SPAMMERS[0], labels=[good, forged, about_another_number, unknown_publisher])),
                    keys, report)

        assert store.numbers[SPAMMERS[0]]["labels"] == [good]
    assert report.labels_verified == 1
    assert sorted(reason for _, reason in report.labels_dropped) == ["bad_signature", "number_mismatch", "unknown_participant"]


def test_a_chunk_that_fails_to_store_leaves_nothing_of_itself_and_the_cursor_where_it_was(
    tmp_path: Path, carrier: Identity, keys: KeyDirectory
) -> None:
    path = tmp_path / "h.sqlite3"
    with HandsetLabelStore(path) as store:
        store.apply(chunk("c1", listed(carrier, SPAMMERS[0])), keys, SyncReport())
    with sqlite3.connect(path) as db:  # the disk refuses the chunk's fourth row (a full disk, say)
        db.execute(f"CREATE TRIGGER refuse BEFORE INSERT ON numbers WHEN NEW.number = '{SPAMMERS[4]}'"
                   " BEGIN SELECT RAISE(ABORT, 'disk full'); END")

    with HandsetLabelStore(path) as store:
        with pytest.raises(sqlite3.DatabaseError):
            store.apply(chunk("c2", *(listed(carrier, n) for n in SPAMMERS[1:6]), sync_pb2.SyncEntry(number=SPAMMERS[0], tombstone=True)),
                        keys, SyncReport())
        assert store.cursor == "c1"
    with HandsetLabelStore(path) as reopened:
        assert reopened.cursor == "c1"
        assert list(reopened.numbers) == [SPAMMERS[0]]  # no row of c2, and its tombstone undone too


def test_a_json_store_of_an_earlier_sdk_is_imported_on_first_open(tmp_path: Path, carrier: Identity, keys: KeyDirectory) -> None:
    path = tmp_path / "handset.json"
    token = sign_label(carrier, SPAMMERS[0], "fraud.impersonation")
    path.write_text(json.dumps({"cursor": "old-cursor", "numbers": {SPAMMERS[0]: {
        "action": "warn", "category": "fraud.impersonation", "spam_probability": 0.7, "version": 4, "labels": [token]}}}))

    with HandsetLabelStore(path) as store:
        assert store.cursor == "old-cursor"
        assert store.numbers[SPAMMERS[0]] == {"action": "warn", "category": "fraud.impersonation", "spam_probability": 0.7,
                                              "version": 4, "labels": [token]}
        store.apply(chunk("new-cursor", listed(carrier, SPAMMERS[1])), keys, SyncReport())

    assert path.read_bytes().startswith(b"SQLite format 3\x00")
    assert not path.with_name(path.name + ".importing").exists()
    with HandsetLabelStore(path) as reopened:
        assert reopened.cursor == "new-cursor" and len(reopened.numbers) == 2


# --- deltas: a number's whole label set comes again when one of its labels changes ---------------
class CountingVerifiers(dict):
    """``numrep.signing.jws._VERIFIERS`` with a count of the signatures actually checked."""

    def __init__(self, real: dict) -> None:
        super().__init__(real)
        self.checked = 0

    def __getitem__(self, alg: str):
        verifier = super().__getitem__(alg)
        outer = self

        class Counted:
            def verify(self, *args):
                outer.checked += 1
                return verifier.verify(*args)

        return Counted()


@pytest.fixture
def verifiers(monkeypatch: pytest.MonkeyPatch) -> CountingVerifiers:
    from numrep.signing import jws

    counting = CountingVerifiers(jws._VERIFIERS)
    monkeypatch.setattr(jws, "_VERIFIERS", counting)
    return counting


def directory(*members: tuple[Identity, dict]) -> KeyDirectory:
    """Publishers as the registry lists them, each with the public JWK given."""
    return KeyDirectory([participant_to_pb(Participant(who.participant_id, Role.CARRIER, "",
                                                       (PublicKeyRecord(who.kid, json.dumps(jwk), now_utc()),)))
                         for who, jwk in members])


def test_a_delta_checks_the_signatures_of_new_labels_only_and_every_other_rule_of_held_ones(
    tmp_path: Path, carrier: Identity, keys: KeyDirectory, verifiers: CountingVerifiers
) -> None:
    held = [sign_label(carrier, SPAMMERS[0], "fraud.impersonation", jti=f"held-{i}") for i in range(3)]
    with HandsetLabelStore(tmp_path / "h.sqlite3") as store:
        store.apply(chunk("c1", listed(carrier, SPAMMERS[0], labels=held)), keys, SyncReport())
        assert verifiers.checked == 3

        new = sign_label(carrier, SPAMMERS[0], "marketing.robocall")
        report = SyncReport()
        store.apply(chunk("c2", listed(carrier, SPAMMERS[0], labels=[*held, new], version=2)), keys, report)

        assert verifiers.checked == 4  # the new label's
        assert (report.labels_verified, report.signatures_reused) == (4, 3)
        assert store.numbers[SPAMMERS[0]]["labels"] == [*held, new]


def test_a_held_label_is_dropped_when_it_has_expired_or_its_key_is_no_longer_the_one_that_verified_it(
    tmp_path: Path, carrier: Identity, keys: KeyDirectory, verifiers: CountingVerifiers
) -> None:
    from datetime import timedelta

    short = sign_label(carrier, SPAMMERS[0], "fraud.impersonation", lifetime=timedelta(days=1))
    lasting = sign_label(carrier, SPAMMERS[1], "fraud.impersonation")
    with HandsetLabelStore(tmp_path / "h.sqlite3") as store:
        store.apply(chunk("c1", listed(carrier, SPAMMERS[0], labels=[short]), listed(carrier, SPAMMERS[1], labels=[lasting])),
                    keys, SyncReport())

        two_days_on = SyncReport()
        store.apply(chunk("c2", listed(carrier, SPAMMERS[0], labels=[short], version=2)), keys, two_days_on,
                    now=now_utc() + timedelta(days=2))
        assert two_days_on.labels_dropped == [(SPAMMERS[0], "expired")] and two_days_on.signatures_reused == 0
        assert store.numbers[SPAMMERS[0]]["labels"] == []

        # The directory now gives the carrier's kid other key material: the held signature is checked, and fails.
        impostor = generate_identity("carrier-test", Role.CARRIER, "EdDSA")
        swapped = SyncReport()
        checked = verifiers.checked
        store.apply(chunk("c3", listed(carrier, SPAMMERS[1], labels=[lasting], version=2)),
                    directory((carrier, {**impostor.public_jwk(), "kid": carrier.kid})), swapped)
        assert verifiers.checked == checked + 1
        assert swapped.labels_dropped == [(SPAMMERS[1], "bad_signature")] and swapped.signatures_reused == 0

        gone = SyncReport()
        store.apply(chunk("c4", listed(carrier, SPAMMERS[1], labels=[lasting], version=3)), directory(), gone)
        assert gone.labels_dropped == [(SPAMMERS[1], "unknown_participant")]


def test_a_store_of_the_previous_sdk_checks_its_held_labels_once_more_then_reuses_them(
    tmp_path: Path, carrier: Identity, keys: KeyDirectory, verifiers: CountingVerifiers
) -> None:
    path = tmp_path / "h.sqlite3"
    token = sign_label(carrier, SPAMMERS[0], "fraud.impersonation")
    with sqlite3.connect(path) as db:  # the previous SDK's store: no record of which key verified a label
        db.executescript("""
            CREATE TABLE sync_state (id INTEGER PRIMARY KEY CHECK (id = 0), cursor TEXT NOT NULL);
            CREATE TABLE numbers (number TEXT PRIMARY KEY, action TEXT NOT NULL, category TEXT NOT NULL,
                                  spam_probability REAL NOT NULL, version INTEGER NOT NULL, labels TEXT NOT NULL);""")
        db.execute("INSERT INTO numbers VALUES (?, 'block', 'fraud.impersonation', 0.97, 1, ?)", (SPAMMERS[0], json.dumps([token])))
        db.execute("INSERT INTO sync_state VALUES (0, 'c1')")
    db.close()

    with HandsetLabelStore(path) as store:
        assert store.numbers[SPAMMERS[0]]["labels"] == [token]
        first, second = SyncReport(), SyncReport()
        store.apply(chunk("c2", listed(carrier, SPAMMERS[0], labels=[token], version=2)), keys, first)
        store.apply(chunk("c3", listed(carrier, SPAMMERS[0], labels=[token], version=3)), keys, second)
    assert (first.signatures_reused, second.signatures_reused, verifiers.checked) == (0, 1, 1)


def test_a_store_this_sdk_wrote_stays_readable_and_writable_by_the_previous_one(
    tmp_path: Path, carrier: Identity, keys: KeyDirectory
) -> None:
    path = tmp_path / "h.sqlite3"
    token = sign_label(carrier, SPAMMERS[0], "fraud.impersonation")
    with HandsetLabelStore(path) as store:
        store.apply(chunk("c1", listed(carrier, SPAMMERS[0], labels=[token])), keys, SyncReport())
    with sqlite3.connect(path) as db:  # what the previous SDK reads and writes
        assert db.execute("SELECT number, labels FROM numbers").fetchall() == [(SPAMMERS[0], json.dumps([token], separators=(",", ":")))]
        db.execute("INSERT OR REPLACE INTO numbers VALUES (?, 'warn', 'marketing.robocall', 0.6, 2, '[]')", (SPAMMERS[1],))
    db.close()
    with HandsetLabelStore(path) as store:
        assert list(store.numbers) == SPAMMERS[:2]
