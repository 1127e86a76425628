"""A BatchLookup response is sent as bytes: each stored verdict's encoding, made
once, joined with the number asked and this call's cache expiry. What a carrier
receives must be exactly what Lookup answers for each number, also where the
stored encoding cannot be used (a revoked-key note, a call context, an unknown or
invalid number). A single Lookup of a stored verdict is sent the same way, and
must parse as the verdict the exchange answers. The consent half of a call
context is covered over a server, with its ledger, in tests/consent."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import grpc
from hypothesis import given, settings, strategies as st

from numrep.api.convert import verdict_to_pb
from numrep.api.lookup import LookupServicer
from numrep.api.wire import VerdictEncodings, batch_result, varint
from numrep.core.model import Role
from numrep.core.pseudonym import Pseudonymizer
from numrep.exchange import Exchange
from numrep.signing.keys import generate_identity
from numrep.signing.labels import sign_label
from numrep.store.sqlite import SqliteStore
from numrep.telemetry import Telemetry
from numrep.v1 import common_pb2, lookup_pb2

LISTED = "+12025550143"
REVOKED_SIGNER = "+12025550144"
UNKNOWN = "+12025550145"
SPOOFED = "not-a-passport;info=<https://cert.example/x.pem>"  # a caller-ID header that fails verification


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(timezone.utc).replace(microsecond=250_000)

    def __call__(self) -> datetime:
        return self.now


def _exchange(tmp_path: Path, clock: Clock) -> Exchange:
    exchange = Exchange(SqliteStore(tmp_path / "db.sqlite3"), Pseudonymizer(b"b" * 32), clock=clock)
    honest = generate_identity("carrier-honest", Role.CARRIER, "EdDSA")
    rotating = generate_identity("carrier-rotating", Role.CARRIER, "ES256")
    for identity in (honest, rotating):
        exchange.register_participant(identity.participant_id, identity.role, "", [json.dumps(identity.public_jwk())])
    publish = lambda identity, number: exchange.publish(exchange.get_participant(identity.participant_id), [sign_label(identity, number, "fraud")])  # noqa: E731
    publish(honest, LISTED)
    publish(rotating, REVOKED_SIGNER)
    successor = generate_identity("carrier-rotating", Role.CARRIER, "ES256")
    exchange.add_key(None, rotating.participant_id, json.dumps(successor.public_jwk()))
    exchange.revoke_key(None, rotating.participant_id, rotating.kid)  # after its label was accepted: noted, still counts
    return exchange


def _request(number: str, identity_header: str = "") -> lookup_pb2.LookupRequest:
    request = lookup_pb2.LookupRequest(number=number)
    request.context.identity_header = identity_header
    return request


def _sent(servicer: LookupServicer, requests: list[lookup_pb2.LookupRequest]) -> lookup_pb2.BatchLookupResponse:
    response, _ = servicer._batch_response(requests)
    return lookup_pb2.BatchLookupResponse.FromString(response)


def test_every_result_is_what_lookup_answers_for_its_number(tmp_path: Path) -> None:
    clock = Clock()
    exchange = _exchange(tmp_path, clock)
    servicer = LookupServicer(exchange, Telemetry.disabled())
    asked = [_request(LISTED), _request(REVOKED_SIGNER), _request(UNKNOWN), _request("call me maybe"),
             _request(LISTED), _request(LISTED, identity_header=SPOOFED)]

    sent = _sent(servicer, asked)

    assert [r.input for r in sent.results] == [r.number for r in asked]
    for index in (0, 1, 2, 4):
        assert sent.results[index].verdict == verdict_to_pb(exchange.lookup(asked[index].number)), index
    assert "revoked" in sent.results[1].verdict.contributions[0].explanation
    invalid = sent.results[3]
    assert not invalid.HasField("verdict")
    assert invalid.error_code == grpc.StatusCode.INVALID_ARGUMENT.value[0] and "not a phone number" in invalid.error_message
    assert sent.results[5].verdict == verdict_to_pb(exchange.lookup(LISTED, SPOOFED))
    assert sent.results[5].verdict.caller_id_authentication  # this call's STIR/SHAKEN result, not the stored verdict


def test_the_basic_view_is_the_full_answer_without_contributions_and_explanation(tmp_path: Path) -> None:
    clock = Clock()
    servicer = LookupServicer(_exchange(tmp_path, clock), Telemetry.disabled())
    asked = [_request(LISTED), _request(REVOKED_SIGNER), _request(UNKNOWN), _request("call me maybe"),
             _request(LISTED, identity_header=SPOOFED)]

    full = _sent(servicer, asked)
    basic = lookup_pb2.BatchLookupResponse.FromString(servicer._batch_response(asked, True)[0])

    for whole in full.results:
        if whole.HasField("verdict"):
            whole.verdict.ClearField("contributions")
            whole.verdict.ClearField("explanation")
    assert basic == full
    assert basic.results[4].verdict.caller_id_authentication  # per-call fields stay


def test_a_stored_verdict_is_encoded_once_and_gets_each_calls_expiry(tmp_path: Path) -> None:
    clock = Clock()
    exchange = _exchange(tmp_path, clock)
    servicer = LookupServicer(exchange, Telemetry.disabled())

    first = _sent(servicer, [_request(LISTED), _request(UNKNOWN)])
    clock.now += timedelta(seconds=90)
    later = _sent(servicer, [_request(LISTED)])

    assert len(servicer._encodings) == 1  # the listed number's stored verdict; the unknown one is built per call
    ttl = exchange.reconciler_ttl()
    assert first.results[0].verdict.expires_at.ToDatetime(tzinfo=timezone.utc) == clock.now - timedelta(seconds=90) + ttl
    assert later.results[0].verdict.expires_at.ToDatetime(tzinfo=timezone.utc) == clock.now + ttl
    assert later.results[0].verdict == verdict_to_pb(exchange.lookup(LISTED))


def test_the_bytes_are_what_the_grpc_server_sends(tmp_path: Path) -> None:
    clock = Clock()
    servicer = LookupServicer(_exchange(tmp_path, clock), Telemetry.disabled())
    request = lookup_pb2.BatchLookupRequest(requests=[_request(LISTED), _request(UNKNOWN)])

    response = asyncio.run(servicer.BatchLookup(request, None))  # type: ignore[arg-type]

    assert isinstance(response, bytes)
    assert lookup_pb2.BatchLookupResponse.FromString(response) == _sent(servicer, list(request.requests))


def test_encodings_are_kept_for_the_newest_verdicts_up_to_the_capacity(tmp_path: Path) -> None:
    exchange = _exchange(tmp_path, Clock())
    encodings = VerdictEncodings(capacity=2)
    first, second = exchange.store.get_verdict(LISTED), exchange.store.get_verdict(REVOKED_SIGNER)
    third = dataclasses.replace(first, number=UNKNOWN)
    kept = encodings(first)

    encodings(second)
    assert encodings(first) is kept  # still held: encoded once
    encodings(third)  # the oldest entry (first) makes room

    assert len(encodings) == 2
    assert encodings(first) is not kept and encodings(first) == kept  # encoded again, the same bytes
    assert common_pb2.Verdict.FromString(encodings(third)[0]).number == UNKNOWN


class _Call:
    """What Lookup asks of its gRPC context: the time left before the caller's deadline."""

    def time_remaining(self) -> float | None:
        return None


def _looked_up(servicer: LookupServicer, request: lookup_pb2.LookupRequest) -> bytes | common_pb2.Verdict:
    return asyncio.run(servicer.Lookup(request, _Call()))  # type: ignore[arg-type]


def _as_verdict(sent: bytes | common_pb2.Verdict) -> common_pb2.Verdict:
    return common_pb2.Verdict.FromString(sent) if isinstance(sent, bytes) else sent


def test_lookup_sends_a_stored_verdict_as_its_stored_encoding_with_this_calls_expiry(tmp_path: Path) -> None:
    clock = Clock()
    exchange = _exchange(tmp_path, clock)
    servicer = LookupServicer(exchange, Telemetry.disabled())

    first = _looked_up(servicer, _request(LISTED))
    clock.now += timedelta(seconds=90)
    later = _looked_up(servicer, _request(LISTED))

    assert isinstance(first, bytes) and isinstance(later, bytes)
    assert len(servicer._encodings) == 1  # encoded once, for both calls (and for any batch)
    assert _as_verdict(later) == verdict_to_pb(exchange.lookup(LISTED))
    assert _as_verdict(later).expires_at.ToDatetime(tzinfo=timezone.utc) == clock.now + exchange.reconciler_ttl()


def test_lookup_sends_what_the_exchange_answers_where_the_stored_encoding_cannot_serve(tmp_path: Path) -> None:
    clock = Clock()
    exchange = _exchange(tmp_path, clock)
    servicer = LookupServicer(exchange, Telemetry.disabled())

    for number, header in ((REVOKED_SIGNER, ""), (UNKNOWN, ""), (LISTED, SPOOFED)):
        sent = _looked_up(servicer, _request(number, identity_header=header))

        assert _as_verdict(sent) == verdict_to_pb(exchange.lookup(number, header)), number
    assert "revoked" in _as_verdict(_looked_up(servicer, _request(REVOKED_SIGNER))).contributions[0].explanation
    assert len(servicer._encodings) == 0


def test_lookup_of_a_verdict_whose_label_expired_sends_the_recomputed_verdict(tmp_path: Path) -> None:
    clock = Clock()
    exchange = _exchange(tmp_path, clock)
    servicer = LookupServicer(exchange, Telemetry.disabled())
    stored = exchange.store.get_verdict(LISTED)
    assert stored is not None and stored.valid_until is not None

    clock.now = stored.valid_until + timedelta(seconds=1)
    sent = _as_verdict(_looked_up(servicer, _request(LISTED)))

    assert sent.label_count == 0 and sent.action == common_pb2.ACTION_UNKNOWN
    assert sent == verdict_to_pb(exchange.lookup(LISTED))


@settings(max_examples=300, deadline=None)
@given(
    asked=st.text(max_size=40),
    expires=st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(timezone.utc)),
    number=st.text(max_size=20),
    version=st.integers(min_value=0, max_value=2**62),
)
def test_a_result_assembled_from_bytes_parses_as_the_message_built_field_by_field(
    asked: str, expires: datetime, number: str, version: int
) -> None:
    stored = common_pb2.Verdict(number=number, action=common_pb2.ACTION_BLOCK, category="fraud", spam_probability=0.9,
                                version=version, explanation="two carriers say fraud")
    built = lookup_pb2.BatchLookupResponse()
    result = built.results.add(input=asked)
    result.verdict.CopyFrom(stored)
    result.verdict.expires_at.FromDatetime(expires)

    assembled = lookup_pb2.BatchLookupResponse.FromString(batch_result(asked, stored.SerializeToString(), expires))

    assert assembled == built


@given(st.integers(min_value=0, max_value=2**63 - 1))
def test_varint_is_protobufs_encoding(value: int) -> None:
    tag = common_pb2.Verdict(version=1).SerializeToString()[:-1]  # Verdict.version, an int64

    assert common_pb2.Verdict(version=value).SerializeToString() == (tag + varint(value) if value else b"")
    assert common_pb2.Verdict.FromString(tag + varint(value)).version == value


def test_a_batch_answers_what_another_replica_has_just_stored(tmp_path: Path) -> None:
    """Batches answer from memory (``numrep.store.verdict_cache``), yet never an
    answer older than the shared store: a second exchange on the same data
    directory publishes, and the first one's very next batch says so."""
    clock = Clock()
    ours = _exchange(tmp_path, clock)
    theirs = Exchange(SqliteStore(tmp_path / "db.sqlite3"), Pseudonymizer(b"b" * 32), clock=clock)
    servicer = LookupServicer(ours, Telemetry.disabled())
    before = _sent(servicer, [_request(LISTED), _request(UNKNOWN)])
    carrier = generate_identity("carrier-second", Role.CARRIER, "EdDSA")
    theirs.register_participant(carrier.participant_id, carrier.role, "", [json.dumps(carrier.public_jwk())])

    theirs.publish(theirs.get_participant(carrier.participant_id), [sign_label(carrier, LISTED, "fraud"), sign_label(carrier, UNKNOWN, "fraud")])
    after = _sent(servicer, [_request(LISTED), _request(UNKNOWN)])

    assert [r.verdict.label_count for r in before.results] == [1, 0]
    assert [r.verdict.label_count for r in after.results] == [2, 1]
    assert [r.verdict for r in after.results] == [verdict_to_pb(theirs.lookup(n)) for n in (LISTED, UNKNOWN)]
