"""Verification shared by signed labels and bearer tokens.

Both are compact JWS signed with a participant's registered key. A token is
read once (three base64url segments, a JSON header, JSON claims), then checked
in one fixed order where the first failure names its reason, so a publisher
can tell "unknown kid" from "bad signature" from "expired". The signature is
checked once, with the participant's public key parsed once and cached.

The reading is strict, as RFC 7515 section 7.1 asks: base64url without
padding and in its canonical form, a JSON object for the header and another
for the claims. No critical header extension is honoured except ``b64`` at its
default (``true``).
"""

from __future__ import annotations

import binascii
import functools
import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from types import MappingProxyType
from typing import Any, Callable, Mapping, NamedTuple, Protocol

from jwt.algorithms import ECAlgorithm, OKPAlgorithm

from numrep.core.model import Participant, PublicKeyRecord
from numrep.signing.keys import SIGNING_ALGORITHMS, load_public_key

ParticipantLookup = Callable[[str], Participant | None]

_BASE64URL = re.compile(r"[A-Za-z0-9_-]*")
# PyJWT's algorithm objects verify with cryptography: ES256 turns the raw r||s
# signature into DER (a wrong length simply fails), EdDSA verifies as is.
_VERIFIERS = {"ES256": ECAlgorithm(ECAlgorithm.SHA256), "EdDSA": OKPAlgorithm()}
_UNDERSTOOD_CRIT = frozenset({"b64"})


class JwsRejected(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class SignatureMemo(Protocol):
    """Signatures a holder has checked before (a handset re-sent labels it holds).
    Only the signature is remembered, for that exact token and that exact key:
    every other check (key registered and unrevoked, claims, expiry) runs again."""

    def verified(self, token: str, jwk: str) -> bool:
        """Did ``token``'s signature verify with the public key ``jwk`` before?"""

    def remember(self, token: str, jwk: str) -> None:
        """``token``'s signature has just verified with ``jwk``."""


@dataclass(frozen=True)
class VerifiedJws:
    header: Mapping[str, Any]
    claims: dict[str, Any]
    participant: Participant


class CompactJws(NamedTuple):
    """A compact JWS as read, before any check of what it says."""

    header: Mapping[str, Any]
    claims_bytes: bytes
    signature: bytes
    signing_input: bytes
    header_segment: str  # as sent: the key of a cache of what a header says (``read_header``)

    def claims(self) -> dict[str, Any]:
        return _json_object(self.claims_bytes, "cannot read the claims")


def read_compact(token: str) -> CompactJws:
    """The parts of ``token``, read strictly (see the module docstring); the
    claims' JSON is decoded only when asked for (``CompactJws.claims``)."""
    if not isinstance(token, str) or token.count(".") != 2:
        raise JwsRejected("malformed", "not a compact JWS (expected three base64url parts separated by '.')")
    header_part, claims_part, signature_part = token.split(".")
    header = read_header(header_part)
    claims_bytes = _base64url(claims_part, "payload", "cannot read the claims")
    signature = _base64url(signature_part, "signature", "cannot read the signature")
    _check_header_parameters(header)
    return CompactJws(header, claims_bytes, signature, token[: len(header_part) + 1 + len(claims_part)].encode("ascii"), header_part)


def header_type(token: str) -> str | None:
    """The ``typ`` a compact JWS declares, or None if its header cannot be read
    (the verifier it then goes to says what is wrong)."""
    if not isinstance(token, str):
        return None
    try:
        header = read_header(token.split(".", 1)[0])
    except JwsRejected:
        return None
    typ = header.get("typ")
    return typ if isinstance(typ, str) else None


def verify_jws(
    token: str,
    typ: str,
    participants: ParticipantLookup,
    now: datetime,
    expected_issuer: str | None = None,
    memo: SignatureMemo | None = None,
) -> VerifiedJws:
    """Verify signature, algorithm and key of ``token``; return header and claims.

    Time claims are read but not judged here: labels and tokens have different
    rules, and both take ``now`` from the caller so tests can fix the clock.
    ``memo``: a signature it says verified with this key before is not checked again.
    """
    parsed = read_compact(token)
    header, signature = parsed.header, parsed.signature

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

    claims = parsed.claims()
    issuer = claims.get("iss")
    if not isinstance(issuer, str) or not issuer:
        raise JwsRejected("missing_claim", "claim 'iss' is missing")
    if expected_issuer is not None and issuer != expected_issuer:
        raise JwsRejected("issuer_mismatch", f"signed by {issuer!r} but sent by {expected_issuer!r}")
    participant, record = registered_key(participants, issuer, kid, now)
    key_alg, key = _public_key(record.jwk)
    if key_alg != alg:
        raise JwsRejected("alg_key_mismatch", f"header says {alg} but key {kid!r} is {key_alg}")
    if memo is None or not memo.verified(token, record.jwk):
        if not _VERIFIERS[alg].verify(parsed.signing_input, key, signature):
            raise JwsRejected("bad_signature", f"signature does not verify with key {kid!r}")
        if memo is not None:
            memo.remember(token, record.jwk)
    for name in ("sub", "jti"):  # registered claims that, when present, are strings (RFC 7519 4.1)
        if name in claims and not isinstance(claims[name], str):
            raise JwsRejected("malformed", f"token cannot be verified: claim {name!r} must be a string")
    return VerifiedJws(header, claims, participant)


def registered_key(participants: ParticipantLookup, participant_id: str, kid: str, now: datetime,
                   revoked_note: str = "") -> tuple[Participant, PublicKeyRecord]:
    """The participant and its key ``kid``, registered and unrevoked at ``now``."""
    participant = participants(participant_id)
    if participant is None:
        raise JwsRejected("unknown_participant", f"participant {participant_id!r} is not registered")
    record = participant.key(kid)
    if record is None:
        raise JwsRejected("unknown_kid", f"participant {participant_id!r} has no key {kid!r}")
    if not record.valid_at(now):
        raise JwsRejected("revoked_key", f"key {kid!r} of {participant_id!r}{revoked_note} was revoked"
                                         f" at {record.revoked_at:%Y-%m-%dT%H:%M:%SZ}")
    return participant, record


def time_claim(claims: dict[str, Any], name: str) -> datetime:
    return datetime.fromtimestamp(epoch_claim(claims, name), tz=timezone.utc)


_EPOCH_RANGE = (datetime.min.replace(tzinfo=timezone.utc).timestamp(), datetime.max.replace(tzinfo=timezone.utc).timestamp())


def epoch_claim(claims: dict[str, Any], name: str) -> float:
    """A NumericDate claim as seconds since the epoch, within the range of a datetime."""
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise JwsRejected("missing_claim", f"claim {name!r} is missing or not a number")
    if not _EPOCH_RANGE[0] <= value < _EPOCH_RANGE[1]:  # NaN fails both comparisons
        raise JwsRejected("bad_claim", f"claim {name!r} is out of range")
    return value


def micros_claim(claims: dict[str, Any], name: str) -> int:
    """A NumericDate claim in whole microseconds since the epoch, rounded as
    ``time_claim``'s datetime is; whole seconds (what tokens carry) need no datetime."""
    value = epoch_claim(claims, name)
    if type(value) is int:
        return value * 1_000_000
    return micros(datetime.fromtimestamp(value, tz=timezone.utc))


def micros(when: datetime) -> int:
    """An aware ``when`` in whole microseconds since the epoch (exactly: integer arithmetic)."""
    return (when - _EPOCH) // MICROSECOND


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
MICROSECOND = timedelta(microseconds=1)


def string_claim(claims: dict[str, Any], name: str, max_length: int = 256) -> str:
    value = claims.get(name)
    if not isinstance(value, str) or not value:
        raise JwsRejected("missing_claim", f"claim {name!r} is missing or not a string")
    if len(value) > max_length:
        raise JwsRejected("bad_claim", f"claim {name!r} is longer than {max_length} characters")
    return value


CACHED_HEADER = 1024  # characters: an ordinary header (alg, typ, kid, a session id) is under; a huge one is not kept


def read_header(segment: str) -> Mapping[str, Any]:
    """The JWS header of ``segment``, read-only. One publisher's tokens (a key's
    labels, a session's call tokens) share one header: it is read once."""
    if len(segment) > CACHED_HEADER:
        return MappingProxyType(_read_header(segment))
    return _cached_header(segment)


@functools.lru_cache(maxsize=1024)
def _cached_header(segment: str) -> Mapping[str, Any]:
    return MappingProxyType(_read_header(segment))


def _read_header(segment: str) -> dict[str, Any]:
    return _json_object(_base64url(segment, "header", "cannot read the JWS header"), "cannot read the JWS header")


_STANDARD_ALPHABET = bytes.maketrans(b"-_", b"+/")
# The last character of a segment whose length is 2 or 3 mod 4 carries 4 or 2 bits past
# the last byte; canonical base64url leaves them zero (RFC 4648 section 3.5).
_CANONICAL_LAST = {2: frozenset("AQgw"), 3: frozenset("AEIMQUYcgkosw048")}


def _base64url(segment: str, name: str, context: str) -> bytes:
    """The bytes of one unpadded, canonical base64url segment."""
    if len(segment) % 4 == 1 or _BASE64URL.fullmatch(segment) is None:
        raise JwsRejected("malformed", f"{context}: the {name} is not unpadded base64url")
    tail = len(segment) % 4
    if tail and segment[-1] not in _CANONICAL_LAST[tail]:
        raise JwsRejected("malformed", f"{context}: the {name} is not canonical base64url (stray bits at its end)")
    return binascii.a2b_base64(segment.encode("ascii").translate(_STANDARD_ALPHABET) + b"=" * (4 - tail if tail else 0))


def _json_object(data: bytes, context: str) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise JwsRejected("malformed", f"{context}: not JSON ({exc})") from None
    if not isinstance(value, dict):
        raise JwsRejected("malformed", f"{context}: must be a JSON object")
    return value


def _check_header_parameters(header: Mapping[str, Any]) -> None:
    """What a JWS library refuses to read: a non-string ``kid``, critical
    extensions it does not implement, an unencoded payload (RFC 7797)."""
    if "kid" in header and not isinstance(header["kid"], str):
        raise JwsRejected("malformed", "cannot read the JWS header: 'kid' must be a string")
    if "crit" in header:
        crit = header["crit"]
        if not isinstance(crit, list) or not crit or not all(isinstance(ext, str) for ext in crit):
            raise JwsRejected("malformed", "cannot read the JWS header: 'crit' must be a non-empty list of strings")
        for ext in crit:
            if ext not in _UNDERSTOOD_CRIT or ext not in header:
                raise JwsRejected("malformed", f"cannot read the JWS header: unsupported critical extension {ext!r}")
    if header.get("b64", True) is not True:
        raise JwsRejected("malformed", "cannot read the JWS header: unencoded payloads ('b64' other than true) are not accepted")


@functools.lru_cache(maxsize=4096)
def _public_key(jwk_text: str) -> tuple[str, Any]:
    return load_public_key(jwk_text)
