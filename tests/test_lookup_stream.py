"""LookupStream, end to end on both stores: a carrier's lookups over one stream,
authenticated when it opens, each answered as a Lookup call answers it and
matched to its lookup by id. A lookup that fails fails only its own answer; what
ends the stream (a bad opening, a revoked key, an expired stream, an oversized
request) ends it with the status a Lookup call would get and a message saying why."""

from __future__ import annotations

import dataclasses
import queue
import time
from datetime import timedelta
from typing import Iterator

import grpc
import pytest

from numrep.limits import RateLimits
from numrep.signing.labels import sign_label
from numrep.signing.sessions import mint_call_token
from numrep.signing.tokens import mint_token
from numrep.v1 import common_pb2, lookup_pb2, lookup_pb2_grpc, registry_pb2

from numrep_client._sessions import session_from_pb
from numrep_testkit import NUMBER, OTHER_NUMBER, bearer, numbers


def request(*lookups: tuple[int, str]) -> lookup_pb2.LookupStreamRequest:
    return lookup_pb2.LookupStreamRequest(lookups=[
        lookup_pb2.StreamLookup(id=lookup_id, request=lookup_pb2.LookupRequest(number=number)) for lookup_id, number in lookups
    ])


@pytest.fixture
def stub(server) -> Iterator[lookup_pb2_grpc.LookupServiceStub]:
    channel = grpc.insecure_channel(server.address)
    yield lookup_pb2_grpc.LookupServiceStub(channel)
    channel.close()


def answers_of(responses) -> dict[int, lookup_pb2.StreamAnswer]:
    """Every answer by its lookup's id; an id answered twice fails the test."""
    found: dict[int, lookup_pb2.StreamAnswer] = {}
    for response in responses:
        for answer in response.answers:
            assert answer.id not in found, f"lookup {answer.id} answered twice"
            found[answer.id] = answer
    return found


def without(verdict: common_pb2.Verdict, *fields: str) -> common_pb2.Verdict:
    """``verdict`` less ``fields``: what differs between two answers a moment apart."""
    copy = common_pb2.Verdict()
    copy.CopyFrom(verdict)
    for name in fields:
        copy.ClearField(name)
    return copy


class Conversation:
    """A stream driven one request at a time: ``send`` a request, ``next`` response."""

    def __init__(self, stub: lookup_pb2_grpc.LookupServiceStub, metadata) -> None:
        self._outbox: queue.Queue = queue.Queue()
        self._call = stub.LookupStream(iter(self._outbox.get, None), metadata=metadata, timeout=20)

    def send(self, message: lookup_pb2.LookupStreamRequest) -> None:
        self._outbox.put(message)

    def next(self) -> lookup_pb2.LookupStreamResponse:
        return next(self._call)

    def close(self) -> None:
        self._outbox.put(None)


def test_each_lookup_is_answered_as_a_lookup_call_answers_it_matched_by_its_id(server, federation, connect, stub):
    carrier = connect(federation.carrier)
    carrier.publish([sign_label(federation.carrier, NUMBER, "fraud.impersonation", 0.9)])

    found = answers_of(stub.LookupStream(iter([request((7, NUMBER), (8, OTHER_NUMBER), (9, "(202) 555-0143"))]),
                                         metadata=bearer(mint_token(federation.carrier)), timeout=10))

    assert set(found) == {7, 8, 9}
    assert all(answer.error_code == 0 and answer.verdict.HasField("expires_at") for answer in found.values())
    stored = carrier.lookup(NUMBER)
    assert stored.action in (common_pb2.ACTION_WARN, common_pb2.ACTION_BLOCK)
    assert without(found[7].verdict, "expires_at") == without(stored, "expires_at")
    assert without(found[9].verdict, "expires_at") == without(stored, "expires_at")
    # an unknown number's verdict is computed at each asking
    assert without(found[8].verdict, "expires_at", "computed_at") == without(carrier.lookup(OTHER_NUMBER), "expires_at", "computed_at")


def test_a_malformed_number_fails_only_its_own_answer(federation, stub):
    found = answers_of(stub.LookupStream(iter([request((1, "12"), (2, NUMBER)), request((3, "not a number"))]),
                                         metadata=bearer(mint_token(federation.carrier)), timeout=10))

    assert found[1].error_code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert "invalid phone number '12'" in found[1].error_message
    assert not found[1].HasField("verdict")
    assert found[2].error_code == 0 and found[2].verdict.number == NUMBER
    assert found[3].error_code == grpc.StatusCode.INVALID_ARGUMENT.value[0]


@pytest.mark.parametrize("metadata, says", [
    ((), "missing bearer token"),
    (bearer("not.a.token"), "bearer token rejected"),
])
def test_a_stream_without_a_valid_token_is_refused_and_answers_nothing(federation, stub, metadata, says):
    with pytest.raises(grpc.RpcError) as refused:
        answers_of(stub.LookupStream(iter([request((1, NUMBER))]), metadata=metadata, timeout=10))

    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert says in refused.value.details()


def test_a_token_opens_one_stream_only(federation, stub):
    token = mint_token(federation.carrier)
    assert answers_of(stub.LookupStream(iter([request((1, NUMBER))]), metadata=bearer(token), timeout=10))[1].error_code == 0

    with pytest.raises(grpc.RpcError) as replayed:
        answers_of(stub.LookupStream(iter([request((1, NUMBER))]), metadata=bearer(token), timeout=10))

    assert replayed.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "replayed" in replayed.value.details()


def test_a_call_session_opens_a_stream(federation, raw, stub):
    opened = raw.call("RegistryService/OpenSession", registry_pb2.OpenSessionRequest(), bearer(mint_token(federation.carrier)))
    session = session_from_pb(opened.response)

    found = answers_of(stub.LookupStream(iter([request((1, NUMBER))]), metadata=bearer(mint_call_token(session)), timeout=10))

    assert found[1].error_code == 0 and found[1].verdict.number == NUMBER


def test_each_lookup_counts_against_the_callers_lookup_rate(server, federation, stub):
    config = server.exchange.config
    server.exchange.config = dataclasses.replace(config, rate_limits=RateLimits().with_overrides("carrier.lookup=1/4"))
    try:
        found = answers_of(stub.LookupStream(iter([request(*((i, NUMBER) for i in range(1, 11)))]),
                                             metadata=bearer(mint_token(federation.carrier)), timeout=10))
    finally:
        server.exchange.config = config

    assert set(found) == set(range(1, 11))
    answered = [a for a in found.values() if a.error_code == 0]
    over = [a for a in found.values() if a.error_code == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]]
    assert 1 <= len(answered) <= 4  # the burst of 4, less the stream's own opening, plus what refilled meanwhile
    assert len(answered) + len(over) == 10
    assert "over its lookup rate of 1/s" in over[0].error_message
    assert all(0 < a.retry_after_ms <= 1000 for a in over)  # what a Lookup call's retry-after-ms trailer says
    assert all(a.retry_after_ms == 0 for a in answered)


def test_a_request_with_more_lookups_than_a_batch_holds_ends_the_stream(server, federation, stub):
    most = server.exchange.config.limits.max_batch_lookup

    with pytest.raises(grpc.RpcError) as refused:
        answers_of(stub.LookupStream(iter([request(*((i, NUMBER) for i in range(most + 1)))]),
                                     metadata=bearer(mint_token(federation.carrier)), timeout=10))

    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"{most + 1} lookups in one request; the maximum is {most}" in refused.value.details()


def test_a_request_larger_than_the_message_limit_is_refused(federation, stub):
    with pytest.raises(grpc.RpcError) as refused:
        answers_of(stub.LookupStream(iter([request((1, "1" * (5 * 1024 * 1024)))]),
                                     metadata=bearer(mint_token(federation.carrier)), timeout=10))

    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_answers_ready_together_leave_together(federation, stub):
    asked = numbers(300)

    responses = list(stub.LookupStream(iter([request(*enumerate(asked, start=1))]),
                                       metadata=bearer(mint_token(federation.carrier)), timeout=10))

    found = answers_of(responses)
    assert {lookup_id: answer.verdict.number for lookup_id, answer in found.items()} == dict(enumerate(asked, start=1))
    assert len(responses) < len(asked)


def test_the_stream_ends_once_the_key_that_opened_it_is_revoked(server, federation, stub):
    talk = Conversation(stub, bearer(mint_token(federation.carrier)))
    talk.send(request((1, NUMBER)))
    assert answers_of([talk.next()])[1].error_code == 0

    server.exchange.revoke_key(None, federation.carrier.participant_id, federation.carrier.kid)
    time.sleep(1.1)  # the opening key is checked again at most once a second
    talk.send(request((2, NUMBER)))

    with pytest.raises(grpc.RpcError) as ended:
        talk.next()
    assert ended.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "which opened this stream, is revoked or no longer registered" in ended.value.details()
    talk.close()


def test_the_stream_ends_once_open_longer_than_the_exchange_allows(server, federation, stub):
    config = server.exchange.config
    lifetime = 1.0  # the first request must come within it, on a busy machine too
    server.exchange.config = dataclasses.replace(config, lookup_stream_lifetime=timedelta(seconds=lifetime))
    try:
        talk = Conversation(stub, bearer(mint_token(federation.carrier)))
        talk.send(request((1, NUMBER)))
        assert answers_of([talk.next()])[1].error_code == 0
        time.sleep(lifetime + 0.1)
        talk.send(request((2, NUMBER)))

        with pytest.raises(grpc.RpcError) as ended:
            talk.next()
        talk.close()
    finally:
        server.exchange.config = config

    assert ended.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "open a new one" in ended.value.details()


def test_a_stream_opened_in_a_call_session_ends_with_the_session(federation, raw, stub):
    opened = raw.call("RegistryService/OpenSession", registry_pb2.OpenSessionRequest(lifetime_seconds=2),
                      bearer(mint_token(federation.carrier)))
    talk = Conversation(stub, bearer(mint_call_token(session_from_pb(opened.response))))
    talk.send(request((1, NUMBER)))
    assert answers_of([talk.next()])[1].error_code == 0

    time.sleep(2.1)
    talk.send(request((2, NUMBER)))

    with pytest.raises(grpc.RpcError) as ended:
        talk.next()
    talk.close()
    assert ended.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "or as the call session or client certificate that opened it lasts" in ended.value.details()
