"""What the ledger refuses, and that a refused record leaves nothing behind: the
gRPC status or per-item reason for each, then the store and the consent state
checked for the record."""

from __future__ import annotations

from datetime import timedelta

import grpc
import pytest

from consent_testkit import ACCEPTED, CALLEE, CALLER, DUPLICATE, NONE, PROOF, REJECTED, now_utc
from numrep.core.model import Role
from numrep.signing.consent import CONSENT_TYPE, REFUSAL_TYPE, sign_consent, sign_refusal
from numrep.signing.keys import generate_identity
from numrep.signing.labels import LABEL_TYPE
from numrep.signing.tokens import mint_token
from numrep_client import ExchangeError
from numrep_testkit import bearer, payload_of, public_jwk_text, replace_payload, sign_as
from numrep.v1 import consent_pb2


def consent_claims(issuer: str, **overrides):
    now = now_utc()
    claims = {"iss": issuer, "jti": "c-1", "iat": int(now.timestamp()), "exp": int((now + timedelta(days=30)).timestamp()),
              "clr": CALLER, "cle": CALLEE, "scp": ["marketing"], "evh": PROOF}
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def assert_nothing_stored(ledger, record_id: str) -> None:
    assert ledger.stored(record_id) is None
    assert ledger.state().state == NONE


def rejected(results, reason: str) -> None:
    [result] = results
    assert (result.status, result.reason) == (REJECTED, reason), result.message


def test_a_record_with_a_bad_signature_is_rejected_and_not_stored(ledger):
    carrier = ledger.federation.carrier
    token = sign_consent(carrier, CALLER, CALLEE, ["marketing"], PROOF, jti="tampered")
    forged = replace_payload(token, {**payload_of(token), "scp": ["marketing", "marketing.loans"]})

    rejected(ledger.register(forged), "bad_signature")
    assert_nothing_stored(ledger, f"{carrier.participant_id}/tampered")


def test_a_label_sent_as_a_consent_record_is_rejected_as_the_wrong_type(ledger):
    carrier = ledger.federation.carrier
    token = sign_as(carrier, consent_claims(carrier.participant_id), typ=LABEL_TYPE)

    rejected(ledger.register(token), "wrong_type")
    assert_nothing_stored(ledger, f"{carrier.participant_id}/c-1")


def test_a_consent_record_sent_as_a_refusal_is_rejected_as_the_wrong_type(ledger):
    carrier = ledger.federation.carrier
    token = sign_as(carrier, consent_claims(carrier.participant_id), typ=CONSENT_TYPE)

    rejected(ledger.refuse(token, by=carrier), "wrong_type")
    assert_nothing_stored(ledger, f"{carrier.participant_id}/c-1")


def test_a_record_from_an_unregistered_participant_is_unauthenticated_and_not_stored(ledger, raw):
    stranger = generate_identity("stranger", Role.CARRIER, "EdDSA")
    token = sign_as(stranger, consent_claims("stranger"), typ=CONSENT_TYPE)

    outcome = raw.call("ConsentService/RegisterConsent", consent_pb2.RegisterConsentRequest(records=[token]),
                       bearer(mint_token(stranger)))

    assert outcome.code == grpc.StatusCode.UNAUTHENTICATED
    assert "(unknown_participant)" in outcome.details
    assert_nothing_stored(ledger, "stranger/c-1")


def test_a_record_signed_with_a_revoked_key_is_rejected_and_not_stored(ledger):
    carrier = ledger.federation.carrier
    spare = generate_identity(carrier.participant_id, Role.CARRIER, "EdDSA")
    client = ledger.client(carrier)
    client.add_key(carrier.participant_id, public_jwk_text(spare))
    client.revoke_key(carrier.participant_id, spare.kid)
    token = sign_consent(spare, CALLER, CALLEE, ["marketing"], PROOF, jti="old-key")

    rejected(ledger.register(token), "revoked_key")
    assert_nothing_stored(ledger, f"{carrier.participant_id}/old-key")


def test_a_record_signed_by_someone_else_than_the_sender_is_rejected(ledger):
    regulator = ledger.federation.regulator
    token = sign_consent(regulator, CALLER, CALLEE, ["marketing"], PROOF, jti="theirs")

    rejected(ledger.register(token, by=ledger.federation.carrier), "issuer_mismatch")
    assert_nothing_stored(ledger, f"{regulator.participant_id}/theirs")


@pytest.mark.parametrize(("rpc", "role"), [
    ("RegisterConsent", Role.HANDSET_VENDOR),
    ("RegisterConsent", Role.APP_VENDOR),
    ("RecordRefusal", Role.HANDSET_VENDOR),
    ("RecordRefusal", Role.REGULATOR),
])
def test_a_role_that_may_not_send_a_kind_of_record_is_refused_and_nothing_is_stored(ledger, raw, rpc, role):
    identity = ledger.federation.by_role(role)
    if rpc == "RegisterConsent":
        request = consent_pb2.RegisterConsentRequest(records=[sign_consent(identity, CALLER, CALLEE, ["marketing"], PROOF, jti="r")])
    else:
        request = consent_pb2.RecordRefusalRequest(refusals=[sign_refusal(identity, CALLEE, CALLER, jti="r")])

    outcome = raw.call(f"ConsentService/{rpc}", request, bearer(mint_token(identity)))

    assert outcome.code == grpc.StatusCode.PERMISSION_DENIED
    assert outcome.details == f"role {role.value} may not call ConsentService/{rpc}"
    assert_nothing_stored(ledger, f"{identity.participant_id}/r")


def test_the_same_record_sent_again_is_a_duplicate(ledger):
    token = sign_consent(ledger.federation.carrier, CALLER, CALLEE, ["marketing"], PROOF)

    [first] = ledger.register(token)
    [second] = ledger.register(token)

    assert first.status == ACCEPTED
    assert (second.status, second.id) == (DUPLICATE, first.id)


def test_a_different_record_under_a_used_id_is_rejected_as_a_replayed_id_and_changes_nothing(ledger):
    carrier = ledger.federation.carrier
    original = sign_consent(carrier, CALLER, CALLEE, ["marketing.insurance"], PROOF, jti="once")
    replay = sign_consent(carrier, CALLER, CALLEE, ["marketing"], PROOF, jti="once")
    assert ledger.register(original)[0].status == ACCEPTED

    rejected(ledger.register(replay), "replayed_id")
    assert ledger.stored(f"{carrier.participant_id}/once").scope == ("marketing.insurance",)
    assert ledger.state(category="marketing.loans").reason == "consent_out_of_scope"


def test_a_revoked_record_cannot_be_registered_again(ledger):
    token = sign_consent(ledger.federation.carrier, CALLER, CALLEE, ["marketing"], PROOF)
    [first] = ledger.register(token)
    ledger.client().revoke_consent([first.id])

    rejected(ledger.register(token), "revoked")


@pytest.mark.parametrize(("override", "reason"), [
    ({"scp": ["fraud"]}, "scope_not_marketing"),
    ({"scp": ["marketing.nonsense"]}, "unknown_category"),
    ({"scp": []}, "missing_claim"),
    ({"evh": "md5:abc"}, "bad_evidence_hash"),
    ({"evh": None}, "missing_claim"),
    ({"cle": "2025550188"}, "number_not_e164"),
    ({"cle": "+1202"}, "invalid_number"),
    ({"clr": "*"}, "bad_claim"),
    ({"clr": None}, "missing_claim"),
    ({"hrs": "weekdays 9-5"}, "bad_hours"),
    ({"hrs": "mon-fri 20:00-08:00"}, "bad_hours"),
    ({"tz": "Mars/Olympus_Mons"}, "unknown_time_zone"),
    ({"exp": 1}, "expired"),
    ({"exp": None}, "missing_claim"),
])
def test_a_consent_record_with_a_bad_claim_is_rejected_with_its_reason(ledger, override, reason):
    carrier = ledger.federation.carrier
    token = sign_as(carrier, consent_claims(carrier.participant_id, **override), typ=CONSENT_TYPE)

    rejected(ledger.register(token), reason)
    assert ledger.stored(f"{carrier.participant_id}/c-1") is None


def test_a_batch_answers_each_item_and_stores_only_the_good_ones(ledger):
    carrier = ledger.federation.carrier
    good = sign_consent(carrier, CALLER, CALLEE, ["marketing"], PROOF, jti="good")
    bad = sign_as(carrier, consent_claims(carrier.participant_id, jti="bad", scp=["fraud"]), typ=CONSENT_TYPE)

    results = ledger.register(bad, good)

    assert [(r.index, r.status) for r in results] == [(0, REJECTED), (1, ACCEPTED)]
    assert ledger.stored(f"{carrier.participant_id}/bad") is None
    assert ledger.stored(f"{carrier.participant_id}/good") is not None


def test_a_refusal_with_a_wildcard_among_numbers_is_rejected(ledger):
    app = ledger.federation.app
    now = now_utc()
    claims = {"iss": app.participant_id, "jti": "w", "iat": int(now.timestamp()), "clr": ["*", CALLER], "cle": CALLEE}

    rejected(ledger.refuse(sign_as(app, claims, typ=REFUSAL_TYPE)), "bad_claim")


def test_an_empty_request_is_invalid(ledger):
    with pytest.raises(ExchangeError) as refused:
        ledger.register()

    assert refused.value.code == grpc.StatusCode.INVALID_ARGUMENT


def test_a_state_query_with_a_bad_number_is_invalid(ledger):
    with pytest.raises(ExchangeError) as refused:
        ledger.state(callee="12")

    assert refused.value.code == grpc.StatusCode.INVALID_ARGUMENT
