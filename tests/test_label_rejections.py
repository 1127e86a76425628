"""Every rejection reason of numrep.signing.labels.verify_label, end to end
through Publish: the item is REJECTED with the reason and a specific message,
and nothing is stored (the number stays UNKNOWN, the change feed does not move)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from numrep.core.model import Role
from numrep.signing.jws import JwsRejected
from numrep.signing.keys import generate_identity
from numrep.signing.labels import LABEL_TYPE, sign_label, verify_label
from numrep.signing.tokens import mint_token
from numrep.v1 import common_pb2, publish_pb2
from numrep_client import ExchangeError

from numrep_testkit import (
    NUMBER,
    b64json,
    hmac_jws,
    label_claims,
    now_utc,
    payload_of,
    public_jwk_text,
    replace_payload,
    sign_as,
    sign_jws,
    unsigned_jws,
)

REJECTED = publish_pb2.ITEM_STATUS_REJECTED
ACCEPTED = publish_pb2.ITEM_STATUS_ACCEPTED


@pytest.fixture
def publish_rejected(server, federation, connect):
    """``publish_rejected(token, reason, message, sender=carrier)``: Publish the token
    alone; it must be rejected with ``reason`` and a message containing
    ``message``, and nothing may be stored."""

    def check(token: str, reason: str, message: str, sender=None, number: str = NUMBER) -> publish_pb2.ItemResult:
        client = connect(sender or federation.carrier)
        head = server.store.feed_head()

        [result] = client.publish([token])

        assert (result.status, result.reason) == (REJECTED, reason), result.message
        assert message in result.message
        assert result.index == 0
        assert server.store.changes_after(head, 1) == [], "a rejected label must not change any verdict"
        verdict = client.lookup(number)
        assert verdict.action == common_pb2.ACTION_UNKNOWN
        assert verdict.label_count == 0 and list(verdict.contributions) == []
        try:
            claims = payload_of(token)
        except (ValueError, IndexError):
            claims = {}
        if isinstance(claims, dict) and isinstance(claims.get("iss"), str) and isinstance(claims.get("jti"), str):
            assert server.store.get_label(f"{claims['iss']}/{claims['jti']}") is None
        return result

    return check


def test_a_hand_built_label_with_the_right_header_and_claims_is_accepted(federation, connect):
    """Control: the hand-built tokens below differ from this one only where they say."""
    client = connect(federation.carrier)
    [result] = client.publish([sign_as(federation.carrier, label_claims("carrier-north", jti="control"))])
    assert (result.status, result.id) == (ACCEPTED, "carrier-north/control")
    assert client.lookup(NUMBER).label_count == 1


# --- malformed --------------------------------------------------------------------------
def test_a_truncated_label_is_rejected_as_malformed(federation, publish_rejected):
    token = sign_label(federation.carrier, NUMBER, "fraud")
    cut = token[: token.index(".") + 20]  # the payload cut short, the signature gone
    publish_rejected(cut, "malformed", "not a compact JWS")


def test_a_label_that_is_not_base64url_is_rejected_as_malformed(federation, publish_rejected):
    token = sign_label(federation.carrier, NUMBER, "fraud")
    publish_rejected("!!!" + token[token.index("."):], "malformed", "cannot read the JWS header")


def test_a_label_with_two_segments_is_rejected_as_malformed(federation, publish_rejected):
    head, payload, _ = sign_label(federation.carrier, NUMBER, "fraud").split(".")
    publish_rejected(f"{head}.{payload}", "malformed", "three base64url parts")


def test_a_label_whose_claims_are_not_json_is_rejected_as_malformed(federation, publish_rejected):
    head = sign_label(federation.carrier, NUMBER, "fraud").split(".")[0]
    publish_rejected(f"{head}.bm90IGpzb24.AAAA", "malformed", "cannot read the claims")


def test_an_empty_label_is_rejected_as_malformed(publish_rejected):
    publish_rejected("", "malformed", "not a compact JWS")


# --- algorithms -------------------------------------------------------------------------
@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
def test_an_unsigned_label_is_rejected_with_alg_none(federation, publish_rejected, alg):
    header = {"alg": alg, "kid": federation.carrier.kid, "typ": LABEL_TYPE}
    publish_rejected(unsigned_jws(header, label_claims("carrier-north")), "alg_none", "alg 'none'")


def _public_key_bytes(identity) -> dict[str, bytes]:
    pem = identity.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return {"pem": pem, "jwk": public_jwk_text(identity).encode()}


@pytest.mark.parametrize("alg", ["HS256", "HS512"])
@pytest.mark.parametrize("secret_form", ["pem", "jwk"])
def test_label_signed_with_hmac_over_the_public_key_is_rejected_with_alg_hmac(federation, publish_rejected, alg, secret_form):
    """Algorithm confusion: an attacker knows the public key and uses it as an HMAC secret."""
    secret = _public_key_bytes(federation.carrier)[secret_form]
    header = {"alg": alg, "kid": federation.carrier.kid, "typ": LABEL_TYPE}
    token = hmac_jws(header, label_claims("carrier-north"), secret)
    publish_rejected(token, "alg_hmac", f"HMAC algorithm {alg} is not accepted")


def test_label_signed_with_es384_is_rejected_with_alg_not_allowed(federation, publish_rejected):
    p384 = ec.generate_private_key(ec.SECP384R1())
    header = {"alg": "ES384", "kid": federation.carrier.kid, "typ": LABEL_TYPE}
    token = sign_jws(header, label_claims("carrier-north"), p384, "ES384")
    publish_rejected(token, "alg_not_allowed", "algorithm ES384 is not accepted")


def test_label_claiming_an_algorithm_its_key_does_not_have_is_rejected_with_alg_key_mismatch(federation, publish_rejected):
    # the app's key is Ed25519; the label says ES256 and is signed with some P-256 key
    p256 = ec.generate_private_key(ec.SECP256R1())
    header = {"alg": "ES256", "kid": federation.app.kid, "typ": LABEL_TYPE}
    token = sign_jws(header, label_claims("blocker-app"), p256, "ES256")
    publish_rejected(token, "alg_key_mismatch", "header says ES256", sender=federation.app)


# --- header -----------------------------------------------------------------------------
def test_an_auth_token_sent_as_a_label_is_rejected_with_wrong_type(federation, publish_rejected):
    publish_rejected(mint_token(federation.carrier), "wrong_type", "token type 'numrep-auth+jwt' where 'numrep-label+jwt' was expected")


def test_a_label_without_a_type_is_rejected_with_wrong_type(federation, publish_rejected):
    token = sign_as(federation.carrier, label_claims("carrier-north"), typ="JWT")
    publish_rejected(token, "wrong_type", "token type 'JWT'")


def test_a_label_without_a_kid_is_rejected_with_missing_kid(federation, publish_rejected):
    token = sign_as(federation.carrier, label_claims("carrier-north"), kid=None)
    publish_rejected(token, "missing_kid", "no 'kid'")


@pytest.mark.parametrize(
    "header_extra",
    [{"kid": 7}, {"crit": ["exp"], "exp": 1}],
    ids=["numeric-kid", "unsupported-crit"],
)
def test_a_label_with_a_header_pyjwt_refuses_is_rejected_alone_as_malformed(federation, connect, header_extra):
    """PyJWT raises InvalidTokenError (not DecodeError) for these headers; one such
    label must not fail the whole Publish call."""
    client = connect(federation.carrier)
    odd = sign_as(federation.carrier, label_claims("carrier-north"), **header_extra)
    good = sign_label(federation.carrier, NUMBER, "fraud")

    try:
        results = client.publish([odd, good])
    except ExchangeError as exc:
        pytest.fail(f"one odd label failed the whole batch: {exc}")

    assert (results[0].status, results[0].reason) == (REJECTED, "malformed")
    assert "cannot read the JWS header" in results[0].message
    assert results[1].status == ACCEPTED


def test_a_label_signed_with_an_unregistered_key_of_the_sender_is_rejected_with_unknown_kid(federation, publish_rejected):
    stray = generate_identity("carrier-north", Role.CARRIER, "ES256")
    publish_rejected(sign_label(stray, NUMBER, "fraud"), "unknown_kid", f"has no key {stray.kid!r}")


def test_a_label_whose_issuer_is_not_registered_is_rejected_with_unknown_participant(server, federation):
    """Publish can never reach this check (an unregistered issuer is not the sender,
    so issuer_mismatch comes first); a handset verifying synced labels can."""
    ghost = generate_identity("ghost-carrier", Role.CARRIER)
    with pytest.raises(JwsRejected) as caught:
        verify_label(sign_label(ghost, NUMBER, "fraud"), server.exchange.participant, now_utc())
    assert caught.value.reason == "unknown_participant"
    assert "'ghost-carrier' is not registered" in caught.value.message


def test_publishing_a_label_of_an_unregistered_issuer_is_rejected_with_issuer_mismatch(federation, publish_rejected):
    ghost = generate_identity("ghost-carrier", Role.CARRIER)
    publish_rejected(sign_label(ghost, NUMBER, "fraud"), "issuer_mismatch", "signed by 'ghost-carrier' but sent by 'carrier-north'")


def test_a_label_signed_by_another_registered_participant_is_rejected_with_issuer_mismatch(federation, publish_rejected):
    token = sign_label(federation.regulator, NUMBER, "fraud")
    publish_rejected(token, "issuer_mismatch", "signed by 'ftc' but sent by 'carrier-north'")


def test_a_label_signed_with_a_revoked_key_is_rejected_with_revoked_key(federation, connect, publish_rejected):
    rotated = generate_identity("carrier-north", Role.CARRIER, "EdDSA")
    connect(federation.carrier).add_key("carrier-north", public_jwk_text(rotated))
    connect(rotated).revoke_key("carrier-north", federation.carrier.kid)

    publish_rejected(sign_label(federation.carrier, NUMBER, "fraud"), "revoked_key", f"key {federation.carrier.kid!r}", sender=rotated)


# --- signature --------------------------------------------------------------------------
def test_a_label_with_a_tampered_payload_is_rejected_with_bad_signature(federation, publish_rejected):
    token = sign_label(federation.carrier, NUMBER, "legitimate")
    tampered = replace_payload(token, {**payload_of(token), "cat": "fraud"})
    publish_rejected(tampered, "bad_signature", f"signature does not verify with key {federation.carrier.kid!r}")


def test_a_label_with_a_signature_from_another_key_is_rejected_with_bad_signature(federation, publish_rejected):
    impostor = generate_identity("carrier-north", Role.CARRIER, "ES256")
    token = sign_as(impostor, label_claims("carrier-north"), kid=federation.carrier.kid)
    publish_rejected(token, "bad_signature", "signature does not verify")


def test_an_eddsa_label_with_a_tampered_payload_is_rejected_with_bad_signature(federation, publish_rejected):
    token = sign_label(federation.app, NUMBER, "legitimate")
    tampered = replace_payload(token, {**payload_of(token), "conf": 0.99})
    publish_rejected(tampered, "bad_signature", "signature does not verify", sender=federation.app)


# --- time -------------------------------------------------------------------------------
def test_an_expired_label_is_rejected_with_expired(federation, publish_rejected):
    token = sign_label(federation.carrier, NUMBER, "fraud", issued_at=now_utc() - timedelta(days=100), lifetime=timedelta(days=90))
    publish_rejected(token, "expired", "label expired at")


def test_a_label_issued_in_the_future_is_rejected_with_issued_in_future(federation, publish_rejected):
    token = sign_label(federation.carrier, NUMBER, "fraud", issued_at=now_utc() + timedelta(hours=1))
    publish_rejected(token, "issued_in_future", "later than the exchange's clock allows")


def test_a_label_within_the_allowed_clock_skew_is_accepted(federation, connect):
    token = sign_label(federation.carrier, NUMBER, "fraud", issued_at=now_utc() + timedelta(minutes=4))
    [result] = connect(federation.carrier).publish([token])
    assert result.status == ACCEPTED


def test_a_label_living_longer_than_400_days_is_rejected_with_lifetime_too_long(federation, publish_rejected):
    token = sign_label(federation.carrier, NUMBER, "fraud", lifetime=timedelta(days=401))
    publish_rejected(token, "lifetime_too_long", "label lifetime exceeds 400 days")


def test_a_label_expiring_before_it_was_issued_is_rejected_with_bad_claim(federation, publish_rejected):
    claims = label_claims("carrier-north", issued_at=now_utc() + timedelta(minutes=3))
    claims["exp"] = claims["iat"] - 60
    publish_rejected(sign_as(federation.carrier, claims), "bad_claim", "expires before it was issued")


@pytest.mark.parametrize("claim", ["jti", "iat", "exp", "num", "cat"])
def test_a_label_missing_a_required_claim_is_rejected_with_missing_claim(federation, publish_rejected, claim):
    claims = label_claims("carrier-north")
    del claims[claim]
    publish_rejected(sign_as(federation.carrier, claims), "missing_claim", f"claim {claim!r} is missing")


# --- content ----------------------------------------------------------------------------
@pytest.mark.parametrize("number", ["+1202555", "+999123456789", "twelve"])
def test_a_label_for_an_impossible_number_is_rejected_with_invalid_number(federation, publish_rejected, number):
    token = sign_label(federation.carrier, number, "fraud")
    publish_rejected(token, "invalid_number", f"invalid phone number {number!r}")


@pytest.mark.parametrize("number", ["(202) 555-0143", "2025550143", "+1 202 555 0143"])
def test_a_label_for_a_number_not_in_e164_is_rejected_with_number_not_e164(federation, publish_rejected, number):
    token = sign_label(federation.carrier, number, "fraud")
    publish_rejected(token, "number_not_e164", f"sign '+12025550143' instead of {number!r}")


@pytest.mark.parametrize("category", ["spam", "fraud.phishing", "FRAUD", "legit"])
def test_a_label_with_an_unknown_category_is_rejected_with_unknown_category(federation, publish_rejected, category):
    token = sign_label(federation.carrier, NUMBER, category)
    publish_rejected(token, "unknown_category", f"unknown category {category!r}")


@pytest.mark.parametrize("confidence", [1.5, -0.1, "high", True, None])
def test_a_label_with_a_confidence_outside_0_to_1_is_rejected_with_bad_confidence(federation, publish_rejected, confidence):
    token = sign_as(federation.carrier, label_claims("carrier-north", confidence=confidence))
    publish_rejected(token, "bad_confidence", "claim 'conf' must be a number between 0 and 1")


def test_a_label_with_oversized_evidence_is_rejected_with_bad_claim(federation, publish_rejected):
    token = sign_label(federation.carrier, NUMBER, "fraud", evidence="x" * 1025)
    publish_rejected(token, "bad_claim", "claim 'ev' must be a string of at most 1024 characters")


def test_rejections_in_a_batch_do_not_hold_back_the_good_labels(federation, connect):
    client = connect(federation.carrier)
    batch = [
        hmac_jws({"alg": "HS256", "kid": federation.carrier.kid, "typ": LABEL_TYPE}, label_claims("carrier-north"), b"secret"),
        sign_label(federation.carrier, NUMBER, "fraud", jti="keeper"),
        mint_token(federation.carrier),
    ]

    results = client.publish(batch)

    assert [(r.status, r.reason) for r in results] == [(REJECTED, "alg_hmac"), (ACCEPTED, ""), (REJECTED, "wrong_type")]
    assert [c.label_id for c in client.lookup(NUMBER).contributions] == ["carrier-north/keeper"]


def test_a_bad_label_never_fails_the_call_itself(federation, connect):
    """A rejection is an item result, not a gRPC error."""
    results = connect(federation.carrier).publish(["x.y.z", "a.b", json.dumps({"num": NUMBER}), b64json({})])

    assert [r.index for r in results] == [0, 1, 2, 3]
    assert {(r.status, r.reason) for r in results} == {(REJECTED, "malformed")}
