"""CaseService end to end: real gRPC, real keys, each store. Each test states one
behaviour of complaints and disputes as a participant sees it."""

from __future__ import annotations

import logging
import queue
import threading
from datetime import datetime, timedelta, timezone

import grpc
import pytest

from numrep.config import ServerConfig, parse_services
from numrep.core.model import Role
from numrep.server import start_server
from numrep.signing.keys import generate_identity
from numrep.signing.labels import sign_label
from numrep.signing.tokens import mint_token
from numrep.v1 import cases_pb2
from numrep_client import ExchangeClient, ExchangeError

from numrep_testkit import NUMBER, OTHER_NUMBER, bearer, public_jwk_text

TEXT = "Called four times tonight, hung up each time I answered."
CONTACT = "Front desk of Example Clinic, +1 202 555 0111"
EVIDENCE = "Business registration 4711; the calls are appointment reminders."

COMPLAINT, DISPUTE = cases_pb2.CASE_KIND_COMPLAINT, cases_pb2.CASE_KIND_DISPUTE
OPEN, CONFIRMED = cases_pb2.CASE_STATUS_OPEN, cases_pb2.CASE_STATUS_CONFIRMED
REJECTED, UPHELD = cases_pb2.CASE_STATUS_REJECTED, cases_pb2.CASE_STATUS_UPHELD


def fails_with(code: grpc.StatusCode, call, *args, **kwargs) -> str:
    with pytest.raises(ExchangeError) as caught:
        call(*args, **kwargs)
    assert caught.value.code == code, caught.value.details
    return caught.value.details


def test_an_app_files_a_complaint_and_gets_a_case_id_to_ask_with(federation, connect):
    app = connect(federation.app)
    occurred = datetime.now(timezone.utc) - timedelta(hours=1)

    filed = app.file_complaint("(202) 555-0143", "harassment.silent", TEXT, occurred, reporter_id="user-9")

    assert filed.case_id and filed.kind == COMPLAINT and filed.status == OPEN
    assert (filed.number, filed.category) == (NUMBER, "harassment.silent")
    assert filed.deadline.ToDatetime() - filed.filed_at.ToDatetime() == timedelta(days=30)
    assert not filed.HasField("resolved_at") and not filed.overdue and filed.outcome == ""
    assert abs(filed.occurred_at.ToDatetime(tzinfo=timezone.utc) - occurred) < timedelta(milliseconds=1)
    assert not filed.HasField("particulars")
    assert connect(federation.carrier).get_case(filed.case_id) == filed


def test_the_complainant_reads_the_regulators_outcome_by_case_id(federation, connect):
    app, regulator = connect(federation.app), connect(federation.regulator)
    filed = app.file_complaint(NUMBER, "fraud.impersonation", TEXT)

    regulator.resolve_case(filed.case_id, CONFIRMED, "Confirmed; the number is being blocked.")
    seen = app.get_case(filed.case_id)

    assert (seen.status, seen.outcome) == (CONFIRMED, "Confirmed; the number is being blocked.")
    assert seen.HasField("resolved_at") and seen.age_seconds >= 0


def test_an_unknown_case_id_is_not_found(federation, connect):
    details = fails_with(grpc.StatusCode.NOT_FOUND, connect(federation.app).get_case, "Zq3-no-such-case-xxxxxxx")
    assert details == "no case has this id"


@pytest.mark.parametrize(("number", "category", "text", "words"), [
    ("555", "fraud", TEXT, "invalid phone number"),
    (NUMBER, "fraud.nonsense", TEXT, "unknown category"),
    (NUMBER, "fraud", "", "complaint text is empty"),
    (NUMBER, "fraud", "x" * 2001, "complaint text is longer than 2000 characters"),
])
def test_a_bad_complaint_is_invalid_argument_and_stores_nothing(federation, connect, number, category, text, words):
    details = fails_with(grpc.StatusCode.INVALID_ARGUMENT, connect(federation.app).file_complaint, number, category, text)

    assert words in details
    assert connect(federation.regulator).list_cases() == []


def test_a_bad_dispute_is_invalid_argument_and_stores_nothing(federation, connect):
    details = fails_with(grpc.StatusCode.INVALID_ARGUMENT, connect(federation.carrier).file_dispute, NUMBER, "", EVIDENCE)

    assert details == "contact is empty"
    assert connect(federation.regulator).list_cases() == []


def test_invalid_utf8_in_a_complaint_is_refused(federation, raw):
    """A string field that is not UTF-8 cannot even be parsed: the request never
    reaches the desk. (gRPC answers a request it cannot decode with UNKNOWN before
    any numrep code runs; the case desk refuses invalid UTF-8 from Python callers
    itself, see test_case_rules.)"""
    body = cases_pb2.FileComplaintRequest(number=NUMBER, category="fraud", text="x").SerializeToString()
    broken = body.replace(b"\x22\x01x", b"\x22\x02\xc3\x28")  # field 4 (text): an invalid two-byte sequence
    assert broken != body
    channel = raw.channel
    call = channel.unary_unary("/numrep.v1.CaseService/FileComplaint", request_serializer=lambda b: b,
                               response_deserializer=cases_pb2.Case.FromString)
    with pytest.raises(grpc.RpcError) as caught:
        call(broken, metadata=bearer(mint_token(federation.app)), timeout=10)

    assert "bad UTF-8" in caught.value.details()
    regulator_view = raw.call("CaseService/ListCases", metadata=bearer(mint_token(federation.regulator)))
    assert list(regulator_view.response.cases) == []


@pytest.mark.parametrize("role", ["carrier", "handset", "app"])
def test_only_the_regulator_lists_and_resolves(federation, connect, role):
    caller = connect(getattr(federation, role))
    filed = caller.file_complaint(NUMBER, "fraud", TEXT)

    assert "may not call CaseService/ListCases" in fails_with(grpc.StatusCode.PERMISSION_DENIED, caller.list_cases)
    fails_with(grpc.StatusCode.PERMISSION_DENIED, caller.resolve_case, filed.case_id, CONFIRMED, "self-service")
    assert caller.get_case(filed.case_id).status == OPEN


def test_the_regulator_lists_cases_with_their_particulars(federation, connect):
    app, regulator = connect(federation.app), connect(federation.regulator)
    complaint = app.file_complaint(NUMBER, "fraud", TEXT, reporter_id="user-9")
    dispute = connect(federation.carrier).file_dispute(OTHER_NUMBER, CONTACT, EVIDENCE)

    listed = {c.case_id: c for c in regulator.list_cases()}

    assert set(listed) == {complaint.case_id, dispute.case_id}
    assert listed[complaint.case_id].particulars.text == TEXT
    assert listed[complaint.case_id].particulars.filed_via == federation.app.participant_id
    assert listed[complaint.case_id].particulars.filed_by not in ("", "user-9")
    assert (listed[dispute.case_id].particulars.contact, listed[dispute.case_id].particulars.evidence) == (CONTACT, EVIDENCE)
    assert regulator.get_case(dispute.case_id).particulars.contact == CONTACT
    assert [c.case_id for c in regulator.list_cases(kind=DISPUTE)] == [dispute.case_id]
    assert [c.case_id for c in regulator.list_cases(status=CONFIRMED)] == []


@pytest.mark.parametrize("limit", [-1, 1001])
def test_a_list_limit_out_of_range_is_invalid_argument(federation, connect, limit):
    fails_with(grpc.StatusCode.INVALID_ARGUMENT, connect(federation.regulator).list_cases, limit=limit)


def test_resolving_twice_is_failed_precondition(federation, connect):
    regulator = connect(federation.regulator)
    filed = connect(federation.app).file_complaint(NUMBER, "fraud", TEXT)
    regulator.resolve_case(filed.case_id, REJECTED, "Not enough to go on.")

    details = fails_with(grpc.StatusCode.FAILED_PRECONDITION, regulator.resolve_case, filed.case_id, CONFIRMED, "On second thought.")

    assert "rejected already" in details
    assert regulator.get_case(filed.case_id).status == REJECTED


@pytest.mark.parametrize("outcome", [cases_pb2.CASE_STATUS_UNSPECIFIED, OPEN, UPHELD, 99])
def test_resolving_with_an_outcome_the_kind_has_not_is_invalid_argument(federation, connect, outcome):
    filed = connect(federation.app).file_complaint(NUMBER, "fraud", TEXT)

    fails_with(grpc.StatusCode.INVALID_ARGUMENT, connect(federation.regulator).resolve_case, filed.case_id, outcome, "Done.")


def test_resolving_an_unknown_case_is_not_found(federation, connect):
    fails_with(grpc.StatusCode.NOT_FOUND, connect(federation.regulator).resolve_case, "no-such-case", CONFIRMED, "Done.")


def test_personal_data_is_returned_to_the_regulator_only(federation, connect):
    carrier, handset = connect(federation.carrier), connect(federation.handset)
    [label] = carrier.publish([_label(federation.carrier, NUMBER)])
    dispute = handset.file_dispute(NUMBER, CONTACT, EVIDENCE)
    complaint = handset.file_complaint(NUMBER, "fraud", TEXT)

    answers = [dispute, complaint, carrier.get_case(dispute.case_id), carrier.get_case(complaint.case_id), *carrier.list_disputes()]

    assert [c.case_id for c in carrier.list_disputes()] == [dispute.case_id]
    for answer in answers:
        assert not answer.HasField("particulars")
        text = str(answer)
        assert CONTACT not in text and EVIDENCE not in text and TEXT not in text


def test_publishers_list_the_disputes_of_their_own_labels_only(federation, connect):
    carrier, app, handset = connect(federation.carrier), connect(federation.app), connect(federation.handset)
    [carrier_label] = carrier.publish([_label(federation.carrier, NUMBER)])
    [app_label] = app.publish([_label(federation.app, OTHER_NUMBER, "marketing")])
    on_carrier = handset.file_dispute(NUMBER, CONTACT, EVIDENCE)
    on_app = handset.file_dispute(OTHER_NUMBER, CONTACT, EVIDENCE)

    carrier_sees, app_sees = carrier.list_disputes(), app.list_disputes()

    assert [(d.case_id, list(d.label_ids)) for d in carrier_sees] == [(on_carrier.case_id, [carrier_label.id])]
    assert [(d.case_id, list(d.label_ids)) for d in app_sees] == [(on_app.case_id, [app_label.id])]
    assert handset.list_disputes() == []
    assert carrier_sees[0].deadline.ToDatetime() - carrier_sees[0].filed_at.ToDatetime() == timedelta(days=14)


def test_no_personal_data_reaches_the_server_logs(federation, connect, caplog):
    caplog.set_level(logging.DEBUG)
    app, regulator = connect(federation.app), connect(federation.regulator)
    complaint = app.file_complaint(NUMBER, "fraud", TEXT, reporter_id="user-9")
    dispute = app.file_dispute(NUMBER, CONTACT, EVIDENCE)
    regulator.resolve_case(complaint.case_id, CONFIRMED, "Confirmed.")
    regulator.list_cases()
    fails_with(grpc.StatusCode.INVALID_ARGUMENT, app.file_dispute, NUMBER, CONTACT, EVIDENCE * 100)

    logged = "\n".join(f"{r.getMessage()} {vars(r)}" for r in caplog.records)
    for secret in (TEXT, CONTACT, EVIDENCE, "user-9", complaint.case_id, dispute.case_id):
        assert secret not in logged


def _label(identity, number: str, category: str = "fraud") -> str:
    return sign_label(identity, number, category, 1.0)


def test_the_case_service_runs_alone_when_selected_with_services(loop_thread, tmp_path):
    config = ServerConfig(listen="127.0.0.1:0", data_dir=tmp_path / "exchange", services=parse_services("cases"))
    running = loop_thread.run(start_server(config))
    try:
        regulator = generate_identity("ftc", Role.REGULATOR, "EdDSA")
        running.exchange.register_participant("ftc", Role.REGULATOR, "Regulator", [public_jwk_text(regulator)])
        with ExchangeClient(running.address, regulator) as client:
            filed = client.file_complaint(NUMBER, "fraud", TEXT)
            assert client.get_case(filed.case_id).particulars.text == TEXT
            fails_with(grpc.StatusCode.UNIMPLEMENTED, client.lookup, NUMBER)
    finally:
        loop_thread.run(running.stop(0))


def test_publishers_watch_disputes_of_their_labels_as_they_are_filed_and_resolved(federation, connect):
    carrier, handset, regulator = connect(federation.carrier), connect(federation.handset), connect(federation.regulator)
    [label] = carrier.publish([_label(federation.carrier, NUMBER)])
    earlier = handset.file_dispute(NUMBER, CONTACT, EVIDENCE)
    events: queue.Queue = queue.Queue()

    def watch() -> None:
        for case in connect(federation.carrier).watch_disputes(follow=True):
            events.put(case)
            if case.status == UPHELD:
                return  # closing the iterator cancels the stream

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    first = events.get(timeout=15)
    assert (first.case_id, first.status, list(first.label_ids)) == (earlier.case_id, OPEN, [label.id])

    handset.file_dispute(OTHER_NUMBER, CONTACT, EVIDENCE)  # no label of the carrier's: not shown
    later = handset.file_dispute(NUMBER, CONTACT, EVIDENCE)
    assert (events.get(timeout=15).case_id) == later.case_id
    regulator.resolve_case(later.case_id, UPHELD, "Withdrawn.")
    changed = events.get(timeout=15)
    watcher.join(15)

    assert (changed.case_id, changed.status, changed.outcome) == (later.case_id, UPHELD, "Withdrawn.")
    assert not watcher.is_alive() and events.empty()
    assert not changed.HasField("particulars")


def test_a_followed_watch_ends_unauthenticated_once_the_key_that_opened_it_is_revoked(server, federation, connect):
    carrier, handset = connect(federation.carrier), connect(federation.handset)
    carrier.publish([_label(federation.carrier, NUMBER)])
    handset.file_dispute(NUMBER, CONTACT, EVIDENCE)
    events: queue.Queue = queue.Queue()

    def watch() -> None:
        try:
            for case in connect(federation.carrier).watch_disputes(follow=True):
                events.put(case)
        except ExchangeError as exc:
            events.put(exc)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    assert isinstance(events.get(timeout=15), cases_pb2.Case)
    server.exchange.revoke_key(None, federation.carrier.participant_id, federation.carrier.kid)
    ended = events.get(timeout=15)
    watcher.join(15)

    assert isinstance(ended, ExchangeError), ended
    assert ended.code == grpc.StatusCode.UNAUTHENTICATED
    assert "which opened this stream, is revoked" in ended.details


def test_watching_without_follow_sends_the_current_disputes_and_ends(federation, connect):
    carrier, handset = connect(federation.carrier), connect(federation.handset)
    carrier.publish([_label(federation.carrier, NUMBER)])
    first = handset.file_dispute(NUMBER, CONTACT, EVIDENCE)
    second = handset.file_dispute(NUMBER, CONTACT, EVIDENCE)

    assert [c.case_id for c in carrier.watch_disputes()] == [first.case_id, second.case_id]
    assert list(handset.watch_disputes()) == []
