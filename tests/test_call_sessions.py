"""Call sessions (numrep.signing.sessions), end to end: a participant proves its
key once with OpenSession, then authenticates each call with a single-use call
token MAC'd with the session's key. Every refusal is UNAUTHENTICATED with a
message naming the reason, and the refused call had no effect."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import grpc
import pytest

from numrep.core.errors import InvalidArgument
from numrep.core.model import Participant, Role
from numrep.core.pseudonym import Pseudonymizer
from numrep.signing.keys import generate_identity
from numrep.signing.labels import sign_label
from numrep.signing.jws import JwsRejected
from numrep.signing.sessions import CALL_TOKEN_TYPE, CallSession, mint_call_token, read_session_id, verify_call_token
from numrep.signing.tokens import TOKEN_TYPE, Proof, ReplayCache, mint_token
from numrep.v1 import cases_pb2, consent_pb2, lookup_pb2, publish_pb2, registry_pb2
from numrep_client._sessions import session_from_pb

from numrep_testkit import NUMBER, bearer, b64json, hmac_jws, now_utc, payload_of, token_claims


@pytest.fixture
def session_of(federation, raw):
    """``session_of(identity, lifetime_seconds=0)``: a session opened over gRPC with a signed token."""

    def open_one(identity, lifetime_seconds: int = 0) -> CallSession:
        outcome = raw.call("RegistryService/OpenSession", registry_pb2.OpenSessionRequest(lifetime_seconds=lifetime_seconds),
                           bearer(mint_token(identity)))
        assert outcome.code == grpc.StatusCode.OK, outcome.details
        return session_from_pb(outcome.response)

    return open_one


def test_a_session_names_the_participant_and_the_key_that_opened_it(federation, session_of):
    session = session_of(federation.carrier)

    assert (session.participant_id, session.kid) == ("carrier-north", federation.carrier.kid)
    assert len(session.key) == 32
    assert read_session_id(session.session_id)[:2] == ("carrier-north", federation.carrier.kid)
    assert timedelta(minutes=29) < session.expires_at - now_utc() <= timedelta(minutes=30)


def test_calls_with_call_tokens_are_answered_and_act_as_the_participant(server, federation, raw, session_of):
    session = session_of(federation.carrier)

    published = raw.call("PublishService/Publish", publish_pb2.PublishRequest(labels=[sign_label(federation.carrier, NUMBER, "fraud")]),
                         bearer(mint_call_token(session)))
    answered = raw.call("LookupService/Lookup", lookup_pb2.LookupRequest(number=NUMBER), bearer(mint_call_token(session)))

    assert published.code == grpc.StatusCode.OK, published.details
    assert [r.status for r in published.response.results] == [publish_pb2.ITEM_STATUS_ACCEPTED]
    assert answered.code == grpc.StatusCode.OK
    assert [c.participant_id for c in answered.response.contributions if c.label_id] == ["carrier-north"]


def test_a_session_keeps_the_roles_permissions(federation, raw, session_of):
    """A carrier's session may not read the learned trust (the regulator's view): the session is the participant, no more."""
    session = session_of(federation.carrier)

    outcome = raw.call("RegistryService/GetTrust", registry_pb2.GetTrustRequest(), bearer(mint_call_token(session)))

    assert outcome.code == grpc.StatusCode.PERMISSION_DENIED
    assert "role carrier may not call RegistryService/GetTrust" in outcome.details


def test_a_replayed_call_token_is_refused(federation, raw, session_of, refused):
    token = mint_call_token(session_of(federation.carrier))
    assert raw.call("LookupService/Lookup", lookup_pb2.LookupRequest(number=NUMBER), bearer(token)).code == grpc.StatusCode.OK

    refused(bearer(token), "(replayed)")


def test_a_call_token_with_an_altered_session_id_is_refused_bad_signature(federation, session_of, refused):
    """Stretching the session's expiry in its id derives another key: the MAC fails."""
    session = session_of(federation.carrier)
    participant, kid, expires = read_session_id(session.session_id)
    fields = [participant, kid, int(expires.timestamp()) + 86_400, json.loads(base64.urlsafe_b64decode(session.session_id + "=="))[3]]
    stretched = CallSession(b64json(fields), session.key, participant, kid, expires)

    refused(bearer(mint_call_token(stretched)), "(bad_signature)")


def test_a_call_token_for_another_participant_is_refused_bad_signature(federation, session_of, refused):
    """The regulator's session id with the carrier's key: nobody borrows a session id."""
    carrier, regulator = session_of(federation.carrier), session_of(federation.regulator)
    borrowed = CallSession(regulator.session_id, carrier.key, regulator.participant_id, regulator.kid, regulator.expires_at)

    refused(bearer(mint_call_token(borrowed)), "(bad_signature)")


def test_a_session_of_an_exchange_with_another_secret_is_refused(server, federation, monkeypatch, session_of, refused):
    session = session_of(federation.carrier)
    monkeypatch.setattr(server.exchange, "pseudonym", Pseudonymizer(b"another exchange's secret"))

    refused(bearer(mint_call_token(session)), "(bad_signature)")


def test_a_session_id_this_exchange_never_hands_out_is_refused_unknown_session(federation, session_of, refused):
    session = session_of(federation.carrier)
    forged = CallSession("bm90LWEtc2Vzc2lvbg", session.key, session.participant_id, session.kid, session.expires_at)

    refused(bearer(mint_call_token(forged)), "(unknown_session)")


def test_an_expired_session_is_refused(server, federation, raw, monkeypatch, session_of):
    session = session_of(federation.carrier, lifetime_seconds=60)
    later = now_utc() + timedelta(minutes=2)
    label = sign_label(federation.carrier, NUMBER, "fraud", jti="carried")
    monkeypatch.setattr(server.exchange, "clock", lambda: later)

    outcome = raw.call("PublishService/Publish", publish_pb2.PublishRequest(labels=[label]), bearer(mint_call_token(session, now=later)))

    assert outcome.code == grpc.StatusCode.UNAUTHENTICATED
    assert "(session_expired)" in outcome.details and "open a new one" in outcome.details
    assert server.store.get_label("carrier-north/carried") is None


def test_revoking_the_key_that_opened_a_session_ends_it(federation, connect, session_of, refused):
    session = session_of(federation.carrier)
    connect(federation.carrier).revoke_key("carrier-north", federation.carrier.kid)

    refused(bearer(mint_call_token(session)), "(revoked_key)", "which opened this session")


def test_a_call_token_cannot_open_a_session(federation, raw, session_of):
    """Otherwise a stolen session key could renew itself for as long as the key lives."""
    session = session_of(federation.carrier)

    outcome = raw.call("RegistryService/OpenSession", registry_pb2.OpenSessionRequest(), bearer(mint_call_token(session)))

    assert outcome.code == grpc.StatusCode.PERMISSION_DENIED
    assert "not a call token" in outcome.details


@pytest.mark.parametrize("rpc, request_of", [
    ("RegistryService/AddKey", lambda f: registry_pb2.AddKeyRequest(participant_id="carrier-north",
                                                                     jwk=json.dumps(generate_identity("carrier-north", Role.CARRIER).public_jwk()))),
    ("RegistryService/RevokeKey", lambda f: registry_pb2.RevokeKeyRequest(participant_id="carrier-north", kid=f.carrier.kid)),
    ("PublishService/Retract", lambda f: publish_pb2.RetractRequest(label_ids=["carrier-north/x"])),
    ("ConsentService/RevokeConsent", lambda f: consent_pb2.RevokeConsentRequest()),
    ("CaseService/FileComplaint", lambda f: cases_pb2.FileComplaintRequest(number=NUMBER, category="fraud", text="x")),
])
def test_a_call_session_may_not_manage_keys_or_undo_work(server, federation, raw, session_of, rpc, request_of):
    """A stolen session key reads and publishes (each label carries its own signature)
    until the session ends; it cannot add a key, revoke one, retract, or write cases."""
    session = session_of(federation.carrier)
    before = server.exchange.get_participant("carrier-north")

    outcome = raw.call(rpc, request_of(federation), bearer(mint_call_token(session)))

    assert outcome.code == grpc.StatusCode.PERMISSION_DENIED, outcome.details
    assert f"{rpc} needs a token signed with your key" in outcome.details
    assert server.exchange.get_participant("carrier-north") == before


def test_a_session_lives_and_dies_with_the_key_that_opened_it(server, federation, connect, raw, session_of):
    """A carrier with two keys: revoking the other key leaves the session; revoking its own ends it."""
    carrier, second = federation.carrier, generate_identity("carrier-north", Role.CARRIER, "EdDSA")
    connect(carrier).add_key("carrier-north", json.dumps(second.public_jwk()))
    by_first, by_second = session_of(carrier), session_of(second)
    assert (by_first.kid, by_second.kid) == (carrier.kid, second.kid)

    connect(carrier).revoke_key("carrier-north", second.kid)
    first = raw.call("LookupService/Lookup", lookup_pb2.LookupRequest(number=NUMBER), bearer(mint_call_token(by_first)))
    ended = raw.call("LookupService/Lookup", lookup_pb2.LookupRequest(number=NUMBER), bearer(mint_call_token(by_second)))

    assert first.code == grpc.StatusCode.OK
    assert ended.code == grpc.StatusCode.UNAUTHENTICATED and "(revoked_key)" in ended.details


def test_a_session_for_a_participant_or_key_the_registry_lacks_is_refused(server, federation, refused):
    """Sessions the exchange itself opened (valid MACs) naming what is not registered."""
    carrier = server.exchange.get_participant("carrier-north")
    nobody = Participant("nobody", Role.CARRIER, "", carrier.keys)

    refused(bearer(mint_call_token(server.exchange.open_session(Proof(nobody, federation.carrier.kid, "token")))),
            "(unknown_participant)")
    refused(bearer(mint_call_token(server.exchange.open_session(Proof(carrier, "no-such-kid", "token")))), "(unknown_kid)")


def test_a_key_id_too_long_to_name_in_a_session_is_refused_when_opening(server):
    """Rather than hand out a session its own verifier would refuse."""
    participant = Participant("carrier-long", Role.CARRIER, "", ())

    with pytest.raises(InvalidArgument, match="too long to name in a session"):
        server.exchange.open_session(Proof(participant, "k" * 400, "token"))


@pytest.mark.parametrize("session_id", [
    "x" * 600,                                           # longer than any id handed out
    b64json({"p": "carrier-north"}),                     # not a list
    b64json(["carrier-north", "kid", True, "00"]),        # a bool expiry
    b64json(["carrier-north", "kid", 10**30, "00"]),      # beyond any date
    b64json(["carrier-north", "", 2_000_000_000, "00"]),  # an empty field
    "_-_-",                                              # not JSON
])
def test_a_session_id_this_exchange_could_not_have_written_is_refused_unknown_session(federation, refused, session_id):
    header = {"alg": "HS256", "typ": CALL_TOKEN_TYPE, "kid": session_id}

    refused(bearer(hmac_jws(header, token_claims("carrier-north"), b"k" * 32)), "(unknown_session)")


def test_a_call_token_without_a_session_id_is_refused_missing_kid(federation, refused):
    header = {"alg": "HS256", "typ": CALL_TOKEN_TYPE}

    refused(bearer(hmac_jws(header, token_claims("carrier-north"), b"k" * 32)), "(missing_kid)")


@pytest.mark.parametrize("seconds", [4 * 3600 + 1, 10**9])
def test_a_session_longer_than_the_maximum_is_refused(federation, raw, seconds):
    outcome = raw.call("RegistryService/OpenSession", registry_pb2.OpenSessionRequest(lifetime_seconds=seconds),
                       bearer(mint_token(federation.carrier)))

    assert outcome.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "a session lasts 1 to 14400 s" in outcome.details


def test_a_session_key_does_not_sign_bearer_tokens(federation, session_of, refused):
    """HS256 under the session key, typed as a signed bearer token: the signed-token
    path accepts no HMAC (no algorithm confusion between the two)."""
    session = session_of(federation.carrier)
    header = {"alg": "HS256", "typ": TOKEN_TYPE, "kid": session.session_id}

    refused(bearer(hmac_jws(header, token_claims("carrier-north"), session.key)), "(alg_hmac)")


@pytest.mark.parametrize("alg", ["none", "HS512", "EdDSA"])
def test_a_call_token_under_another_algorithm_is_refused(federation, session_of, refused, alg):
    session = session_of(federation.carrier)
    token = mint_call_token(session)
    head, claims, mac = token.split(".")
    header = {"alg": alg, "typ": CALL_TOKEN_TYPE, "kid": session.session_id}

    refused(bearer(f"{b64json(header)}.{claims}.{mac}"), "(alg_not_allowed)")


@pytest.mark.parametrize("typ", [TOKEN_TYPE, "JWT", None])
def test_a_call_token_typed_as_anything_else_is_refused_wrong_type(server, federation, session_of, typ):
    """The exchange sends a token to the call-session verifier by its type; the
    verifier checks it again, for any other caller."""
    session = session_of(federation.carrier)
    header = {"alg": "HS256", "typ": typ, "kid": session.session_id}
    token = hmac_jws({k: v for k, v in header.items() if v is not None}, token_claims("carrier-north"), session.key)
    exchange = server.exchange

    with pytest.raises(JwsRejected) as refused:
        verify_call_token(token, exchange._session_key, exchange.participant, now_utc(), ReplayCache())

    assert refused.value.reason == "wrong_type"


@pytest.mark.parametrize("change, reason", [
    ({"aud": "another-exchange"}, "wrong_audience"),
    ({"exp": None}, "missing_claim"),
    ({"jti": None}, "missing_claim"),
    ({"iat_minus": 600}, "expired"),
    ({"lifetime": 3600}, "lifetime_too_long"),
])
def test_a_call_token_says_what_a_bearer_token_says(federation, session_of, refused, change, reason):
    session = session_of(federation.carrier)
    claims = payload_of(mint_call_token(session))
    if "iat_minus" in change:
        claims["iat"] -= change["iat_minus"]
        claims["exp"] -= change["iat_minus"]
    elif "lifetime" in change:
        claims["exp"] = claims["iat"] + change["lifetime"]
    else:
        claims.update(change)
        claims = {k: v for k, v in claims.items() if v is not None}
    header = {"alg": "HS256", "typ": CALL_TOKEN_TYPE, "kid": session.session_id}

    refused(bearer(hmac_jws(header, claims, session.key)), f"({reason})")


def test_every_replica_sharing_the_secret_accepts_a_session_and_no_other_does(server, federation, tmp_path, session_of):
    """No session is stored: a replica (or a restarted exchange) with the same
    secret derives the same key; one with another secret refuses."""
    from numrep.config import pseudonym_secret  # the data directory's secret, as `numrep serve` reads it
    from numrep.core.errors import Unauthenticated
    from numrep.exchange import Exchange

    session = session_of(federation.carrier)
    replica = Exchange(server.store, Pseudonymizer(pseudonym_secret(tmp_path / "exchange")))
    stranger = Exchange(server.store, Pseudonymizer(b"a secret of another deployment"))

    assert replica.prove(mint_call_token(session)).participant.id == "carrier-north"
    assert replica.prove(mint_call_token(session)).via == "session"
    with pytest.raises(Unauthenticated, match=r"\(bad_signature\)"):
        stranger.prove(mint_call_token(session))


class _Connection:
    """What ``confidential`` reads of a call's ``grpc.aio.ServicerContext``."""

    def __init__(self, security: bytes | None, peer: str) -> None:
        self._security, self._peer = security, peer

    def auth_context(self) -> dict[str, list[bytes]]:
        return {"transport_security_type": [self._security]} if self._security else {}

    def peer(self) -> str:
        return self._peer


@pytest.mark.parametrize("security, peer, sent", [
    (b"ssl", "ipv4:203.0.113.7:50123", True),
    (b"insecure", "ipv4:127.0.0.1:50123", True),
    (None, "ipv6:[::1]:50123", True),
    (None, "unix:/run/numrep.sock", True),
    (b"insecure", "ipv6:[::ffff:127.0.0.1]:50123", True),  # a server listening on [::]
    (b"insecure", "ipv4:203.0.113.7:50123", False),
    (None, "ipv6:[2001:db8::7]:50123", False),
])
def test_a_session_key_is_sent_only_over_tls_or_within_the_host(security, peer, sent):
    from numrep.api.peer_identity import confidential

    assert confidential(_Connection(security, peer)) is sent  # type: ignore[arg-type]
