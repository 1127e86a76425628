"""The case desk (numrep.cases.CaseDesk), the Python API behind the RPCs, the CLI
and the web page, on a real exchange with each store (SQLite and Cassandra)."""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta, timezone

import pytest

from numrep.cases import Case, CaseDesk, CaseKind, CaseStatus, GoldOutcome
from numrep.core.errors import FailedPrecondition, InvalidArgument, InvalidNumber, NotFound, PermissionDenied
from numrep.core.model import Action

from numrep_testkit import NUMBER, OTHER_NUMBER

TEXT = "A recorded voice said my social security number was suspended."
CONTACT = "Dr. Ada Example, +1 202 555 0111, ada@clinic.example"
EVIDENCE = "We are the town clinic; these are appointment reminders our patients asked for."


def now() -> datetime:
    return datetime.now(timezone.utc)


# --- filing and asking --------------------------------------------------------------
def test_a_filed_complaint_is_open_with_a_deadline_and_reads_back_by_its_id(desk):
    occurred = now() - timedelta(hours=3)

    case = desk.file_complaint("(202) 555-0143", "fraud.impersonation", occurred, TEXT)

    assert (case.kind, case.number, case.category, case.status) == (CaseKind.COMPLAINT, NUMBER, "fraud.impersonation", CaseStatus.OPEN)
    assert case.deadline == case.filed_at + timedelta(days=30)
    assert abs(case.filed_at - now()) < timedelta(seconds=30)
    assert case.occurred_at is not None and abs(case.occurred_at - occurred) < timedelta(milliseconds=1)
    assert desk.get(case.case_id) == case


def test_the_public_case_carries_no_personal_data(desk):
    complaint = desk.file_complaint(NUMBER, "fraud", None, TEXT, filed_by="user-17")
    dispute = desk.file_dispute(NUMBER, CONTACT, EVIDENCE)

    for case in (desk.get(complaint.case_id), desk.get(dispute.case_id)):
        shown = repr(case) + str(vars(case))
        assert TEXT not in shown and CONTACT not in shown and EVIDENCE not in shown and "user-17" not in shown


def test_the_regulator_reads_the_particulars_with_the_reporter_pseudonymised(desk, member, server):
    case = desk.file_complaint(NUMBER, "fraud", None, TEXT, filed_by="user-17", via="blocker-app")

    record = desk.details(member("regulator"), case.case_id)

    assert record.case == case
    assert record.particulars.text == TEXT
    assert record.particulars.filed_via == "blocker-app"
    assert record.particulars.filed_by == server.exchange.pseudonym("reporter", "blocker-app", "user-17")
    assert "user-17" not in record.particulars.filed_by


@pytest.mark.parametrize("role", ["carrier", "handset", "app"])
def test_only_the_regulator_reads_particulars_and_lists_cases(desk, member, role):
    case = desk.file_dispute(NUMBER, CONTACT, EVIDENCE)

    with pytest.raises(PermissionDenied):
        desk.details(member(role), case.case_id)
    with pytest.raises(PermissionDenied):
        desk.list_records(member(role))


@pytest.mark.parametrize("case_id", ["no-such-case", "A" * 24, "x" * 200, "ünïcode"])
def test_an_unknown_case_id_is_not_found(desk, case_id):
    desk.file_complaint(NUMBER, "fraud", None, TEXT)

    with pytest.raises(NotFound):
        desk.get(case_id)


def test_an_empty_case_id_is_invalid(desk):
    with pytest.raises(InvalidArgument):
        desk.get("")


# --- bad input: refused, and nothing stored ------------------------------------------------
@pytest.mark.parametrize(("number", "category", "occurred", "text", "error", "words"), [
    ("12345", "fraud", None, TEXT, InvalidNumber, "invalid phone number"),
    ("", "fraud", None, TEXT, InvalidNumber, "invalid phone number"),
    (NUMBER, "no.such.category", None, TEXT, InvalidArgument, "unknown category"),
    (NUMBER, "legitimate", None, TEXT, InvalidArgument, "not a spam category"),
    (NUMBER, "fraud", None, "", InvalidArgument, "complaint text is empty"),
    (NUMBER, "fraud", None, "x" * 2001, InvalidArgument, "longer than 2000"),
    (NUMBER, "fraud", None, "bad \udcff bytes", InvalidArgument, "not valid UTF-8"),
    (NUMBER, "fraud", None, "ctrl \x1b[2J", InvalidArgument, "control characters"),
    (NUMBER, "fraud", "future", TEXT, InvalidArgument, "in the future"),
    (NUMBER, "fraud", "ancient", TEXT, InvalidArgument, "days ago"),
    (NUMBER, "fraud", "naive", TEXT, InvalidArgument, "time zone"),
])
def test_a_bad_complaint_is_refused_saying_what_is_wrong_and_nothing_is_stored(desk, member, number, category, occurred, text, error, words):
    when = {None: None, "future": now() + timedelta(days=1), "ancient": now() - timedelta(days=400),
            "naive": datetime(2026, 1, 1, 12, 0)}[occurred]

    with pytest.raises(error) as caught:
        desk.file_complaint(number, category, when, text)

    assert words in caught.value.message
    assert desk.list_records(member("regulator")) == []


@pytest.mark.parametrize(("contact", "evidence", "words"), [
    ("", EVIDENCE, "contact is empty"),
    ("x" * 201, EVIDENCE, "contact is longer than 200"),
    (CONTACT, "", "evidence is empty"),
    (CONTACT, "x" * 4001, "evidence is longer than 4000"),
    (CONTACT, "\x00", "evidence contains control characters"),
])
def test_a_bad_dispute_is_refused_saying_what_is_wrong_and_nothing_is_stored(desk, member, contact, evidence, words):
    with pytest.raises(InvalidArgument) as caught:
        desk.file_dispute(NUMBER, contact, evidence)

    assert words in caught.value.message
    assert desk.list_records(member("regulator")) == []


def test_an_oversized_reporter_id_is_refused(desk, member):
    with pytest.raises(InvalidArgument, match="filed_by is longer than 128"):
        desk.file_complaint(NUMBER, "fraud", None, TEXT, filed_by="u" * 129)
    assert desk.list(limit=10) == []


# --- the regulator's view and resolution ------------------------------------------------------
def test_the_regulator_lists_open_cases_first_oldest_first(desk, member):
    first = desk.file_complaint(NUMBER, "fraud", None, TEXT)
    time.sleep(0.002)  # filing times are kept to the millisecond: make "oldest" well defined
    second = desk.file_dispute(OTHER_NUMBER, CONTACT, EVIDENCE)
    time.sleep(0.002)
    third = desk.file_complaint(OTHER_NUMBER, "marketing", None, TEXT)
    desk.resolve(member("regulator"), first.case_id, CaseStatus.REJECTED, "Not enough detail to act on.")

    listed = desk.list()

    assert [c.case_id for c in listed] == [second.case_id, third.case_id, first.case_id]
    assert [c.case_id for c in desk.list(status=CaseStatus.OPEN, kind=CaseKind.DISPUTE)] == [second.case_id]
    assert [c.case_id for c in desk.list(limit=1)] == [second.case_id]


def test_resolving_a_complaint_tells_the_complainant_the_outcome(desk, member):
    case = desk.file_complaint(NUMBER, "fraud.impersonation", None, TEXT)

    done = desk.resolve(member("regulator"), case.case_id, CaseStatus.CONFIRMED, "Confirmed: the number is an impostor.")

    assert desk.get(case.case_id) == done
    assert (done.status, done.outcome) == (CaseStatus.CONFIRMED, "Confirmed: the number is an impostor.")
    assert done.resolved_at is not None and done.age(now() + timedelta(days=99)) == done.resolved_at - done.filed_at


def test_a_case_resolves_once(desk, member):
    case = desk.file_complaint(NUMBER, "fraud", None, TEXT)
    desk.resolve(member("regulator"), case.case_id, CaseStatus.CONFIRMED, "Confirmed.")

    with pytest.raises(FailedPrecondition, match="confirmed already"):
        desk.resolve(member("regulator"), case.case_id, CaseStatus.REJECTED, "Changed my mind.")

    assert desk.get(case.case_id).status is CaseStatus.CONFIRMED


@pytest.mark.parametrize("role", ["carrier", "handset", "app"])
def test_only_the_regulator_resolves(desk, member, role):
    case = desk.file_complaint(NUMBER, "fraud", None, TEXT)

    with pytest.raises(PermissionDenied):
        desk.resolve(member(role), case.case_id, CaseStatus.CONFIRMED, "Confirmed.")

    assert desk.get(case.case_id).status is CaseStatus.OPEN


def test_a_complaint_cannot_be_upheld_nor_a_dispute_confirmed(desk, member):
    complaint = desk.file_complaint(NUMBER, "fraud", None, TEXT)
    dispute = desk.file_dispute(NUMBER, CONTACT, EVIDENCE)

    with pytest.raises(InvalidArgument, match="confirmed or rejected"):
        desk.resolve(member("regulator"), complaint.case_id, CaseStatus.UPHELD, "Upheld.")
    with pytest.raises(InvalidArgument, match="rejected or upheld"):
        desk.resolve(member("regulator"), dispute.case_id, CaseStatus.CONFIRMED, "Confirmed.")


def test_resolving_needs_words_for_the_complainant(desk, member):
    case = desk.file_complaint(NUMBER, "fraud", None, TEXT)

    with pytest.raises(InvalidArgument, match="outcome message is empty"):
        desk.resolve(member("regulator"), case.case_id, CaseStatus.CONFIRMED, " ")


def test_resolving_an_unknown_case_is_not_found(desk, member):
    with pytest.raises(NotFound):
        desk.resolve(member("regulator"), "no-such-case", CaseStatus.CONFIRMED, "Confirmed.")


def test_an_open_case_past_its_deadline_is_overdue(desk):
    case = desk.file_dispute(NUMBER, CONTACT, EVIDENCE)

    assert not case.overdue(now())
    assert case.overdue(case.filed_at + timedelta(days=14, seconds=1))
    assert case.age(case.filed_at + timedelta(days=15)) == timedelta(days=15)


# --- disputes and their labels -----------------------------------------------------------
def test_a_dispute_links_the_live_spam_labels_behind_the_verdict(desk, federation, labelled):
    carrier_ids = labelled(federation.carrier, NUMBER, "fraud.impersonation", "harassment")
    app_ids = labelled(federation.app, NUMBER, "marketing.robocall")
    labelled(federation.app, NUMBER, "legitimate")  # says not spam: nothing to dispute
    labelled(federation.carrier, OTHER_NUMBER, "fraud")  # another number

    case = desk.file_dispute(NUMBER, CONTACT, EVIDENCE)

    assert (case.kind, case.category, case.status) == (CaseKind.DISPUTE, "", CaseStatus.OPEN)
    assert case.deadline == case.filed_at + timedelta(days=14)
    assert set(case.label_ids) == set(carrier_ids + app_ids)


def test_a_publisher_sees_the_disputes_of_its_own_labels_only(desk, federation, labelled):
    carrier_ids = labelled(federation.carrier, NUMBER, "fraud")
    app_ids = labelled(federation.app, NUMBER, "marketing")
    labelled(federation.app, OTHER_NUMBER, "marketing")
    both = desk.file_dispute(NUMBER, CONTACT, EVIDENCE)
    only_app = desk.file_dispute(OTHER_NUMBER, CONTACT, EVIDENCE)

    carrier_sees = desk.disputes_for_publisher(federation.carrier.participant_id)
    app_sees = desk.disputes_for_publisher(federation.app.participant_id)

    assert [(c.case_id, c.label_ids) for c in carrier_sees] == [(both.case_id, tuple(carrier_ids))]
    assert {c.case_id for c in app_sees} == {both.case_id, only_app.case_id}
    assert [c.label_ids for c in app_sees if c.case_id == both.case_id] == [tuple(app_ids)]
    assert all(i.startswith("blocker-app/") for c in app_sees for i in c.label_ids)
    assert desk.disputes_for_publisher(federation.handset.participant_id) == []


def test_an_upheld_dispute_retracts_its_labels_and_the_number_is_no_longer_listed(desk, federation, labelled, member, server):
    ids = labelled(federation.carrier, NUMBER, "fraud", "harassment") + labelled(federation.app, NUMBER, "marketing")
    assert server.exchange.lookup(NUMBER).action in (Action.WARN, Action.BLOCK)
    case = desk.file_dispute(NUMBER, CONTACT, EVIDENCE)

    done = desk.resolve(member("regulator"), case.case_id, CaseStatus.UPHELD, "The labels were wrong and are withdrawn.")

    assert done.status is CaseStatus.UPHELD
    assert all(server.exchange.store.was_retracted(i) for i in ids)
    assert server.exchange.store.evidence(NUMBER).labels == ()
    assert not server.exchange.lookup(NUMBER).is_listed


def test_a_rejected_dispute_leaves_the_labels_and_the_verdict_as_they_were(desk, federation, labelled, member, server):
    ids = labelled(federation.carrier, NUMBER, "fraud", "harassment")
    before = server.exchange.lookup(NUMBER)
    case = desk.file_dispute(NUMBER, CONTACT, EVIDENCE)

    desk.resolve(member("regulator"), case.case_id, CaseStatus.REJECTED, "The labels are substantiated.")

    assert sorted(lb.id for lb in server.exchange.store.evidence(NUMBER).labels) == sorted(ids)
    after = server.exchange.lookup(NUMBER)
    assert (after.action, after.version) == (before.action, before.version)


def test_reapplying_upheld_disputes_retracts_what_a_crash_left_live(desk, federation, labelled, member, server):
    ids = labelled(federation.carrier, NUMBER, "fraud")
    case = desk.file_dispute(NUMBER, CONTACT, EVIDENCE)
    # A crash after the case was closed and before its labels were retracted:
    assert desk.store.resolve_case(case.case_id, CaseStatus.UPHELD, now(), "Upheld.")
    assert server.exchange.store.get_label(ids[0]) is not None

    assert desk.reapply_upheld(member("regulator")) == 1
    assert desk.reapply_upheld(member("regulator")) == 0

    assert server.exchange.store.was_retracted(ids[0])


# --- gold evidence for trust ------------------------------------------------------------------
def test_confirmed_complaints_and_upheld_disputes_are_gold_outcomes(desk, federation, labelled, member):
    labelled(federation.carrier, OTHER_NUMBER, "fraud")
    confirmed = desk.file_complaint(NUMBER, "fraud.impersonation", None, TEXT)
    rejected = desk.file_complaint(NUMBER, "marketing", None, TEXT)
    upheld = desk.file_dispute(OTHER_NUMBER, CONTACT, EVIDENCE)
    desk.file_complaint(NUMBER, "harassment", None, TEXT)  # still open
    regulator = member("regulator")
    first = desk.resolve(regulator, confirmed.case_id, CaseStatus.CONFIRMED, "Confirmed.")
    desk.resolve(regulator, rejected.case_id, CaseStatus.REJECTED, "Not substantiated.")
    second = desk.resolve(regulator, upheld.case_id, CaseStatus.UPHELD, "Wrongly labelled.")

    expected = [
        GoldOutcome(NUMBER, True, "fraud.impersonation", first.resolved_at, confirmed.case_id),
        GoldOutcome(OTHER_NUMBER, False, "legitimate", second.resolved_at, upheld.case_id),
    ]
    # Oldest decision first; two in the same millisecond (a fast machine) in case-id order.
    assert desk.gold_outcomes() == sorted(expected, key=lambda g: (g.decided_at, g.case_id))


def test_the_latest_decision_about_a_number_is_its_gold_truth(desk, federation, labelled, member):
    regulator = member("regulator")
    confirmed = desk.file_complaint(NUMBER, "fraud", None, TEXT)
    desk.resolve(regulator, confirmed.case_id, CaseStatus.CONFIRMED, "Confirmed.")
    other = desk.file_complaint(OTHER_NUMBER, "marketing", None, TEXT)
    desk.resolve(regulator, other.case_id, CaseStatus.CONFIRMED, "Confirmed.")
    labelled(federation.carrier, NUMBER, "fraud")
    dispute = desk.file_dispute(NUMBER, CONTACT, EVIDENCE)  # the number changed hands, say
    desk.resolve(regulator, dispute.case_id, CaseStatus.UPHELD, "Now legitimate.")

    assert desk.gold_by_number() == {NUMBER: False, OTHER_NUMBER: True}


def test_there_is_no_gold_before_a_decision(desk):
    desk.file_complaint(NUMBER, "fraud", None, TEXT)
    desk.file_dispute(NUMBER, CONTACT, EVIDENCE)

    assert desk.gold_outcomes() == []


# --- personal data stays out of the logs ------------------------------------------------------
def test_no_personal_data_reaches_the_logs(desk, federation, labelled, member, caplog):
    labelled(federation.carrier, NUMBER, "fraud")
    caplog.set_level(logging.DEBUG)
    complaint = desk.file_complaint(NUMBER, "fraud", None, TEXT, filed_by="user-17", via="blocker-app")
    dispute = desk.file_dispute(NUMBER, CONTACT, EVIDENCE, filed_by="owner-3")
    desk.resolve(member("regulator"), complaint.case_id, CaseStatus.CONFIRMED, "Confirmed.")
    desk.resolve(member("regulator"), dispute.case_id, CaseStatus.UPHELD, "Upheld.")
    with pytest.raises(InvalidArgument):
        desk.file_dispute(NUMBER, CONTACT, "x" * 5000)

    logged = "\n".join(f"{r.getMessage()} {vars(r)}" for r in caplog.records)
    assert any(r.name == "numrep.cases" for r in caplog.records)
    for secret in (TEXT, CONTACT, EVIDENCE, "user-17", "owner-3", complaint.case_id, dispute.case_id):
        assert secret not in logged


def test_a_desk_is_one_per_exchange(server, desk):
    assert CaseDesk.of(server.exchange) is desk
    assert isinstance(desk.get(desk.file_complaint(NUMBER, "fraud", None, TEXT).case_id), Case)
