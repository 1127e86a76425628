"""Signed labels: a publisher's claim that a number is (or is not) spam.

Claims: ``iss`` publisher id, ``num`` E.164 number, ``cat`` taxonomy code,
``conf`` confidence in [0, 1], ``iat``/``exp`` times, ``jti`` unique id, and
optional ``ev`` evidence. The token is stored verbatim so anyone who syncs it
can verify it offline against the publisher's public key.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import jwt

from numrep.core.categories import CATEGORIES
from numrep.core.model import Label
from numrep.core.numbers import normalize
from numrep.core.errors import InvalidNumber
from numrep.signing.jws import JwsRejected, ParticipantLookup, SignatureMemo, string_claim, time_claim, verify_jws
from numrep.signing.keys import Identity

LABEL_TYPE = "numrep-label+jwt"
DEFAULT_LABEL_LIFETIME = timedelta(days=90)


@dataclass(frozen=True)
class LabelPolicy:
    max_future_skew: timedelta = timedelta(minutes=5)
    max_lifetime: timedelta = timedelta(days=400)
    max_evidence_length: int = 1024


def sign_label(
    identity: Identity,
    number: str,
    category: str,
    confidence: float = 1.0,
    *,
    issued_at: datetime | None = None,
    lifetime: timedelta = DEFAULT_LABEL_LIFETIME,
    evidence: str = "",
    jti: str | None = None,
) -> str:
    issued = issued_at or datetime.now(timezone.utc)
    claims: dict[str, object] = {
        "iss": identity.participant_id,
        "num": number,
        "cat": category,
        "conf": confidence,
        "iat": int(issued.timestamp()),
        "exp": int((issued + lifetime).timestamp()),
        "jti": jti or uuid.uuid4().hex,
    }
    if evidence:
        claims["ev"] = evidence
    return jwt.encode(claims, identity.private_key, algorithm=identity.alg, headers={"kid": identity.kid, "typ": LABEL_TYPE})


def label_id(issuer: str, jti: str) -> str:
    return f"{issuer}/{jti}"


def verify_label(
    token: str,
    participants: ParticipantLookup,
    now: datetime,
    sender: str | None = None,
    policy: LabelPolicy = LabelPolicy(),
    memo: SignatureMemo | None = None,
) -> Label:
    """The verified ``Label`` in ``token`` or ``JwsRejected`` naming the failed check.

    ``sender`` is the authenticated participant that submitted the token; a
    label signed by anyone else is refused (``issuer_mismatch``). ``memo``: see
    ``numrep.signing.jws.SignatureMemo``.
    """
    verified = verify_jws(token, LABEL_TYPE, participants, now, expected_issuer=sender, memo=memo)
    claims = verified.claims
    issuer = string_claim(claims, "iss")
    jti = string_claim(claims, "jti", max_length=128)
    issued_at = time_claim(claims, "iat")
    expires_at = time_claim(claims, "exp")
    if issued_at > now + policy.max_future_skew:
        raise JwsRejected("issued_in_future", f"issued at {issued_at:%Y-%m-%dT%H:%M:%SZ}, later than the exchange's clock allows")
    if expires_at <= now:
        raise JwsRejected("expired", f"label expired at {expires_at:%Y-%m-%dT%H:%M:%SZ}")
    if expires_at <= issued_at:
        raise JwsRejected("bad_claim", "label expires before it was issued")
    if expires_at - issued_at > policy.max_lifetime:
        raise JwsRejected("lifetime_too_long", f"label lifetime exceeds {policy.max_lifetime.days} days")
    raw_number = string_claim(claims, "num", max_length=64)
    try:
        number = normalize(raw_number)
    except InvalidNumber as exc:
        raise JwsRejected("invalid_number", exc.message) from None
    if number != raw_number:
        raise JwsRejected("number_not_e164", f"claim 'num' must be E.164; sign {number!r} instead of {raw_number!r}")
    code = string_claim(claims, "cat", max_length=64)
    if code not in CATEGORIES:
        raise JwsRejected("unknown_category", f"unknown category {code!r}")
    confidence = claims.get("conf", 1.0)
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float)) or not 0.0 <= confidence <= 1.0:
        raise JwsRejected("bad_confidence", "claim 'conf' must be a number between 0 and 1")
    evidence = claims.get("ev", "")
    if not isinstance(evidence, str) or len(evidence) > policy.max_evidence_length:
        raise JwsRejected("bad_claim", f"claim 'ev' must be a string of at most {policy.max_evidence_length} characters")
    return Label(
        id=label_id(issuer, jti),
        issuer=issuer,
        number=number,
        category=code,
        confidence=float(confidence),
        issued_at=issued_at,
        expires_at=expires_at,
        token=token,
        evidence=evidence,
    )
