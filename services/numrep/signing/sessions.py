"""Call sessions: single-use call tokens MAC'd with a session key, in place of a
signature per call.

A carrier asks once per incoming call, and a bearer token signed with its key
costs the exchange a public-key verification on every call (and the carrier a
signature). A participant that proves its key once (``OpenSession`` with an
ordinary bearer token, or its client certificate) receives a session: an id and
a 32-byte key. Each call then carries a compact JWS, ``alg`` HS256, ``typ``
``numrep-call+jwt``, ``kid`` the session id, with the claims of a bearer token
(``aud``, ``iat``, ``exp``, ``jti``). Call tokens stay single-use (the same
replay cache as signed tokens) and short-lived.

No session is stored: its key is an HMAC of its id under the exchange's secret,
and the id names the participant, the key that opened it and its expiry. So any
replica sharing the secret accepts it, a restart keeps it, and an altered id
derives another key, under which the token's MAC fails. Revoking the key that
opened a session ends the session (checked on every call, like a signed token's
key).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Mapping

from numrep.core.model import Participant
from numrep.signing.jws import CACHED_HEADER, JwsRejected, ParticipantLookup, read_compact, read_header, registered_key
from numrep.signing.tokens import DEFAULT_AUDIENCE, DEFAULT_TOKEN_LIFETIME, ReplayCache, TokenPolicy, check_token_claims

CALL_TOKEN_TYPE = "numrep-call+jwt"
CALL_TOKEN_ALG = "HS256"
DEFAULT_SESSION_LIFETIME = timedelta(minutes=30)
MAX_SESSION_LIFETIME = timedelta(hours=4)
MAX_SESSION_ID = 512

_LAST_EXPIRY = 2**37  # epoch seconds (year 6325): beyond any session, within datetime's range

SessionKeyDeriver = Callable[[str], bytes]
"""The session key for a session id: an HMAC under a secret only the exchange holds."""


@dataclass(frozen=True)
class CallSession:
    session_id: str
    key: bytes = field(repr=False)
    participant_id: str
    kid: str  # the key that opened it: revoking it ends the session
    expires_at: datetime


def open_session(derive: SessionKeyDeriver, participant_id: str, kid: str, now: datetime,
                 lifetime: timedelta = DEFAULT_SESSION_LIFETIME) -> CallSession:
    expires_at = datetime.fromtimestamp(int((now + lifetime).timestamp()), tz=timezone.utc)
    fields = [participant_id, kid, int(expires_at.timestamp()), secrets.token_hex(8)]
    session_id = _b64(json.dumps(fields, separators=(",", ":")).encode())
    if len(session_id) > MAX_SESSION_ID:
        raise ValueError(f"key id {kid[:40]!r}... is too long to name in a session; add a key with a shorter kid")
    return CallSession(session_id, derive(session_id), participant_id, kid, expires_at)


@functools.lru_cache(maxsize=4096)  # a session's every call names it: read once
def read_session_id(session_id: str) -> tuple[str, str, datetime]:
    """The participant, kid and expiry a session id names; ``JwsRejected`` for
    anything this module could not have written."""
    unknown = JwsRejected("unknown_session", "the call token's 'kid' is not a session id this exchange hands out")
    if len(session_id) > MAX_SESSION_ID:
        raise unknown
    try:
        fields = json.loads(base64.urlsafe_b64decode(session_id + "=" * (-len(session_id) % 4)))
    except (ValueError, RecursionError):  # binascii.Error and UnicodeDecodeError are ValueErrors
        raise unknown from None
    if (not isinstance(fields, list) or len(fields) != 4 or not all(isinstance(f, str) and f for f in (fields[0], fields[1], fields[3]))
            or isinstance(fields[2], bool) or not isinstance(fields[2], int) or not 0 < fields[2] < _LAST_EXPIRY):
        raise unknown
    return fields[0], fields[1], datetime.fromtimestamp(fields[2], tz=timezone.utc)


def mint_call_token(session: CallSession, audience: str = DEFAULT_AUDIENCE, *, now: datetime | None = None,
                    lifetime: timedelta = DEFAULT_TOKEN_LIFETIME) -> str:
    issued = now or datetime.now(timezone.utc)
    header = {"alg": CALL_TOKEN_ALG, "typ": CALL_TOKEN_TYPE, "kid": session.session_id}
    claims = {"aud": audience, "iat": int(issued.timestamp()), "exp": int((issued + lifetime).timestamp()), "jti": uuid.uuid4().hex}
    signing_input = _b64(json.dumps(header, separators=(",", ":")).encode()) + "." + _b64(json.dumps(claims, separators=(",", ":")).encode())
    return signing_input + "." + _b64(hmac.new(session.key, signing_input.encode("ascii"), hashlib.sha256).digest())


def verify_call_token(
    token: str,
    derive: SessionKeyDeriver,
    participants: ParticipantLookup,
    now: datetime,
    replay: ReplayCache,
    policy: TokenPolicy = TokenPolicy(),
) -> tuple[Participant, str, datetime]:
    """The participant a call token authenticates, the kid of the key that opened
    its session and when the session ends, or ``JwsRejected`` saying why not. The MAC is checked before the
    claims are read: nothing an outsider wrote is interpreted further. ``derive``
    is asked for the key on every call: a deriver that caches its keys spares that."""
    parsed = read_compact(token)
    segment = parsed.header_segment
    session_id, participant_id, kid, session_expires = (
        _cached_session_of(segment) if len(segment) <= CACHED_HEADER else _session_of(parsed.header))
    expected = hmac.digest(derive(session_id), parsed.signing_input, "sha256")
    if not hmac.compare_digest(expected, parsed.signature):
        raise JwsRejected("bad_signature", "the call token's MAC does not verify: the session was not opened here, or the token was altered")
    if session_expires + policy.clock_skew <= now:
        raise JwsRejected("session_expired", f"the call session expired at {session_expires:%Y-%m-%dT%H:%M:%SZ}; open a new one")
    participant, _ = registered_key(participants, participant_id, kid, now, revoked_note=", which opened this session,")
    check_token_claims(parsed.claims(), participant_id, now, replay, policy)
    return participant, kid, session_expires


def session_expiry(call_token: str) -> datetime:
    """When the session a call token names expires (``JwsRejected`` for a token no session could have minted)."""
    segment = call_token.partition(".")[0]
    return (_cached_session_of(segment) if len(segment) <= CACHED_HEADER else _session_of(read_header(segment)))[3]


@functools.lru_cache(maxsize=4096)  # a session's calls share one header: checked once
def _cached_session_of(segment: str) -> tuple[str, str, str, datetime]:
    return _session_of(read_header(segment))


def _session_of(header: Mapping[str, Any]) -> tuple[str, str, str, datetime]:
    """The session id a call token's header names, and the participant, kid and
    expiry that id names; ``JwsRejected`` for a header no call token may carry."""
    if header.get("alg") != CALL_TOKEN_ALG:
        raise JwsRejected("alg_not_allowed", f"a call token is MAC'd with {CALL_TOKEN_ALG}, not {header.get('alg')!r}")
    if header.get("typ") != CALL_TOKEN_TYPE:
        raise JwsRejected("wrong_type", f"token type {header.get('typ')!r} where {CALL_TOKEN_TYPE!r} was expected")
    session_id = header.get("kid")
    if not isinstance(session_id, str) or not session_id:
        raise JwsRejected("missing_kid", "the call token's header has no 'kid' (the session id)")
    return (session_id, *read_session_id(session_id))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")
