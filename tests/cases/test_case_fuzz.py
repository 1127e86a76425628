"""Bad case input, generated: whatever a participant sends to CaseService, it is
answered OK or INVALID_ARGUMENT / NOT_FOUND with a message (never INTERNAL or
UNKNOWN), a refused filing stores nothing, and an accepted one reads back."""

from __future__ import annotations

import json
from pathlib import Path

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from numrep.cases import CaseDesk
from numrep.config import ServerConfig
from numrep.core.model import Participant, Role
from numrep.core.pseudonym import Pseudonymizer
from numrep.exchange import Exchange
from numrep.server import start_server
from numrep.signing.keys import generate_identity
from numrep.signing.tokens import mint_token
from numrep.store.sqlite import SqliteStore
from numrep.v1 import cases_pb2, cases_pb2_grpc

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
REGULATOR = Participant("fuzz-regulator", Role.REGULATOR)
NEVER = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}
text = st.text(max_size=60) | st.binary(max_size=40).map(lambda b: b.decode("latin-1")) | st.text(min_size=1990, max_size=2010)
numbers = st.sampled_from(["+12025550143", "(202) 555-0188", "2025550199"]) | st.from_regex(r"\+?[0-9 ()\-.]{0,20}", fullmatch=True)
categories = st.sampled_from(["fraud", "marketing.loans", "harassment.silent", "legitimate", "reassigned", "", "fraud.nope"]) | st.text(max_size=20)


@pytest.fixture(scope="module")
def target(loop_thread, tmp_path_factory: pytest.TempPathFactory):
    data: Path = tmp_path_factory.mktemp("case-fuzz")
    exchange = Exchange(SqliteStore(data / "db.sqlite3"), Pseudonymizer(b"f" * 32))
    running = loop_thread.run(start_server(ServerConfig(listen="127.0.0.1:0", data_dir=data, services=("cases",)), exchange))
    app = generate_identity("app-f", Role.APP_VENDOR)
    exchange.register_participant("app-f", Role.APP_VENDOR, "", [json.dumps(app.public_jwk())])
    channel = grpc.insecure_channel(running.address)
    yield cases_pb2_grpc.CaseServiceStub(channel), app, CaseDesk.of(exchange)
    channel.close()
    loop_thread.run(running.stop(0))
    CaseDesk.release(exchange)
    exchange.store.close()


def _call(method, request, identity):
    try:
        return grpc.StatusCode.OK, method(request, metadata=[("authorization", f"Bearer {mint_token(identity)}")], timeout=10)
    except grpc.RpcError as exc:
        assert exc.code() not in NEVER, (exc.code(), exc.details())
        assert exc.details(), "a refusal must say what is wrong"
        return exc.code(), None


def _stored(desk: CaseDesk) -> int:
    return len(desk.list(limit=1000))


@FUZZ
@given(number=numbers, category=categories, body=text, reporter=text)
def test_a_complaint_of_anything_is_filed_whole_or_refused_storing_nothing(target, number, category, body, reporter):
    stub, app, desk = target
    before = _stored(desk)

    code, case = _call(stub.FileComplaint, cases_pb2.FileComplaintRequest(number=number, category=category, text=body,
                                                                           reporter_id=reporter), app)

    assert code in {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT}
    if code is grpc.StatusCode.OK:
        assert _stored(desk) == before + 1
        assert desk.details(REGULATOR, case.case_id).particulars.text == body.strip()
    else:
        assert _stored(desk) == before


@FUZZ
@given(number=numbers, contact=text, evidence=text)
def test_a_dispute_of_anything_is_filed_whole_or_refused_storing_nothing(target, number, contact, evidence):
    stub, app, desk = target
    before = _stored(desk)

    code, case = _call(stub.FileDispute, cases_pb2.FileDisputeRequest(number=number, contact=contact, evidence=evidence), app)

    assert code in {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT}
    assert _stored(desk) == before + (1 if code is grpc.StatusCode.OK else 0)


@FUZZ
@given(case_id=text)
def test_asking_for_any_case_id_is_not_found_or_invalid(target, case_id):
    stub, app, _ = target

    code, _ = _call(stub.GetCase, cases_pb2.GetCaseRequest(case_id=case_id), app)

    assert code in {grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT}
