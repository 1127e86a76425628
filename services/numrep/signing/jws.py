"""Verification shared by signed labels and bearer tokens.

Both are compact JWS signed with a participant's registered key. The checks
run in a fixed order and the first failure names its reason, so a publisher
can tell "unknown kid" from "bad signature" from "expired".
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable

import jwt

from numrep.core.model import Participant
from numrep.signing.keys import SIGNING_ALGORITHMS, load_public_key

ParticipantLookup = Callable[[str], Participant | None]


class JwsRejected(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class VerifiedJws:
    header: dict[str, Any]
    claims: dict[str, Any]
    participant: Participant


def verify_jws(
    token: str,
    typ: str,
    participants: ParticipantLookup,
    now: datetime,
    expected_issuer: str | None = None,
) -> VerifiedJws:
    """Verify signature, algorithm and key of ``token``; return header and claims.

    Time claims are read but not judged here: labels and tokens have different
    rules, and both take ``now`` from the caller so tests can fix the clock.
    """
    if not isinstance(token, str) or token.count(".") != 2:
        raise JwsRejected("malformed", "not a compact JWS (expected three base64url parts separated by '.')")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError as exc:
        raise JwsRejected("malformed", f"cannot read the JWS header: {exc}") from None
    alg = header.get("alg")
    if not isinstance(alg, str) or alg.lower() == "none":
        raise JwsRejected("alg_none", "unsigned tokens (alg 'none') are not accepted")
    if alg.upper().startswith("HS"):
        raise JwsRejected("alg_hmac", f"HMAC algorithm {alg} is not accepted; sign with ES256 or EdDSA")
    if alg not in SIGNING_ALGORITHMS:
        raise JwsRejected("alg_not_allowed", f"algorithm {alg} is not accepted; sign with ES256 or EdDSA")
    if header.get("typ") != typ:
        raise JwsRejected("wrong_type", f"token type {header.get('typ')!r} where {typ!r} was expected")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise JwsRejected("missing_kid", "the JWS header has no 'kid'")
    try:
        unverified = jwt.decode(token, options={"verify_signature": False})
    except jwt.InvalidTokenError as exc:
        raise JwsRejected("malformed", f"cannot read the claims: {exc}") from None
    issuer = unverified.get("iss")
    if not isinstance(issuer, str) or not issuer:
        raise JwsRejected("missing_claim", "claim 'iss' is missing")
    if expected_issuer is not None and issuer != expected_issuer:
        raise JwsRejected("issuer_mismatch", f"signed by {issuer!r} but sent by {expected_issuer!r}")
    participant = participants(issuer)
    if participant is None:
        raise JwsRejected("unknown_participant", f"participant {issuer!r} is not registered")
    record = participant.key(kid)
    if record is None:
        raise JwsRejected("unknown_kid", f"participant {issuer!r} has no key {kid!r}")
    if not record.valid_at(now):
        raise JwsRejected("revoked_key", f"key {kid!r} of {issuer!r} was revoked at {record.revoked_at:%Y-%m-%dT%H:%M:%SZ}")
    key_alg, key = _public_key(record.jwk)
    if key_alg != alg:
        raise JwsRejected("alg_key_mismatch", f"header says {alg} but key {kid!r} is {key_alg}")
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=[alg],
            options={"verify_exp": False, "verify_iat": False, "verify_nbf": False, "verify_aud": False},
        )
    except jwt.InvalidSignatureError:
        raise JwsRejected("bad_signature", f"signature does not verify with key {kid!r}") from None
    except jwt.InvalidTokenError as exc:
        raise JwsRejected("malformed", f"token cannot be verified: {exc}") from None
    return VerifiedJws(header, claims, participant)


def time_claim(claims: dict[str, Any], name: str) -> datetime:
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise JwsRejected("missing_claim", f"claim {name!r} is missing or not a number")
    try:
        return datetime.fromtimestamp(value, tz=timezone.utc)
    except (OverflowError, OSError, ValueError):
        raise JwsRejected("bad_claim", f"claim {name!r} is out of range") from None


def string_claim(claims: dict[str, Any], name: str, max_length: int = 256) -> str:
    value = claims.get(name)
    if not isinstance(value, str) or not value:
        raise JwsRejected("missing_claim", f"claim {name!r} is missing or not a string")
    if len(value) > max_length:
        raise JwsRejected("bad_claim", f"claim {name!r} is longer than {max_length} characters")
    return value


@functools.lru_cache(maxsize=4096)
def _public_key(jwk_text: str) -> tuple[str, Any]:
    return load_public_key(jwk_text)
