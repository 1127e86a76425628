"""The consent store contract (``numrep.store.consent_base.ConsentStore``) as
specifications every backend meets, on a fresh store of each backend (see
``conftest.py``), opened beside the main store as the server opens it."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from numrep.core.consent import ANY_CALLER, CallingHours, ConsentRecord, RecordKind
from numrep.store.base import Store
from numrep.store.consent_base import ConsentStore, RecordOutcome
from numrep.store.factory import open_consent_store

CALLER, OTHER_CALLER = "+12025550143", "+12025550177"
CALLEE_HASH, OTHER_CALLEE_HASH = "a" * 32, "b" * 32


def ms(when: datetime) -> datetime:
    return when.replace(microsecond=when.microsecond // 1000 * 1000)


NOW = ms(datetime.now(timezone.utc))


def record(record_id: str, kind: RecordKind = RecordKind.CONSENT, **fields: Any) -> ConsentRecord:
    values: dict[str, Any] = dict(
        id=record_id,
        kind=kind,
        issuer=record_id.split("/", 1)[0],
        callers=(CALLER,),
        callee_hash=CALLEE_HASH,
        issued_at=NOW - timedelta(hours=1),
        expires_at=NOW + timedelta(days=30) if kind is RecordKind.CONSENT else None,
        token_digest=f"digest-of-{record_id}",
    )
    if kind is RecordKind.CONSENT:
        values.update(scope=("marketing.loans",), evidence_hash="sha256:" + "1" * 64)
    values.update(fields)
    return ConsentRecord(**values)


@pytest.fixture
def store_options() -> dict[str, Any]:
    """A generous driver timeout: each test creates a keyspace, and schema changes
    on a node shared with other test runs can take longer than the default 5 s."""
    return {"request_timeout": 30.0}


@pytest.fixture
def ledger(store: Store) -> ConsentStore:
    return open_consent_store(store)


def test_a_new_record_is_added_and_read_back_with_every_field(ledger):
    full = record("carrier/1", callers=(CALLER, OTHER_CALLER), enterprise="acme", scope=("marketing", "marketing.loans"),
                  hours=CallingHours.parse("mon-fri 09:00-17:00; sat 10:00-12:00"), time_zone="America/Chicago")

    assert ledger.add_records([full]) == [RecordOutcome.ADDED]

    assert ledger.get_record("carrier/1") == full
    assert ledger.records_for(CALLER, CALLEE_HASH) == [full]
    assert ledger.records_for(OTHER_CALLER, CALLEE_HASH) == [full]


def test_a_refusal_without_expiry_is_kept_without_expiry(ledger):
    refusal = record("app/1", RecordKind.REFUSAL)

    ledger.add_records([refusal])

    assert ledger.get_record("app/1") == refusal and refusal.expires_at is None


def test_records_are_found_only_under_their_caller_and_callee(ledger):
    ledger.add_records([record("carrier/1"), record("carrier/2", callee_hash=OTHER_CALLEE_HASH)])

    assert [r.id for r in ledger.records_for(CALLER, CALLEE_HASH)] == ["carrier/1"]
    assert [r.id for r in ledger.records_for(CALLER, OTHER_CALLEE_HASH)] == ["carrier/2"]
    assert ledger.records_for(OTHER_CALLER, CALLEE_HASH) == []


def test_a_refusal_of_every_caller_is_found_for_any_caller(ledger):
    everyone = record("app/1", RecordKind.REFUSAL, callers=(ANY_CALLER,))
    mine = record("carrier/1")
    ledger.add_records([everyone, mine])

    assert [r.id for r in ledger.records_for(CALLER, CALLEE_HASH)] == ["app/1", "carrier/1"]
    assert [r.id for r in ledger.records_for(OTHER_CALLER, CALLEE_HASH)] == ["app/1"]


def test_the_same_record_again_is_a_duplicate_and_a_different_one_under_its_id_a_conflict(ledger):
    original = record("carrier/1")
    ledger.add_records([original])

    outcomes = ledger.add_records([original, dataclasses.replace(original, token_digest="another", scope=("marketing",))])

    assert outcomes == [RecordOutcome.DUPLICATE, RecordOutcome.CONFLICT]
    assert ledger.get_record("carrier/1") == original
    assert ledger.records_for(CALLER, CALLEE_HASH) == [original]


def test_a_batch_is_answered_in_order(ledger):
    ledger.add_records([record("carrier/2")])

    outcomes = ledger.add_records([record("carrier/1"), record("carrier/2"), record("app/3", RecordKind.REFUSAL)])

    assert outcomes == [RecordOutcome.ADDED, RecordOutcome.DUPLICATE, RecordOutcome.ADDED]


def test_a_batch_that_fails_stores_nothing(ledger):
    broken = dataclasses.replace(record("carrier/2"), kind="not a kind")  # cannot be serialised

    with pytest.raises(AttributeError):
        ledger.add_records([record("carrier/1"), broken])

    assert ledger.get_record("carrier/1") is None
    assert ledger.records_for(CALLER, CALLEE_HASH) == []


def test_revoking_marks_the_record_everywhere_and_keeps_the_first_time(ledger):
    ledger.add_records([record("carrier/1", callers=(CALLER, OTHER_CALLER))])
    first = ms(NOW + timedelta(minutes=1))

    assert ledger.revoke_record("carrier/1", first) is True
    assert ledger.revoke_record("carrier/1", first + timedelta(minutes=5)) is False

    assert ledger.get_record("carrier/1").revoked_at == first
    assert [r.revoked_at for r in ledger.records_for(CALLER, CALLEE_HASH)] == [first]
    assert [r.revoked_at for r in ledger.records_for(OTHER_CALLER, CALLEE_HASH)] == [first]


def test_a_revoked_id_stays_revoked(ledger):
    original = record("carrier/1")
    ledger.add_records([original])
    ledger.revoke_record("carrier/1", NOW)

    assert ledger.add_records([original]) == [RecordOutcome.REVOKED]


def test_what_does_not_exist_reads_as_nothing(ledger):
    assert ledger.get_record("carrier/none") is None
    assert ledger.records_for(CALLER, CALLEE_HASH) == []
    assert ledger.revoke_record("carrier/none", NOW) is False
    assert ledger.add_records([]) == []


def test_a_record_written_through_one_store_object_is_read_through_another(ledger, store):
    ledger.add_records([record("carrier/1")])

    again = open_consent_store(store)

    assert [r.id for r in again.records_for(CALLER, CALLEE_HASH)] == ["carrier/1"]
