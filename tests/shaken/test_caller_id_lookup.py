"""Caller-ID authentication end to end: a carrier's Lookup carries the SIP
Identity header; the verdict states the outcome and raises the risk of calls
that fail authentication, for that call only."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from numrep.config import ServerConfig
from numrep.core.model import Role
from numrep.core.pseudonym import Pseudonymizer
from numrep.exchange import Exchange
from numrep.server import start_server
from numrep.signing.keys import generate_identity
from numrep.store.sqlite import SqliteStore
from numrep.v1 import common_pb2, lookup_pb2, lookup_pb2_grpc
from numrep.signing.tokens import mint_token

from shaken_pki import NOW, ORIG, claims, identity_header, new_origid, sign

CALLER = "+" + ORIG


@pytest.fixture
def carrier_lookup(loop_thread, tmp_path: Path, anchors):
    # the test PKI is valid around its fixed NOW: the exchange runs on that clock
    exchange = Exchange(SqliteStore(tmp_path / "db.sqlite3"), Pseudonymizer(b"s" * 32), shaken_anchors=anchors, clock=lambda: NOW)
    running = loop_thread.run(start_server(ServerConfig(listen="127.0.0.1:0", data_dir=tmp_path), exchange))
    carrier = generate_identity("carrier-sip", Role.CARRIER)
    exchange.register_participant("carrier-sip", Role.CARRIER, "", [json.dumps(carrier.public_jwk())])
    import grpc

    channel = grpc.insecure_channel(running.address)
    stub = lookup_pb2_grpc.LookupServiceStub(channel)

    def lookup(header: str = "", number: str = CALLER) -> common_pb2.Verdict:
        request = lookup_pb2.LookupRequest(number=number, context=lookup_pb2.CallContext(identity_header=header))
        return stub.Lookup(request, metadata=[("authorization", f"Bearer {mint_token(carrier, now=NOW)}")])

    yield lookup
    channel.close()
    loop_thread.run(running.stop(0))
    exchange.store.close()


def _now_claims(**changes):
    return claims(iat=NOW, origid=new_origid(), **changes)


def test_a_verified_a_call_says_so_and_stays_allowed_or_unknown(carrier_lookup, pki):
    verdict = carrier_lookup(identity_header(sign(pki.leaf_key, body=_now_claims(attest="A"))))
    assert verdict.caller_id_authentication == "verified_a"
    assert verdict.caller_id_risk < 0
    assert verdict.action in (common_pb2.ACTION_UNKNOWN, common_pb2.ACTION_ALLOW)
    assert "Caller ID:" in verdict.explanation


def test_a_call_claiming_a_number_it_was_not_attested_for_is_intercepted(carrier_lookup, pki):
    header = identity_header(sign(pki.leaf_key, body=_now_claims(orig="13125550100")))
    verdict = carrier_lookup(header)
    assert verdict.caller_id_authentication == "number_mismatch"
    assert verdict.action == common_pb2.ACTION_WARN
    assert verdict.spam_probability > 0.5


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda pki: sign(pki.root_key, body=_now_claims()), "bad_signature"),
        (lambda pki: sign(pki.leaf_key, body=claims(iat=NOW - timedelta(minutes=5), origid=new_origid())), "stale"),
        (lambda pki: "not.a.passport", "malformed"),
    ],
)
def test_each_failed_authentication_is_named_in_the_verdict(carrier_lookup, pki, make, reason):
    verdict = carrier_lookup(identity_header(make(pki)) if reason != "malformed" else make(pki))
    assert verdict.caller_id_authentication == reason
    assert verdict.caller_id_risk > 0


def test_without_an_identity_header_the_verdict_is_the_stored_one(carrier_lookup):
    verdict = carrier_lookup("")
    assert verdict.caller_id_authentication == "" and verdict.caller_id_risk == 0.0
    assert verdict.expires_at.seconds > verdict.computed_at.seconds  # cacheable, unlike a per-call answer
