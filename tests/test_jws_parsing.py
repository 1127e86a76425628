"""How a compact JWS is read before any check (``numrep.signing.jws``): strictly,
once. Padded or non-canonical base64url and unencoded payloads are malformed;
everything else a label or token may be refused for is in
test_label_rejections.py and test_token_rejections.py."""

from __future__ import annotations

import base64
import json
import re
from datetime import datetime, timezone

import pytest
from hypothesis import given, settings, strategies as st

from numrep.core.model import Participant, PublicKeyRecord, Role
from numrep.signing.jws import JwsRejected, read_compact
from numrep.signing.keys import Identity, generate_identity
from numrep.signing.labels import sign_label, verify_label
from numrep.signing.tokens import ReplayCache, mint_token, verify_token

from numrep_testkit import NUMBER, label_claims, sign_as

NOW = datetime.now(timezone.utc)
_CANONICAL_LAST = "AQgw"  # base64url characters whose 4 low bits are zero


@pytest.fixture(scope="module", params=["EdDSA", "ES256"])
def carrier(request: pytest.FixtureRequest) -> Identity:
    return generate_identity("carrier-north", Role.CARRIER, request.param)


def registry(identity: Identity):
    record = PublicKeyRecord(identity.kid, json.dumps(identity.public_jwk()), NOW)
    participant = Participant(identity.participant_id, identity.role, "", (record,))
    return lambda pid: participant if pid == identity.participant_id else None


def rejection(token: str, identity: Identity) -> JwsRejected:
    with pytest.raises(JwsRejected) as caught:
        verify_label(token, registry(identity), NOW)
    return caught.value


def test_a_label_read_once_verifies_and_keeps_its_token_verbatim(carrier):
    token = sign_label(carrier, NUMBER, "fraud", 0.75, issued_at=NOW)  # NOW is this module's clock, taken at import

    label = verify_label(token, registry(carrier), NOW, sender="carrier-north")

    assert (label.number, label.category, label.confidence, label.token) == (NUMBER, "fraud", 0.75, token)


def test_a_bearer_token_read_once_authenticates_its_participant(carrier):
    participant = verify_token(mint_token(carrier, now=NOW), registry(carrier), NOW, ReplayCache())

    assert participant.id == "carrier-north"


def test_a_padded_signature_is_malformed(carrier):
    token = sign_label(carrier, NUMBER, "fraud")
    assert len(token.rpartition(".")[2]) % 4, "both key types give a signature whose base64url needs padding"

    rejected = rejection(token + "=" * (-len(token.rpartition(".")[2]) % 4), carrier)

    assert (rejected.reason, rejected.message) == ("malformed", "cannot read the signature: the signature is not unpadded base64url")


def test_a_signature_with_stray_bits_after_its_last_byte_is_malformed(carrier):
    token = sign_label(carrier, NUMBER, "fraud")
    assert token[-1] in _CANONICAL_LAST
    stray = token[:-1] + chr(ord(token[-1]) + 1)  # same bytes when decoded leniently

    rejected = rejection(stray, carrier)

    assert rejected.reason == "malformed"
    assert "not canonical base64url" in rejected.message


def test_a_claims_segment_with_characters_outside_base64url_is_malformed(carrier):
    head, claims, signature = sign_label(carrier, NUMBER, "fraud").split(".")

    rejected = rejection(f"{head}.{claims[:-4]}+/+/.{signature}", carrier)

    assert (rejected.reason, rejected.message) == ("malformed", "cannot read the claims: the payload is not unpadded base64url")


@pytest.mark.parametrize("header", [{"b64": False, "crit": ["b64"]}, {"b64": "no"}], ids=["b64-false", "b64-not-boolean"])
def test_an_unencoded_payload_is_malformed(carrier, header):
    token = sign_as(carrier, label_claims("carrier-north"), **header)

    rejected = rejection(token, carrier)

    assert rejected.reason == "malformed"
    assert "unencoded payloads" in rejected.message


def test_claims_that_are_a_json_array_are_malformed(carrier):
    token = sign_as(carrier, label_claims("carrier-north"))
    head, _, signature = token.split(".")

    rejected = rejection(f"{head}.WzEsMl0.{signature}", carrier)  # [1,2]

    assert (rejected.reason, rejected.message) == ("malformed", "cannot read the claims: must be a JSON object")


@pytest.mark.parametrize("claim", ["sub", "jti"])
def test_a_signed_label_with_a_non_string_sub_or_jti_is_malformed(carrier, claim):
    token = sign_as(carrier, {**label_claims("carrier-north"), claim: 42})

    rejected = rejection(token, carrier)

    assert (rejected.reason, rejected.message) == ("malformed", f"token cannot be verified: claim {claim!r} must be a string")


_HEADER = base64.urlsafe_b64encode(b'{"alg":"EdDSA"}').rstrip(b"=").decode()


def _strictly_read(segment: str) -> bytes | None:
    """The reading RFC 7515 asks for, spelled out: unpadded base64url, decoded, that encodes back to itself."""
    if len(segment) % 4 == 1 or re.fullmatch(r"[A-Za-z0-9_-]*", segment) is None:
        return None
    data = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    return data if base64.urlsafe_b64encode(data).rstrip(b"=").decode() == segment else None


@settings(max_examples=500)
@given(st.one_of(
    st.binary(max_size=48).map(lambda data: base64.urlsafe_b64encode(data).rstrip(b"=").decode()),
    st.text(alphabet="AQgwBRhxEIMUYcko048sz-_=+/ ", max_size=11),
))
def test_a_segment_is_read_exactly_when_it_is_canonical_unpadded_base64url(segment):
    expected = _strictly_read(segment)
    token = f"{_HEADER}.{segment}.AA"

    if expected is None:
        with pytest.raises(JwsRejected) as caught:
            read_compact(token)
        assert caught.value.reason == "malformed" and "the payload is not" in caught.value.message
    else:
        assert read_compact(token).claims_bytes == expected


_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


@pytest.mark.parametrize("length", [2, 3])
@pytest.mark.parametrize("last", list(_ALPHABET))
def test_every_last_character_is_judged_by_the_bits_it_leaves_past_the_last_byte(length, last):
    segment = "A" * (length - 1) + last
    spare_bits = 4 if length == 2 else 2  # 12 bits hold one byte, 18 bits two
    token = f"{_HEADER}.{segment}.AA"

    if _ALPHABET.index(last) % (1 << spare_bits) == 0:
        assert read_compact(token).claims_bytes == _strictly_read(segment)
    else:
        with pytest.raises(JwsRejected, match="not canonical base64url"):
            read_compact(token)
