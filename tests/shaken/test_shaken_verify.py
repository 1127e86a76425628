"""verify_passport: verified A/B/C, each rejection reason, and the fixed check order."""

from __future__ import annotations

import dataclasses
import socket
from datetime import timedelta

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from numrep.core.errors import InvalidNumber
from numrep.shaken import (
    FAILURE_REASONS,
    ShakenResult,
    TrustAnchors,
    canonical_tn,
    parse_identity_header,
    verify_passport,
)

from shaken_pki import (
    DEST,
    NOW,
    ORIGID,
    X5U,
    Pki,
    b64,
    build_pki,
    ca_cert,
    canonical_json,
    claims,
    header,
    identity_header,
    leaf_cert,
    p256,
    rsa_key,
    sign,
)

CALLER = "+12025550143"


def check(token_or_header, anchors, caller=CALLER, now=NOW, **kwargs) -> ShakenResult:
    return verify_passport(token_or_header, caller, anchors, now, **kwargs)


def assert_rejected(result: ShakenResult, reason: str, fragment: str) -> None:
    assert (result.verified, result.reason) == (False, reason), result.message
    assert fragment in result.message, result.message
    assert result.attestation is None and result.origid is None


# -- verified -----------------------------------------------------------------------


@pytest.mark.parametrize("attest", ["A", "B", "C"])
def test_verified_attestation_levels(pki: Pki, anchors: TrustAnchors, attest: str) -> None:
    token = sign(pki.leaf_key, body=claims(attest=attest))
    result = check(identity_header(token), anchors)
    assert result == ShakenResult(
        verified=True, reason=f"verified_{attest.lower()}", attestation=attest, origid=ORIGID, message=result.message
    )
    assert f"attest {attest}" in result.message and CALLER in result.message


def test_identity_header_form_verifies(pki: Pki, anchors: TrustAnchors) -> None:
    value = f"{sign(pki.leaf_key)};info=<{X5U}>;alg=ES256;ppt=shaken"
    assert check(value, anchors).reason == "verified_a"


def test_identity_header_with_name_spaces_and_quoted_ppt(pki: Pki, anchors: TrustAnchors) -> None:
    value = f'Identity: {sign(pki.leaf_key)} ; info=<{X5U}> ; alg=ES256 ; ppt="shaken"'
    assert check(value, anchors).reason == "verified_a"


def test_bare_compact_form_verifies(pki: Pki, anchors: TrustAnchors) -> None:
    assert check(sign(pki.leaf_key), anchors).reason == "verified_a"


def test_parsed_token_verifies(pki: Pki, anchors: TrustAnchors) -> None:
    token = parse_identity_header(identity_header(sign(pki.leaf_key, body=claims(attest="B"))))
    assert token.from_identity_header and token.info == X5U
    assert check(token, anchors).reason == "verified_b"


def test_token_signed_by_pyjwt_verifies(pki: Pki, anchors: TrustAnchors) -> None:
    """Interoperability: a PASSporT made by a standard JWS library, not our test signer."""
    token = jwt.encode(claims(), pki.leaf_key, algorithm="ES256", headers={"typ": "passport", "ppt": "shaken", "x5u": X5U})
    assert check(token, anchors).reason == "verified_a"


@pytest.mark.parametrize("caller", ["+1 202 555 0143", "+1 (202) 555-0143", "2025550143", "+12025550143"])
@pytest.mark.parametrize("orig_tn", ["12025550143", "+12025550143", "1-202-555-0143"])
def test_number_canonicalisation(pki: Pki, anchors: TrustAnchors, caller: str, orig_tn: str) -> None:
    token = sign(pki.leaf_key, body=claims(orig=orig_tn))
    assert check(token, anchors, caller=caller).reason == "verified_a"


def test_canonical_tn() -> None:
    assert canonical_tn("12025550143") == "12025550143"
    assert canonical_tn("+1 (202) 555-0143") == "12025550143"
    assert canonical_tn("tel:+12025550143") is None
    assert canonical_tn("١٢٠٢٥٥٥٠١٤٣") is None  # non-ASCII digits are not E.164 digits
    assert canonical_tn("1234567890123456") is None  # longer than E.164 allows


def test_result_is_frozen(pki: Pki, anchors: TrustAnchors) -> None:
    result = check(sign(pki.leaf_key), anchors)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.verified = False  # type: ignore[misc]


# -- 1. malformed -------------------------------------------------------------------


def test_malformed(anchors: TrustAnchors) -> None:
    assert_rejected(check("not-a-passport;info=<https://cert.example/cert.pem>", anchors), "malformed", "expected 3 base64url segments")


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("", "empty"),
        ("a.b", "found 2"),
        ("a.b.c.d", "found 4"),
        (f"{b64(b'{}')}..{b64(bytes(64))}", "claims omitted"),
        (f".{b64(b'{}')}.{b64(bytes(64))}", "header segment is empty"),
        (f"{b64(b'{}')}.{b64(b'{}')}.", "signature segment is empty"),
        (f"{b64(b'{}')}.{b64(b'{}')}.ab+/", "not base64url"),
        (f"{b64(b'{}')}.{b64(b'{}')}.abcde", "bad length"),
        (f"{b64(b'not json')}.{b64(b'{}')}.{b64(bytes(64))}", "header segment is not JSON"),
        (f"{b64(b'{}')}.{b64(b'[1,2]')}.{b64(bytes(64))}", "claims segment is JSON but not an object"),
        (f"{b64(b'{}')}.{b64(bytes([0xff, 0xfe]))}.{b64(bytes(64))}", "not UTF-8"),
        (".".join([b64(b"{}"), b64(b'{"iat":NaN}'), b64(bytes(64))]), "NaN is not JSON"),
        (".".join([b64(b"{}"), b64(b'{"orig":1,"orig":2}'), b64(bytes(64))]), "repeats the member 'orig'"),
        (f"{b64(b'{}')}.{b64(b'{}')}.{b64(bytes(64))};info=<{X5U}>;info=<{X5U}>", "repeats the parameter 'info'"),
        (f"{b64(b'{}')}.{b64(b'{}')}.{b64(bytes(64))};info=<{X5U}", "cannot read the Identity header parameters"),
        (f"{b64(b'{}')}.{b64(b'{}')}.{b64(bytes(64))};", "cannot read the Identity header parameters"),
        ("x" * 9000, "longer than 8192"),
    ],
)
def test_malformed_variants(anchors: TrustAnchors, value: str, fragment: str) -> None:
    assert_rejected(check(value, anchors), "malformed", fragment)


def test_malformed_not_text(anchors: TrustAnchors) -> None:
    assert_rejected(check(b"abc", anchors), "malformed", "must be text")  # type: ignore[arg-type]


# -- 2. bad_header ------------------------------------------------------------------


def test_bad_header(pki: Pki, anchors: TrustAnchors) -> None:
    token = sign(pki.leaf_key, header(alg="ES384"))
    assert_rejected(check(identity_header(token), anchors), "bad_header", "alg is 'ES384'; SHAKEN requires 'ES256'")


@pytest.mark.parametrize(
    ("hdr", "fragment"),
    [
        (header(alg="none"), "alg is 'none'"),
        (header(alg="HS256"), "alg is 'HS256'"),
        (header(alg=None), "alg is None"),
        (header(typ="JWT"), "typ is 'JWT'; expected 'passport'"),
        (header(typ=None), "typ is None"),
        (header(ppt="div"), "ppt is 'div'; expected 'shaken'"),
        (header(ppt=None), "ppt is None"),
        (header(x5u=None), "has no x5u"),
        (header(x5u=""), "has no x5u"),
        (header(x5u=["https://cert.example/cert.pem"]), "has no x5u"),
        (header(x5u="http://cert.example/cert.pem"), "'http://cert.example/cert.pem' is not an https URL"),
        (header(x5u="https:///cert.pem"), "is not an https URL"),
        (header(crit=["exp"]), "critical extensions ['exp']"),
    ],
)
def test_bad_header_variants(pki: Pki, anchors: TrustAnchors, hdr: dict, fragment: str) -> None:
    assert_rejected(check(sign(pki.leaf_key, hdr), anchors), "bad_header", fragment)


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"alg": "ES384"}, "Identity header alg='ES384' but the PASSporT is signed with ES256"),
        ({"ppt": "div"}, "Identity header ppt='div'"),
        ({"ppt": None}, "Identity header ppt=None"),
        ({"info": None}, "Identity header has no info=<...> parameter"),
        ({"info": "https://elsewhere.example/cert.pem"}, "info <https://elsewhere.example/cert.pem> differs from the PASSporT x5u"),
    ],
)
def test_bad_identity_header_parameters(pki: Pki, anchors: TrustAnchors, kwargs: dict, fragment: str) -> None:
    assert_rejected(check(identity_header(sign(pki.leaf_key), **kwargs), anchors), "bad_header", fragment)


# -- 3. certificate_unavailable ------------------------------------------------------


def test_certificate_unavailable_is_never_fetched(pki: Pki, anchors: TrustAnchors, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_network(*args, **kwargs):
        raise AssertionError("verification must not touch the network")

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    url = "https://sti.other-carrier.example/sp/4321.pem"
    token = sign(pki.leaf_key, header(x5u=url))
    assert_rejected(check(identity_header(token, info=url), anchors), "certificate_unavailable", f"no certificate cached for x5u {url}")


# -- 4. untrusted_certificate ---------------------------------------------------------


def test_untrusted_certificate_chain_to_unconfigured_anchor(other_pki: Pki, anchors: TrustAnchors) -> None:
    """A well-formed chain and a valid signature, but the root is not one of ours."""
    url = "https://rogue.example/cert.pem"
    anchors.cache_certificate(url, other_pki.bundle)
    token = sign(other_pki.leaf_key, header(x5u=url))
    assert_rejected(check(token, anchors), "untrusted_certificate", "does not chain to a configured trust anchor")


def test_untrusted_certificate_expired(pki: Pki, anchors: TrustAnchors) -> None:
    key = p256()
    old = leaf_cert(key, pki.inter, pki.inter_key, not_before=NOW - timedelta(days=400), not_after=NOW - timedelta(days=1))
    anchors.cache_certificate(X5U, [old, pki.inter])
    assert_rejected(check(sign(key), anchors), "untrusted_certificate", "expired at")


def test_untrusted_certificate_not_yet_valid(pki: Pki, anchors: TrustAnchors) -> None:
    key = p256()
    early = leaf_cert(key, pki.inter, pki.inter_key, not_before=NOW + timedelta(hours=1))
    anchors.cache_certificate(X5U, [early, pki.inter])
    assert_rejected(check(sign(key), anchors), "untrusted_certificate", "is not valid before")


def test_untrusted_certificate_expired_intermediate(pki: Pki, anchors: TrustAnchors) -> None:
    inter_key, key = p256(), p256()
    inter = ca_cert("Lapsed STI-CA", inter_key, pki.root, pki.root_key, not_before=NOW - timedelta(days=800), not_after=NOW - timedelta(days=1))
    anchors.cache_certificate(X5U, [leaf_cert(key, inter, inter_key), inter])
    assert_rejected(check(sign(key), anchors), "untrusted_certificate", "does not chain to a configured trust anchor")


@pytest.mark.parametrize(
    ("make_key", "fragment"),
    [
        (lambda: ec.generate_private_key(ec.SECP384R1()), "holds an EC secp384r1 key; ES256 needs an EC P-256 key"),
        (rsa_key, "holds a key of type RSA (2048 bits); ES256 needs an EC P-256 key"),
    ],
)
def test_untrusted_certificate_wrong_key_type(pki: Pki, anchors: TrustAnchors, make_key, fragment: str) -> None:
    key = make_key()
    anchors.cache_certificate(X5U, [leaf_cert(key, pki.inter, pki.inter_key), pki.inter])
    assert_rejected(check(sign(key), anchors), "untrusted_certificate", fragment)


def test_untrusted_certificate_missing_intermediate(pki: Pki, anchors: TrustAnchors) -> None:
    anchors.cache_certificate(X5U, [pki.leaf])
    assert_rejected(check(sign(pki.leaf_key), anchors), "untrusted_certificate", "does not chain to a configured trust anchor")


def test_untrusted_certificate_leaf_is_a_ca(pki: Pki, anchors: TrustAnchors) -> None:
    key = p256()
    anchors.cache_certificate(X5U, [leaf_cert(key, pki.inter, pki.inter_key, ca=True), pki.inter])
    assert_rejected(check(sign(key), anchors), "untrusted_certificate", "is a CA certificate")


def test_untrusted_certificate_self_signed_leaf(anchors: TrustAnchors) -> None:
    key = p256()
    anchors.cache_certificate(X5U, [ca_cert("Self-signed SP", key)])
    assert_rejected(check(sign(key), anchors), "untrusted_certificate", "does not chain to a configured trust anchor")


def test_untrusted_certificate_no_anchors_configured(pki: Pki) -> None:
    empty = TrustAnchors(cache={X5U: pki.bundle})
    assert_rejected(check(sign(pki.leaf_key), empty), "untrusted_certificate", "no trust anchors are configured")


def test_intermediate_as_anchor_is_enough(pki: Pki) -> None:
    trust = TrustAnchors([pki.inter], cache={X5U: [pki.leaf]})
    assert check(sign(pki.leaf_key), trust).reason == "verified_a"


# -- 5. bad_signature -----------------------------------------------------------------


def test_bad_signature(pki: Pki, anchors: TrustAnchors) -> None:
    """Signed with a key that is not the certificate's: x5u points at someone else's certificate."""
    token = sign(p256())
    assert_rejected(check(token, anchors), "bad_signature", "does not verify with the certificate's key")


def test_bad_signature_tampered_claims(pki: Pki, anchors: TrustAnchors) -> None:
    head, _, sig = sign(pki.leaf_key).split(".")
    forged = f"{head}.{b64(canonical_json(claims(orig='12025550199')))}.{sig}"
    assert_rejected(check(forged, anchors), "bad_signature", "does not verify")


def test_bad_signature_wrong_length(pki: Pki, anchors: TrustAnchors) -> None:
    head, body, sig = sign(pki.leaf_key).split(".")
    assert_rejected(check(f"{head}.{body}.{b64(bytes(70))}", anchors), "bad_signature", "64 bytes (r || s); this one is 70")


def test_bad_signature_der_encoded(pki: Pki, anchors: TrustAnchors) -> None:
    """A DER signature (what OpenSSL gives by default) is not a JWS signature."""
    from cryptography.hazmat.primitives import hashes

    head, body, _ = sign(pki.leaf_key).split(".")
    der = pki.leaf_key.sign(f"{head}.{body}".encode(), ec.ECDSA(hashes.SHA256()))
    assert_rejected(check(f"{head}.{body}.{b64(der)}", anchors), "bad_signature", "64 bytes")


# -- 6. stale -------------------------------------------------------------------------


def test_stale(pki: Pki, anchors: TrustAnchors) -> None:
    token = sign(pki.leaf_key, body=claims(iat=NOW - timedelta(seconds=61)))
    assert_rejected(check(token, anchors), "stale", "issued 61 s before the check; at most 60 s is accepted")


def test_stale_future(pki: Pki, anchors: TrustAnchors) -> None:
    token = sign(pki.leaf_key, body=claims(iat=NOW + timedelta(seconds=61)))
    assert_rejected(check(token, anchors), "stale", "issued 61 s in the future; clocks may differ by at most 60 s")


@pytest.mark.parametrize("offset", [-60, -1, 0, 1, 60])
def test_sixty_second_window_edges_accepted(pki: Pki, anchors: TrustAnchors, offset: int) -> None:
    token = sign(pki.leaf_key, body=claims(iat=NOW + timedelta(seconds=offset)))
    assert check(token, anchors).reason == "verified_a"


def test_window_is_configurable(pki: Pki, anchors: TrustAnchors) -> None:
    token = sign(pki.leaf_key, body=claims(iat=NOW - timedelta(seconds=30)))
    assert check(token, anchors).reason == "verified_a"
    assert_rejected(check(token, anchors, max_age=timedelta(seconds=10)), "stale", "at most 10 s is accepted")
    old = sign(pki.leaf_key, body=claims(iat=NOW - timedelta(minutes=4)))
    assert check(old, anchors, max_age=timedelta(minutes=5)).reason == "verified_a"


# -- 7. malformed_claims --------------------------------------------------------------


def test_malformed_claims(pki: Pki, anchors: TrustAnchors) -> None:
    token = sign(pki.leaf_key, body=claims(attest="D"))
    assert_rejected(check(token, anchors), "malformed_claims", "claim 'attest' is 'D'; expected 'A', 'B' or 'C'")


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (claims(attest="a"), "claim 'attest' is 'a'"),
        (claims(attest=None), "claim 'attest' is None"),
        (claims(dest={"tn": DEST}), "'dest.tn' must be a non-empty array"),
        (claims(dest={"tn": []}), "'dest.tn' must be a non-empty array"),
        (claims(dest={"tn": [12015550123]}), "'dest.tn' must be a non-empty array"),
        (claims(dest={"uri": ["sip:bob@example.com"]}), "'dest.tn' must be a non-empty array"),
        (claims(dest=[DEST]), "'dest.tn' must be a non-empty array"),
        (claims(orig=12025550143), "'orig.tn' must be a telephone number string"),
        (claims(orig=None), "'orig.tn' must be a telephone number string"),
        (claims(orig="sip:alice@example.com"), "'orig.tn' 'sip:alice@example.com' is not a telephone number"),
        (claims(origid=None), "claim 'origid' is None; expected a UUID string"),
        (claims(origid="not-a-uuid"), "claim 'origid' is 'not-a-uuid'"),
        (claims(origid="123e4567e89b12d3a456426655440000"), "expected a UUID string"),
        (claims(iat=None), "claim 'iat' is missing or not a number"),
        (claims(iat="1748874600"), "claim 'iat' is missing or not a number"),
        (claims(iat=True), "claim 'iat' is missing or not a number"),
    ],
)
def test_malformed_claims_variants(pki: Pki, anchors: TrustAnchors, body: dict, fragment: str) -> None:
    assert_rejected(check(sign(pki.leaf_key, body=body), anchors), "malformed_claims", fragment)


def test_extra_claims_and_multiple_destinations_are_fine(pki: Pki, anchors: TrustAnchors) -> None:
    body = claims(dest={"tn": [DEST, "12015550124"]}, div={"tn": "12025550100"})
    assert check(sign(pki.leaf_key, body=body), anchors).reason == "verified_a"


# -- 8. number_mismatch ---------------------------------------------------------------


def test_number_mismatch(pki: Pki, anchors: TrustAnchors) -> None:
    token = sign(pki.leaf_key, body=claims(orig="12025550199"))
    assert_rejected(check(token, anchors), "number_mismatch", "vouches for +12025550199 but the call shows +12025550143")


def test_number_mismatch_invalid_orig(pki: Pki, anchors: TrustAnchors) -> None:
    token = sign(pki.leaf_key, body=claims(orig="1555"))
    assert_rejected(check(token, anchors), "number_mismatch", "orig.tn 1555, which is not a valid number")


def test_number_mismatch_national_digits_are_not_e164(pki: Pki, anchors: TrustAnchors) -> None:
    """orig.tn is E.164 digits: '2025550143' without the country code is +202 5550143 (Egypt), not the US number."""
    token = sign(pki.leaf_key, body=claims(orig="2025550143"))
    assert check(token, anchors).reason == "number_mismatch"


# -- order and contract ----------------------------------------------------------------


def test_checks_run_in_fixed_order(pki: Pki, other_pki: Pki, anchors: TrustAnchors) -> None:
    worst = claims(attest="Z", orig="12025550199", iat=NOW - timedelta(hours=1))
    url = "https://rogue.example/cert.pem"
    anchors.cache_certificate(url, other_pki.bundle)
    cases = [
        ("a.b", "malformed"),
        (sign(p256(), header(typ="JWT", x5u="https://nowhere.example/x.pem"), worst), "bad_header"),
        (sign(p256(), header(x5u="https://nowhere.example/x.pem"), worst), "certificate_unavailable"),
        (sign(p256(), header(x5u=url), worst), "untrusted_certificate"),
        (sign(p256(), header(), worst), "bad_signature"),
        (sign(pki.leaf_key, header(), worst), "stale"),
        (sign(pki.leaf_key, header(), claims(attest="Z", orig="12025550199")), "malformed_claims"),
        (sign(pki.leaf_key, header(), claims(orig="12025550199")), "number_mismatch"),
        (sign(pki.leaf_key, header(), claims()), "verified_a"),
    ]
    assert [check(token, anchors).reason for token, _ in cases] == [reason for _, reason in cases]
    assert [reason for _, reason in cases[:-1]] == list(FAILURE_REASONS)


def test_naive_now_is_refused(pki: Pki, anchors: TrustAnchors) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        check(sign(pki.leaf_key), anchors, now=NOW.replace(tzinfo=None))


def test_non_positive_window_is_refused(pki: Pki, anchors: TrustAnchors) -> None:
    with pytest.raises(ValueError, match="max_age"):
        check(sign(pki.leaf_key), anchors, max_age=timedelta(0))


def test_invalid_looked_up_number_is_the_callers_error(pki: Pki, anchors: TrustAnchors) -> None:
    with pytest.raises(InvalidNumber):
        check(sign(pki.leaf_key), anchors, caller="12")


def test_independent_hierarchies_do_not_cross(pki: Pki) -> None:
    """The same x5u served by a fresh hierarchy does not verify against the original root."""
    fresh = build_pki()
    trust = TrustAnchors([pki.root], cache={X5U: fresh.bundle})
    assert check(sign(fresh.leaf_key), trust).reason == "untrusted_certificate"
