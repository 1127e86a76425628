"""Bearer tokens (RFC 7523 style): a participant authenticates each RPC with a
short-lived JWT it signs itself. Tokens are single-use: a replayed ``jti`` is
refused until the token would have expired anyway."""

from __future__ import annotations

import heapq
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

import jwt

from numrep.core.model import Participant
from numrep.signing.jws import MICROSECOND, JwsRejected, ParticipantLookup, micros, micros_claim, string_claim, verify_jws
from numrep.signing.keys import Identity

TOKEN_TYPE = "numrep-auth+jwt"
DEFAULT_AUDIENCE = "numrep"
DEFAULT_TOKEN_LIFETIME = timedelta(seconds=60)


@dataclass(frozen=True)
class TokenPolicy:
    audience: str = DEFAULT_AUDIENCE
    max_lifetime: timedelta = timedelta(minutes=5)
    clock_skew: timedelta = timedelta(seconds=30)


def mint_token(
    identity: Identity,
    audience: str = DEFAULT_AUDIENCE,
    *,
    now: datetime | None = None,
    lifetime: timedelta = DEFAULT_TOKEN_LIFETIME,
) -> str:
    issued = now or datetime.now(timezone.utc)
    claims = {
        "iss": identity.participant_id,
        "sub": identity.participant_id,
        "aud": audience,
        "iat": int(issued.timestamp()),
        "exp": int((issued + lifetime).timestamp()),
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, identity.private_key, algorithm=identity.alg, headers={"kid": identity.kid, "typ": TOKEN_TYPE})


def bearer_token(metadata: Any) -> str | None:
    """The token of a call's ``authorization: Bearer <token>`` metadata, if it has one."""
    for key, value in metadata or ():
        if key == "authorization":
            scheme, _, token = str(value).partition(" ")
            return token.strip() if scheme.lower() == "bearer" else None
    return None


@dataclass(frozen=True)
class Proof:
    """How a call's participant proved who it is: ``via`` "token" (a bearer token
    signed with key ``kid``), "certificate" (a client certificate carrying key
    ``kid``) or "session" (a call token of a session that key ``kid`` opened).
    ``until``: when the proof stops holding, for one that outlasts its call (a
    session's end, a certificate's notAfter); what it opens must end by then."""

    participant: Participant
    kid: str
    via: Literal["token", "certificate", "session"]
    until: datetime | None = None


class ReplayCache:
    """Remembers token ids until their expiry (epoch seconds). Memory is bounded
    by the token rate times the maximum token lifetime."""

    def __init__(self) -> None:
        self._seen: dict[str, float] = {}
        self._expiry: list[tuple[float, str]] = []
        self._lock = threading.Lock()

    def first_use(self, token_id: str, expires_at: float, now: float) -> bool:
        with self._lock:
            while self._expiry and self._expiry[0][0] <= now:
                _, old = heapq.heappop(self._expiry)
                self._seen.pop(old, None)
            if token_id in self._seen:
                return False
            self._seen[token_id] = expires_at
            heapq.heappush(self._expiry, (expires_at, token_id))
            return True


def verify_token(
    token: str,
    participants: ParticipantLookup,
    now: datetime,
    replay: ReplayCache,
    policy: TokenPolicy = TokenPolicy(),
) -> Participant:
    """The authenticated participant, or ``JwsRejected`` saying why not."""
    return verify_token_key(token, participants, now, replay, policy)[0]


def verify_token_key(
    token: str,
    participants: ParticipantLookup,
    now: datetime,
    replay: ReplayCache,
    policy: TokenPolicy = TokenPolicy(),
) -> tuple[Participant, str]:
    """``verify_token``, and the kid of the key that signed the token."""
    verified = verify_jws(token, TOKEN_TYPE, participants, now)
    claims = verified.claims
    issuer = string_claim(claims, "iss")
    if claims.get("sub", issuer) != issuer:
        raise JwsRejected("bad_claim", "claim 'sub' must equal 'iss'")
    check_token_claims(claims, issuer, now, replay, policy)
    return verified.participant, verified.header["kid"]


def check_token_claims(claims: dict[str, Any], principal: str, now: datetime, replay: ReplayCache, policy: TokenPolicy) -> None:
    """Audience, lifetime and single use: what a token for one call must say,
    whether signed with a participant's key or MAC'd in a call session."""
    audience = claims.get("aud")
    audiences = audience if isinstance(audience, list) else [audience]
    if policy.audience not in audiences:
        raise JwsRejected("wrong_audience", f"token is for audience {audience!r}, not {policy.audience!r}")
    # Whole microseconds since the epoch, as datetimes would compare them: one token per call needs no datetime.
    issued_at = micros_claim(claims, "iat")
    expires_at = micros_claim(claims, "exp")
    now_us, skew = micros(now), policy.clock_skew // MICROSECOND
    if issued_at > now_us + skew:
        raise JwsRejected("issued_in_future", "token issued in the future beyond the allowed clock skew")
    if expires_at + skew <= now_us:
        raise JwsRejected("expired", f"token expired at {datetime.fromtimestamp(expires_at / 1e6, tz=timezone.utc):%Y-%m-%dT%H:%M:%SZ}")
    if expires_at - issued_at > policy.max_lifetime // MICROSECOND:
        raise JwsRejected("lifetime_too_long", f"token lifetime exceeds {int(policy.max_lifetime.total_seconds())} s")
    jti = string_claim(claims, "jti", max_length=128)
    if not replay.first_use(f"{principal}/{jti}", (expires_at + skew) / 1e6, now_us / 1e6):
        raise JwsRejected("replayed", "token was already used; mint a new token for each call")
