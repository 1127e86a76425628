"""Redress end to end, as the campaign asks: a number's owner disputes its labels,
the publishers see the dispute, the regulator upholds it, and a handset that
synced the number as blocked receives a tombstone on its next sync. With the real
handset SDK (``sync_handset`` into a ``HandsetLabelStore`` file, every label
verified offline), over real gRPC, on each store."""

from __future__ import annotations

from pathlib import Path

from numrep.signing.labels import sign_label
from numrep.v1 import cases_pb2, publish_pb2
from numrep_client import HandsetLabelStore, sync_handset

from numrep_testkit import NUMBER, OTHER_NUMBER

CONTACT = "Example Clinic front desk, +1 202 555 0111"
EVIDENCE = "We are the town clinic; these calls are appointment reminders."


def publish(client, identity, number: str, category: str) -> str:
    [result] = client.publish([sign_label(identity, number, category, 1.0)])
    assert result.status == publish_pb2.ITEM_STATUS_ACCEPTED, result
    return result.id


def blocked_number(federation, connect) -> list[str]:
    """NUMBER labelled fraud by the carrier, the app and the regulator; OTHER_NUMBER
    by the carrier only (a bystander the dispute must not touch)."""
    ids = [publish(connect(member), member, NUMBER, "fraud.impersonation")
           for member in (federation.carrier, federation.app, federation.regulator)]
    publish(connect(federation.carrier), federation.carrier, OTHER_NUMBER, "fraud")
    return ids


def test_an_upheld_dispute_reaches_a_synced_handset_as_a_tombstone(federation, connect, tmp_path: Path):
    label_ids = blocked_number(federation, connect)
    handset_file = tmp_path / "handset.sqlite3"
    handset = connect(federation.handset)
    first = sync_handset(handset, HandsetLabelStore(handset_file))
    before = HandsetLabelStore(handset_file)
    assert before.numbers[NUMBER]["action"] == "block"
    assert len(before.numbers[NUMBER]["labels"]) == 3
    assert first.labels_verified == 4 and first.labels_dropped == []
    cursor_before = before.cursor

    # The owner files a dispute (through an app); it names the labels behind the verdict.
    dispute = connect(federation.app).file_dispute(NUMBER, CONTACT, EVIDENCE)
    assert sorted(dispute.label_ids) == sorted(label_ids)

    # Every publisher of those labels sees it; a participant that published nothing does not.
    for member in (federation.carrier, federation.app, federation.regulator):
        [seen] = connect(member).list_disputes()
        assert seen.case_id == dispute.case_id and seen.status == cases_pb2.CASE_STATUS_OPEN
    assert handset.list_disputes() == []

    # The regulator upholds it: the labels are retracted.
    upheld = connect(federation.regulator).resolve_case(dispute.case_id, cases_pb2.CASE_STATUS_UPHELD,
                                                        "The labels were wrong and have been withdrawn.")
    assert upheld.status == cases_pb2.CASE_STATUS_UPHELD

    # The handset's next sync (resumed from its file's cursor) removes the number.
    second = sync_handset(handset, HandsetLabelStore(handset_file))
    after = HandsetLabelStore(handset_file)
    assert second.tombstones == 1 and second.upserts == 0
    assert NUMBER not in after.numbers
    assert OTHER_NUMBER in after.numbers
    # What the handset was sent: a tombstone for the number naming every retracted label.
    delta = [e for chunk in handset.sync(cursor_before) for e in chunk.entries]
    [entry] = [e for e in delta if e.number == NUMBER]
    assert entry.tombstone and list(entry.labels) == []
    assert sorted(entry.removed_label_ids) == sorted(label_ids)
    # The owner reads the outcome by the case id; the publishers see the dispute closed.
    assert connect(federation.app).get_case(dispute.case_id).outcome == "The labels were wrong and have been withdrawn."
    assert [d.status for d in connect(federation.carrier).list_disputes()] == [cases_pb2.CASE_STATUS_UPHELD]


def test_a_rejected_dispute_leaves_the_handset_blocking_the_number(federation, connect, tmp_path: Path):
    blocked_number(federation, connect)
    handset_file = tmp_path / "handset.sqlite3"
    handset = connect(federation.handset)
    sync_handset(handset, HandsetLabelStore(handset_file))
    dispute = connect(federation.app).file_dispute(NUMBER, CONTACT, EVIDENCE)

    connect(federation.regulator).resolve_case(dispute.case_id, cases_pb2.CASE_STATUS_REJECTED, "The labels are substantiated.")
    report = sync_handset(handset, HandsetLabelStore(handset_file))

    assert report.tombstones == 0
    after = HandsetLabelStore(handset_file)
    assert after.numbers[NUMBER]["action"] == "block" and len(after.numbers[NUMBER]["labels"]) == 3
