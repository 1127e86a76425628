"""Bad input to ConsentService, generated: whatever a participant sends, every
RPC answers with a specific status or per-item reason (never INTERNAL or
UNKNOWN) and a rejected record stores nothing."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from numrep.config import ServerConfig
from numrep.core.model import Role
from numrep.limits import Rate, RateLimits
from numrep.server import build_exchange, start_server
from numrep.signing.keys import generate_identity
from numrep.signing.tokens import mint_token
from numrep.v1 import consent_pb2, consent_pb2_grpc, publish_pb2

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
NEVER = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}
text = st.text(max_size=80) | st.binary(max_size=40).map(lambda b: b.decode("latin-1"))
numbers = text | st.from_regex(r"\+?[0-9 ()\-.]{0,20}", fullmatch=True)
jws_like = st.builds(lambda a, b, c: f"{a}.{b}.{c}", text, text, text) | text


@pytest.fixture(scope="module")
def target(loop_thread, tmp_path_factory: pytest.TempPathFactory):
    data: Path = tmp_path_factory.mktemp("consent-fuzz")
    exchange = build_exchange(ServerConfig(data_dir=data))
    unlimited = RateLimits(rates={key: Rate(1e9, 1e9) for key in RateLimits().rates})
    exchange.config = dataclasses.replace(exchange.config, rate_limits=unlimited)
    running = loop_thread.run(start_server(ServerConfig(listen="127.0.0.1:0", data_dir=data), exchange))
    carrier = generate_identity("carrier-f", Role.CARRIER)
    exchange.register_participant("carrier-f", Role.CARRIER, "", [json.dumps(carrier.public_jwk())])
    channel = grpc.insecure_channel(running.address)
    yield exchange, consent_pb2_grpc.ConsentServiceStub(channel), carrier
    channel.close()
    loop_thread.run(running.stop(0))
    exchange.consent.store.close()
    exchange.store.close()


def _call(method, request, identity):
    try:
        return grpc.StatusCode.OK, method(request, metadata=[("authorization", f"Bearer {mint_token(identity)}")], timeout=10)
    except grpc.RpcError as exc:
        assert exc.code() not in NEVER, (exc.code(), exc.details())
        assert exc.details(), "a refusal must say what is wrong"
        return exc.code(), None


@FUZZ
@given(records=st.lists(jws_like, min_size=1, max_size=5))
def test_any_records_are_rejected_item_by_item_and_store_nothing(target, records):
    exchange, stub, carrier = target
    for method, request in ((stub.RegisterConsent, consent_pb2.RegisterConsentRequest(records=records)),
                            (stub.RecordRefusal, consent_pb2.RecordRefusalRequest(refusals=records))):
        code, response = _call(method, request, carrier)
        assert code == grpc.StatusCode.OK
        assert [r.index for r in response.results] == list(range(len(records)))
        assert all(r.status == publish_pb2.ITEM_STATUS_REJECTED and r.reason and r.message for r in response.results)
        assert all(exchange.consent.store.get_record(r.id) is None for r in response.results if r.id)


@FUZZ
@given(caller=numbers, callee=numbers, category=text, ids=st.lists(text, max_size=5))
def test_any_state_query_or_revocation_gets_a_specific_answer(target, caller, callee, category, ids):
    _, stub, carrier = target
    code, _ = _call(stub.GetConsentState, consent_pb2.GetConsentStateRequest(caller=caller, callee=callee, category=category), carrier)
    assert code in {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT}
    code, _ = _call(stub.RevokeConsent, consent_pb2.RevokeConsentRequest(record_ids=ids), carrier)
    assert code in {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT}
