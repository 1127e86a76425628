"""SHAKEN PASSporT verification (RFC 8224 / 8225 / 8588, ATIS-1000074).

The checks run in a fixed order and the first failure names its reason, as in
``numrep.signing.jws``, so a carrier can tell a missing certificate from a
forged signature from a replayed token:

1. ``malformed``              segments, base64url or JSON cannot be read
2. ``bad_header``             alg is not ES256, typ is not "passport", ppt is not
                              "shaken", x5u missing or not https, unknown ``crit``;
                              in the header form also the ``alg``/``ppt``
                              parameters and ``info`` (which must equal x5u)
3. ``certificate_unavailable`` no certificate cached for x5u (never fetched)
4. ``untrusted_certificate``  not an EC P-256 key, leaf expired or not yet valid,
                              or the chain does not verify to a configured anchor
5. ``bad_signature``          the ES256 signature does not verify with the leaf key
6. ``stale``                  iat more than ``max_age`` before ``now``, or more than
                              ``max_age`` after it (a missing or non-numeric iat is
                              ``malformed_claims``, reported at this step)
7. ``malformed_claims``       attest not A/B/C, dest.tn not an array of strings,
                              orig.tn not a telephone number string, origid not a UUID
8. ``number_mismatch``        orig.tn is not the number being looked up

Claims are judged only after the signature verifies: before that they are
whatever the sender wrote. Success is ``verified_a``, ``verified_b`` or
``verified_c``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.x509 import verification

from numrep.core.errors import InvalidNumber
from numrep.core.numbers import normalize
from numrep.shaken.anchors import TrustAnchors
from numrep.shaken.passport import MALFORMED, PassportError, PassportToken, parse_identity_header

BAD_HEADER = "bad_header"
CERTIFICATE_UNAVAILABLE = "certificate_unavailable"
UNTRUSTED_CERTIFICATE = "untrusted_certificate"
BAD_SIGNATURE = "bad_signature"
STALE = "stale"
MALFORMED_CLAIMS = "malformed_claims"
NUMBER_MISMATCH = "number_mismatch"
VERIFIED_A = "verified_a"
VERIFIED_B = "verified_b"
VERIFIED_C = "verified_c"

FAILURE_REASONS = (
    MALFORMED,
    BAD_HEADER,
    CERTIFICATE_UNAVAILABLE,
    UNTRUSTED_CERTIFICATE,
    BAD_SIGNATURE,
    STALE,
    MALFORMED_CLAIMS,
    NUMBER_MISMATCH,
)
VERIFIED_REASONS = (VERIFIED_A, VERIFIED_B, VERIFIED_C)

DEFAULT_MAX_AGE = timedelta(seconds=60)  # the freshness window RFC 8224 (section 6.2.1) recommends and SHAKEN uses

ATTESTATIONS = {
    "A": "full attestation: the signing provider knows the caller and that it may use this number",
    "B": "partial attestation: the signing provider knows the caller but not that it may use this number",
    "C": "gateway attestation: the signing provider only knows where the call entered its network",
}

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_VISUAL_SEPARATORS = re.compile(r"[\s\-.()]")  # RFC 8224 section 8.3
_DIGITS = re.compile(r"^[0-9]{1,15}$")  # ASCII only: str.isdigit() would accept other scripts


@dataclass(frozen=True)
class ShakenResult:
    """The outcome of verifying one PASSporT.

    ``reason`` is ``verified_a``/``verified_b``/``verified_c`` or one of
    ``FAILURE_REASONS``; ``attestation`` and ``origid`` are set only when
    ``verified`` (a failed PASSporT's claims are not evidence of anything).
    """

    verified: bool
    reason: str
    attestation: str | None = None
    origid: str | None = None
    message: str = ""


class _Fail(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def verify_passport(
    token_or_header: str | PassportToken,
    expected_orig_tn: str,
    anchors: TrustAnchors,
    now: datetime,
    max_age: timedelta = DEFAULT_MAX_AGE,
) -> ShakenResult:
    """Verify a SHAKEN PASSporT for a call from ``expected_orig_tn``; see the module docstring.

    ``token_or_header`` is an Identity header value, a bare compact PASSporT,
    or an already parsed ``PassportToken``. ``now`` must be timezone-aware.
    Raises ``InvalidNumber`` when ``expected_orig_tn`` itself is not a valid
    number (the caller's mistake, not the PASSporT's) and ``ValueError`` for a
    naive ``now`` or a non-positive ``max_age``.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be a timezone-aware datetime")
    if max_age <= timedelta(0):
        raise ValueError("max_age must be positive")
    expected = normalize(expected_orig_tn)
    try:
        token = token_or_header if isinstance(token_or_header, PassportToken) else parse_identity_header(token_or_header)
        x5u = _check_header(token)
        key = _check_certificate(x5u, anchors, now)
        _check_signature(token, key)
        _check_freshness(token.claims, now, max_age)
        attest, origid, orig_digits = _check_claims(token.claims)
        _check_number(orig_digits, expected)
    except (PassportError, _Fail) as failure:
        return ShakenResult(verified=False, reason=failure.reason, message=failure.message)
    return ShakenResult(
        verified=True,
        reason=f"verified_{attest.lower()}",
        attestation=attest,
        origid=origid,
        message=f"caller ID {expected} verified with {ATTESTATIONS[attest]} (attest {attest}, origid {origid})",
    )


# -- 2. header -------------------------------------------------------------------


def _check_header(token: PassportToken) -> str:
    header = token.header
    alg = header.get("alg")
    if alg != "ES256":
        raise _Fail(BAD_HEADER, f"PASSporT alg is {alg!r}; SHAKEN requires 'ES256'")
    typ = header.get("typ")
    if typ != "passport":
        raise _Fail(BAD_HEADER, f"PASSporT typ is {typ!r}; expected 'passport'")
    ppt = header.get("ppt")
    if ppt != "shaken":
        raise _Fail(BAD_HEADER, f"PASSporT ppt is {ppt!r}; expected 'shaken'")
    x5u = header.get("x5u")
    if not isinstance(x5u, str) or not x5u:
        raise _Fail(BAD_HEADER, "PASSporT header has no x5u (the URL of the signing certificate)")
    parts = urlsplit(x5u)
    if parts.scheme != "https" or not parts.hostname:
        raise _Fail(BAD_HEADER, f"PASSporT x5u {x5u!r} is not an https URL")
    crit = header.get("crit")
    if crit is not None:
        raise _Fail(BAD_HEADER, f"PASSporT header lists critical extensions {crit!r} that this verifier does not implement")
    if token.from_identity_header:
        params = token.params
        if "alg" in params and params["alg"] != alg:
            raise _Fail(BAD_HEADER, f"Identity header alg={params['alg']!r} but the PASSporT is signed with {alg}")
        if params.get("ppt") != ppt:
            raise _Fail(BAD_HEADER, f"Identity header ppt={params.get('ppt')!r}; expected 'shaken' to match the PASSporT")
        info = params.get("info")
        if not info:
            raise _Fail(BAD_HEADER, "Identity header has no info=<...> parameter")
        if info != x5u:
            raise _Fail(BAD_HEADER, f"Identity header info <{info}> differs from the PASSporT x5u {x5u}")
    return x5u


# -- 3, 4. certificate -------------------------------------------------------------


def _check_certificate(x5u: str, anchors: TrustAnchors, now: datetime) -> ec.EllipticCurvePublicKey:
    bundle = anchors.cached(x5u)
    if bundle is None:
        raise _Fail(
            CERTIFICATE_UNAVAILABLE,
            f"no certificate cached for x5u {x5u}; certificates are not fetched during a call, load it into the cache",
        )
    leaf, intermediates = bundle[0], bundle[1:]
    key = leaf.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise _Fail(UNTRUSTED_CERTIFICATE, f"the certificate at {x5u} holds {_describe_key(key)}; ES256 needs an EC P-256 key")
    subject = leaf.subject.rfc4514_string() or "(empty subject)"
    if now < leaf.not_valid_before_utc:
        raise _Fail(
            UNTRUSTED_CERTIFICATE,
            f"the certificate {subject} at {x5u} is not valid before {leaf.not_valid_before_utc:%Y-%m-%dT%H:%M:%SZ}",
        )
    if now > leaf.not_valid_after_utc:
        raise _Fail(
            UNTRUSTED_CERTIFICATE,
            f"the certificate {subject} at {x5u} expired at {leaf.not_valid_after_utc:%Y-%m-%dT%H:%M:%SZ}",
        )
    try:
        anchors.verify_chain(leaf, intermediates, now)
    except verification.VerificationError as exc:
        raise _Fail(
            UNTRUSTED_CERTIFICATE,
            f"the certificate {subject} at {x5u} does not chain to a configured trust anchor: {exc}",
        ) from None
    return key


def _describe_key(key: Any) -> str:
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"an EC {key.curve.name} key"
    size = getattr(key, "key_size", None)
    kind = type(key).__name__.removeprefix("_").replace("PublicKey", "")
    return f"a key of type {kind}" + (f" ({size} bits)" if size else "")


# -- 5. signature -----------------------------------------------------------------


def _check_signature(token: PassportToken, key: ec.EllipticCurvePublicKey) -> None:
    if len(token.signature) != 64:
        raise _Fail(BAD_SIGNATURE, f"an ES256 signature is 64 bytes (r || s); this one is {len(token.signature)}")
    r = int.from_bytes(token.signature[:32], "big")
    s = int.from_bytes(token.signature[32:], "big")
    try:
        key.verify(encode_dss_signature(r, s), token.signing_input, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise _Fail(BAD_SIGNATURE, "the PASSporT signature does not verify with the certificate's key") from None


# -- 6. freshness -----------------------------------------------------------------


def _check_freshness(claims: Any, now: datetime, max_age: timedelta) -> None:
    iat = claims.get("iat")
    if isinstance(iat, bool) or not isinstance(iat, (int, float)) or not math.isfinite(iat):
        raise _Fail(MALFORMED_CLAIMS, "claim 'iat' is missing or not a number")
    age = now.timestamp() - iat
    allowed = max_age.total_seconds()
    if age > allowed:
        raise _Fail(STALE, f"PASSporT issued {round(age, 1):g} s before the check; at most {allowed:g} s is accepted")
    if -age > allowed:
        raise _Fail(STALE, f"PASSporT issued {round(-age, 1):g} s in the future; clocks may differ by at most {allowed:g} s")


# -- 7. claims ---------------------------------------------------------------------


def _check_claims(claims: Any) -> tuple[str, str, str]:
    attest = claims.get("attest")
    if not isinstance(attest, str) or attest not in ATTESTATIONS:
        raise _Fail(MALFORMED_CLAIMS, f"claim 'attest' is {attest!r}; expected 'A', 'B' or 'C'")
    dest = claims.get("dest")
    tns = dest.get("tn") if isinstance(dest, dict) else None
    if not isinstance(tns, list) or not tns or not all(isinstance(tn, str) and tn for tn in tns):
        raise _Fail(MALFORMED_CLAIMS, "claim 'dest.tn' must be a non-empty array of telephone number strings")
    orig = claims.get("orig")
    orig_tn = orig.get("tn") if isinstance(orig, dict) else None
    if not isinstance(orig_tn, str):
        raise _Fail(MALFORMED_CLAIMS, "claim 'orig.tn' must be a telephone number string")
    digits = canonical_tn(orig_tn)
    if digits is None:
        raise _Fail(MALFORMED_CLAIMS, f"claim 'orig.tn' {orig_tn!r} is not a telephone number (E.164 digits)")
    origid = claims.get("origid")
    if not isinstance(origid, str) or not _UUID.match(origid):
        raise _Fail(MALFORMED_CLAIMS, f"claim 'origid' is {origid!r}; expected a UUID string")
    return attest, origid, digits


def canonical_tn(tn: str) -> str | None:
    """RFC 8224 section 8.3 canonical form: E.164 digits, no '+', no visual separators; None if not a number."""
    digits = _VISUAL_SEPARATORS.sub("", tn).removeprefix("+")
    return digits if _DIGITS.match(digits) else None


# -- 8. number ---------------------------------------------------------------------


def _check_number(orig_digits: str, expected: str) -> None:
    if "+" + orig_digits == expected:  # the common case, without a second trip through phonenumbers
        return
    try:
        signed = normalize("+" + orig_digits)
    except InvalidNumber:
        raise _Fail(NUMBER_MISMATCH, f"the PASSporT vouches for orig.tn {orig_digits}, which is not a valid number, not for {expected}") from None
    if signed != expected:
        raise _Fail(NUMBER_MISMATCH, f"the PASSporT vouches for {signed} but the call shows {expected}")
