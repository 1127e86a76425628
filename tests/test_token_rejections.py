"""Every rejection reason of numrep.signing.tokens.verify_token, end to end:
a call carrying the bad bearer token is UNAUTHENTICATED with a message naming
the reason, and the call had no effect (the label it carried was not stored)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from numrep.core.model import Role
from numrep.signing.keys import generate_identity
from numrep.signing.labels import sign_label
from numrep.signing.tokens import TOKEN_TYPE, mint_token
from numrep.v1 import lookup_pb2

from numrep_testkit import (
    NUMBER,
    RawCaller,
    bearer,
    hmac_jws,
    now_utc,
    payload_of,
    public_jwk_text,
    replace_payload,
    sign_as,
    sign_jws,
    token_claims,
    unsigned_jws,
)


def test_a_freshly_minted_token_is_accepted(federation, raw):
    """Control: the hand-built tokens below differ from this one only where they say."""
    token = sign_as(federation.carrier, token_claims("carrier-north"), typ=TOKEN_TYPE)
    outcome = raw.call("LookupService/Lookup", lookup_pb2.LookupRequest(number=NUMBER), bearer(token))
    assert outcome.code == grpc.StatusCode.OK


# --- missing or unreadable ----------------------------------------------------------
def test_a_call_without_a_token_is_unauthenticated_missing_token(refused):
    refused((), "missing bearer token", "authorization: Bearer")


@pytest.mark.parametrize("value", ["Basic Y2Fycmllcjpw", "Token abc.def.ghi", "Bearer", "Bearer   "])
def test_an_authorization_header_without_a_bearer_token_is_unauthenticated_missing_token(federation, refused, value):
    refused([("authorization", value)], "missing bearer token")


@pytest.mark.parametrize("garbage", ["garbage", "a.b", "a.b.c", "!!!.???.***", "eyJhbGciOiJFUzI1NiJ9..."])
def test_a_garbage_token_is_unauthenticated_malformed(refused, garbage):
    refused(bearer(garbage), "bearer token rejected (malformed)")


# --- algorithm and header -------------------------------------------------------------
@pytest.mark.parametrize("alg", ["none", "NONE"])
def test_an_unsigned_token_is_unauthenticated_alg_none(federation, refused, alg):
    header = {"alg": alg, "kid": federation.carrier.kid, "typ": TOKEN_TYPE}
    refused(bearer(unsigned_jws(header, token_claims("carrier-north"))), "(alg_none)", "alg 'none'")


def test_a_token_signed_with_hmac_over_the_public_key_is_unauthenticated_alg_hmac(federation, refused):
    header = {"alg": "HS256", "kid": federation.carrier.kid, "typ": TOKEN_TYPE}
    token = hmac_jws(header, token_claims("carrier-north"), public_jwk_text(federation.carrier).encode())
    refused(bearer(token), "(alg_hmac)", "HMAC algorithm HS256")


def test_a_token_signed_with_es384_is_unauthenticated_alg_not_allowed(federation, refused):
    header = {"alg": "ES384", "kid": federation.carrier.kid, "typ": TOKEN_TYPE}
    token = sign_jws(header, token_claims("carrier-north"), ec.generate_private_key(ec.SECP384R1()), "ES384")
    refused(bearer(token), "(alg_not_allowed)", "algorithm ES384")


def test_a_label_sent_as_a_token_is_unauthenticated_wrong_type(federation, refused):
    label = sign_label(federation.carrier, NUMBER, "fraud")
    refused(bearer(label), "(wrong_type)", "token type 'numrep-label+jwt' where 'numrep-auth+jwt' was expected")


def test_a_token_without_a_kid_is_unauthenticated_missing_kid(federation, refused):
    token = sign_as(federation.carrier, token_claims("carrier-north"), typ=TOKEN_TYPE, kid=None)
    refused(bearer(token), "(missing_kid)", "no 'kid'")


@pytest.mark.parametrize("header_extra", [{"kid": 42}, {"crit": ["exp"]}], ids=["numeric-kid", "unsupported-crit"])
def test_a_token_with_a_header_pyjwt_refuses_is_unauthenticated_malformed(federation, refused, header_extra):
    token = sign_as(federation.carrier, token_claims("carrier-north"), typ=TOKEN_TYPE, **header_extra)
    refused(bearer(token), "bearer token rejected (malformed)", "cannot read the JWS header")


def test_a_token_signed_with_an_unregistered_key_is_unauthenticated_unknown_kid(federation, refused):
    stray = generate_identity("carrier-north", Role.CARRIER)
    refused(bearer(mint_token(stray)), "(unknown_kid)", f"no key {stray.kid!r}")


def test_a_token_of_an_unregistered_participant_is_unauthenticated_unknown_participant(refused):
    ghost = generate_identity("ghost-carrier", Role.CARRIER)
    refused(bearer(mint_token(ghost)), "(unknown_participant)", "'ghost-carrier' is not registered")


def test_a_token_claiming_to_be_another_participant_is_unauthenticated(federation, refused):
    # signed by the app with its own key but claiming to be the regulator
    claims = {**token_claims("ftc")}
    token = sign_as(federation.app, claims, typ=TOKEN_TYPE)
    refused(bearer(token), "(unknown_kid)", f"participant 'ftc' has no key {federation.app.kid!r}")
    # ... or naming the regulator's key
    token = sign_as(federation.app, claims, typ=TOKEN_TYPE, kid=federation.regulator.kid)
    refused(bearer(token), "(bad_signature)")


def test_a_token_signed_with_a_revoked_key_is_unauthenticated_revoked_key(federation, connect, refused):
    connect(federation.regulator).revoke_key("carrier-north", federation.carrier.kid)
    refused(bearer(mint_token(federation.carrier)), "(revoked_key)", f"key {federation.carrier.kid!r} of 'carrier-north' was revoked")


def test_a_tampered_token_is_unauthenticated_bad_signature(federation, refused):
    token = mint_token(federation.carrier)
    tampered = replace_payload(token, {**payload_of(token), "jti": "chosen-by-attacker"})
    refused(bearer(tampered), "(bad_signature)", "signature does not verify")


# --- claims ------------------------------------------------------------------------------
def test_a_token_for_another_audience_is_unauthenticated_wrong_audience(federation, refused):
    refused(bearer(mint_token(federation.carrier, "other-exchange")), "(wrong_audience)", "'other-exchange', not 'numrep'")


def test_a_token_without_an_audience_is_unauthenticated_wrong_audience(federation, refused):
    claims = token_claims("carrier-north")
    del claims["aud"]
    refused(bearer(sign_as(federation.carrier, claims, typ=TOKEN_TYPE)), "(wrong_audience)")


def test_a_token_for_several_audiences_including_this_one_is_accepted(federation, raw):
    token = sign_as(federation.carrier, token_claims("carrier-north", audience=["elsewhere", "numrep"]), typ=TOKEN_TYPE)
    outcome = raw.call("LookupService/Lookup", lookup_pb2.LookupRequest(number=NUMBER), bearer(token))
    assert outcome.code == grpc.StatusCode.OK


def test_an_expired_token_is_unauthenticated_expired(federation, refused):
    token = mint_token(federation.carrier, now=now_utc() - timedelta(minutes=10))
    refused(bearer(token), "(expired)", "token expired at")


def test_a_token_expired_within_the_clock_skew_is_accepted(federation, raw):
    token = mint_token(federation.carrier, now=now_utc() - timedelta(seconds=70))  # expired 10 s ago; skew is 30 s
    outcome = raw.call("LookupService/Lookup", lookup_pb2.LookupRequest(number=NUMBER), bearer(token))
    assert outcome.code == grpc.StatusCode.OK


def test_a_token_issued_in_the_future_is_unauthenticated_issued_in_future(federation, refused):
    token = mint_token(federation.carrier, now=now_utc() + timedelta(minutes=10))
    refused(bearer(token), "(issued_in_future)", "beyond the allowed clock skew")


def test_a_token_living_longer_than_five_minutes_is_unauthenticated_lifetime_too_long(federation, refused):
    token = mint_token(federation.carrier, lifetime=timedelta(minutes=10))
    refused(bearer(token), "(lifetime_too_long)", "exceeds 300 s")


def test_a_token_whose_subject_is_not_its_issuer_is_unauthenticated_bad_claim(federation, refused):
    claims = {**token_claims("carrier-north"), "sub": "ftc"}
    refused(bearer(sign_as(federation.carrier, claims, typ=TOKEN_TYPE)), "(bad_claim)", "'sub' must equal 'iss'")


@pytest.mark.parametrize("claim", ["jti", "iat", "exp"])
def test_a_token_missing_a_required_claim_is_unauthenticated_missing_claim(federation, refused, claim):
    claims = token_claims("carrier-north")
    del claims[claim]
    refused(bearer(sign_as(federation.carrier, claims, typ=TOKEN_TYPE)), "(missing_claim)", f"claim {claim!r}")


# --- replay -------------------------------------------------------------------------------
def test_a_token_used_twice_is_unauthenticated_replayed_the_second_time(federation, raw, refused):
    token = mint_token(federation.carrier)
    first = raw.call("LookupService/Lookup", lookup_pb2.LookupRequest(number=NUMBER), bearer(token))
    assert first.code == grpc.StatusCode.OK

    refused(bearer(token), "(replayed)", "token was already used")


def test_a_replayed_token_is_refused_on_the_same_rpc_too(federation, raw):
    token = mint_token(federation.handset)
    request = lookup_pb2.LookupRequest(number=NUMBER)
    assert raw.call("LookupService/Lookup", request, bearer(token)).code == grpc.StatusCode.OK

    again = raw.call("LookupService/Lookup", request, bearer(token))

    assert again.code == grpc.StatusCode.UNAUTHENTICATED
    assert "(replayed)" in again.details


def test_a_token_spent_on_a_call_its_role_may_not_make_cannot_be_used_again(federation, raw):
    """Authentication consumes the token even when authorisation then refuses the call."""
    token = mint_token(federation.carrier)
    denied = raw.call("FlagsService/SubmitFlags", metadata=bearer(token))
    assert denied.code == grpc.StatusCode.PERMISSION_DENIED

    again = raw.call("LookupService/Lookup", lookup_pb2.LookupRequest(number=NUMBER), bearer(token))

    assert again.code == grpc.StatusCode.UNAUTHENTICATED
    assert "(replayed)" in again.details


def test_a_token_sent_on_many_calls_at_once_is_accepted_exactly_once(federation, server):
    token = mint_token(federation.carrier)
    barrier = threading.Barrier(8)

    def call(_: int) -> grpc.StatusCode:
        caller = RawCaller(server.address)
        try:
            barrier.wait(5)
            return caller.call("LookupService/Lookup", lookup_pb2.LookupRequest(number=NUMBER), bearer(token)).code
        finally:
            caller.close()

    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(call, range(8)))

    assert sorted(codes, key=str) == sorted([grpc.StatusCode.OK] + [grpc.StatusCode.UNAUTHENTICATED] * 7, key=str)
