"""Signed consent records and refusals: compact JWS verified exactly like labels
(``numrep.signing.jws``: algorithm, ``typ``, ``kid``, registered and unrevoked
key, signature, issuer = sender), with their own types and claims.

Consent (``typ`` ``numrep-consent+jwt``): ``iss``, ``jti``, ``iat``, ``exp``;
``clr`` the caller's E.164 number or a list of them (an enterprise's numbers);
``ent`` optional enterprise id; ``cle`` the callee's E.164 number; ``scp`` the
marketing categories consented to (a list; ``marketing`` covers every
sub-category); ``evh`` the hash of the consent proof the caller keeps
(``sha256:`` + 64 hex digits); optional ``hrs`` allowed calling hours
(``"mon-fri 09:00-20:00; sat 10:00-14:00"``, callee's local time) and ``tz``
(the callee's IANA zone, when the number does not tell it).

Refusal (``typ`` ``numrep-refusal+jwt``): ``iss``, ``jti``, ``iat``, optional
``exp``; ``cle`` the callee; ``clr`` the refused caller(s), or ``"*"`` for every
marketing caller; optional ``ent``.

The exchange keeps neither the token nor the raw callee: it stores the verified
claims with the callee as a keyed hash and the token's SHA-256, so a signer can
later prove which token a stored record came from.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Sequence

import jwt

from numrep.core.categories import CATEGORIES
from numrep.core.consent import ANY_CALLER, CallingHours, ConsentPolicy, ConsentRecord, RecordKind, is_marketing, time_zone
from numrep.core.errors import InvalidArgument, InvalidNumber
from numrep.core.numbers import normalize
from numrep.signing.jws import JwsRejected, ParticipantLookup, string_claim, time_claim, verify_jws
from numrep.signing.keys import Identity
from numrep.signing.labels import label_id

CONSENT_TYPE = "numrep-consent+jwt"
REFUSAL_TYPE = "numrep-refusal+jwt"
TYPES = {RecordKind.CONSENT: CONSENT_TYPE, RecordKind.REFUSAL: REFUSAL_TYPE}
DEFAULT_CONSENT_LIFETIME = timedelta(days=365)
_EVIDENCE_HASH = re.compile(r"^sha256:[0-9a-f]{64}$")

CalleeHasher = Callable[[str], str]


def evidence_hash(proof: bytes) -> str:
    """The ``evh`` claim for a consent proof (a recording, a signed form): only this leaves the caller."""
    return "sha256:" + hashlib.sha256(proof).hexdigest()


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def sign_consent(
    identity: Identity,
    callers: str | Sequence[str],
    callee: str,
    scope: Sequence[str],
    evidence: str,
    *,
    hours: str = "",
    tz: str = "",
    enterprise: str = "",
    issued_at: datetime | None = None,
    lifetime: timedelta = DEFAULT_CONSENT_LIFETIME,
    jti: str | None = None,
) -> str:
    issued = issued_at or datetime.now(timezone.utc)
    claims: dict[str, Any] = {
        "iss": identity.participant_id,
        "jti": jti or uuid.uuid4().hex,
        "iat": int(issued.timestamp()),
        "exp": int((issued + lifetime).timestamp()),
        "clr": callers if isinstance(callers, str) else list(callers),
        "cle": callee,
        "scp": list(scope),
        "evh": evidence,
    }
    claims.update({k: v for k, v in (("hrs", hours), ("tz", tz), ("ent", enterprise)) if v})
    return jwt.encode(claims, identity.private_key, algorithm=identity.alg, headers={"kid": identity.kid, "typ": CONSENT_TYPE})


def sign_refusal(
    identity: Identity,
    callee: str,
    callers: str | Sequence[str] = ANY_CALLER,
    *,
    enterprise: str = "",
    issued_at: datetime | None = None,
    lifetime: timedelta | None = None,
    jti: str | None = None,
) -> str:
    issued = issued_at or datetime.now(timezone.utc)
    claims: dict[str, Any] = {
        "iss": identity.participant_id,
        "jti": jti or uuid.uuid4().hex,
        "iat": int(issued.timestamp()),
        "clr": callers if isinstance(callers, str) else list(callers),
        "cle": callee,
    }
    if lifetime is not None:
        claims["exp"] = int((issued + lifetime).timestamp())
    if enterprise:
        claims["ent"] = enterprise
    return jwt.encode(claims, identity.private_key, algorithm=identity.alg, headers={"kid": identity.kid, "typ": REFUSAL_TYPE})


def verify_record(
    token: str,
    kind: RecordKind,
    participants: ParticipantLookup,
    now: datetime,
    hash_callee: CalleeHasher,
    sender: str | None = None,
    policy: ConsentPolicy = ConsentPolicy(),
) -> ConsentRecord:
    """The verified record in ``token``, its callee already hashed with
    ``hash_callee``, or ``JwsRejected`` naming the failed check."""
    claims = verify_jws(token, TYPES[kind], participants, now, expected_issuer=sender).claims
    issuer = string_claim(claims, "iss")
    jti = string_claim(claims, "jti", max_length=128)
    issued_at = time_claim(claims, "iat")
    if issued_at > now + policy.max_future_skew:
        raise JwsRejected("issued_in_future", f"issued at {issued_at:%Y-%m-%dT%H:%M:%SZ}, later than the exchange's clock allows")
    expires_at = _expiry(claims, kind, issued_at, now, policy)
    callee = _number(string_claim(claims, "cle", max_length=64), "cle")
    callers = _callers(claims.get("clr"), kind, policy)
    enterprise = claims.get("ent", "")
    if not isinstance(enterprise, str) or len(enterprise) > 64:
        raise JwsRejected("bad_claim", "claim 'ent' must be a string of at most 64 characters")
    record = ConsentRecord(
        id=label_id(issuer, jti),
        kind=kind,
        issuer=issuer,
        callers=callers,
        callee_hash=hash_callee(callee),
        issued_at=issued_at,
        expires_at=expires_at,
        token_digest=token_digest(token),
        enterprise=enterprise,
    )
    return _with_consent_claims(record, claims) if kind is RecordKind.CONSENT else record


def _expiry(claims: dict[str, Any], kind: RecordKind, issued_at: datetime, now: datetime, policy: ConsentPolicy) -> datetime | None:
    if kind is RecordKind.REFUSAL and "exp" not in claims:
        return None
    expires_at = time_claim(claims, "exp")
    if expires_at <= now:
        raise JwsRejected("expired", f"record expired at {expires_at:%Y-%m-%dT%H:%M:%SZ}")
    if expires_at <= issued_at:
        raise JwsRejected("bad_claim", "record expires before it was issued")
    longest = policy.max_consent_lifetime if kind is RecordKind.CONSENT else policy.max_refusal_lifetime
    if expires_at - issued_at > longest:
        raise JwsRejected("lifetime_too_long", f"record lifetime exceeds {longest.days} days")
    return expires_at


def _number(raw: str, claim: str) -> str:
    try:
        number = normalize(raw)
    except InvalidNumber as exc:
        raise JwsRejected("invalid_number", f"claim {claim!r}: {exc.message}") from None
    if number != raw:
        raise JwsRejected("number_not_e164", f"claim {claim!r} must be E.164")
    return number


def _callers(value: Any, kind: RecordKind, policy: ConsentPolicy) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(i, str) for i in items):
        raise JwsRejected("missing_claim", "claim 'clr' must be a caller number or a non-empty list of them")
    if len(items) > policy.max_callers:
        raise JwsRejected("too_many_callers", f"claim 'clr' names more than {policy.max_callers} numbers")
    if ANY_CALLER in items:
        if kind is RecordKind.CONSENT or len(items) > 1:
            raise JwsRejected("bad_claim", "'*' (every caller) stands alone and only in a refusal")
        return (ANY_CALLER,)
    return tuple(sorted({_number(i, "clr") for i in items}))


def _with_consent_claims(record: ConsentRecord, claims: dict[str, Any]) -> ConsentRecord:
    scope = claims.get("scp")
    if not isinstance(scope, list) or not scope or not all(isinstance(s, str) for s in scope) or len(scope) > len(CATEGORIES):
        raise JwsRejected("missing_claim", "claim 'scp' must be a non-empty list of marketing categories")
    for code in scope:
        if code not in CATEGORIES:
            raise JwsRejected("unknown_category", f"unknown category {code!r} in 'scp'")
        if not is_marketing(code):
            raise JwsRejected("scope_not_marketing", f"consent covers marketing calls; {code!r} is not a marketing category")
    evidence = string_claim(claims, "evh", max_length=80)
    if not _EVIDENCE_HASH.match(evidence):
        raise JwsRejected("bad_evidence_hash", "claim 'evh' must be 'sha256:' followed by 64 lowercase hex digits")
    hours = None
    try:
        if "hrs" in claims:
            hours = CallingHours.parse(claims["hrs"])
        zone = claims.get("tz", "")
        if not isinstance(zone, str):
            raise InvalidArgument("claim 'tz' must be a string", "unknown_time_zone")
        if zone:
            time_zone(zone)
    except InvalidArgument as exc:
        raise JwsRejected(exc.reason, exc.message) from None
    return dataclasses.replace(record, scope=tuple(sorted(set(scope))), evidence_hash=evidence, hours=hours, time_zone=zone)
