"""Reading a PASSporT (RFC 8225) from a SIP Identity header (RFC 8224) or bare.

Parsing only splits and decodes: nothing here is trusted until
``numrep.shaken.verify.verify_passport`` has checked the certificate and the
signature. A parse failure is reported as ``PassportError`` with the reason
``malformed`` and a message that says what was wrong.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

MALFORMED = "malformed"
MAX_HEADER_LENGTH = 8192  # a SHAKEN Identity header is well under 1 KiB; anything near this is abuse

_B64URL = re.compile(r"^[A-Za-z0-9_-]*$")
_HEADER_NAME = re.compile(r"^\s*identity\s*:", re.IGNORECASE)
# one ";name[=value]" parameter: value is <uri>, a quoted string, or a token (RFC 3261 generic-param)
_PARAM = re.compile(
    r"""\s*;\s*(?P<name>[A-Za-z0-9.!%*_+`'~-]+)\s*
        (?:=\s*(?P<value><[^<>]*>|"(?:[^"\\]|\\.)*"|[^;<>"\s]+))?\s*""",
    re.VERBOSE,
)


class PassportError(Exception):
    """A PASSporT or Identity header that fails a check; ``reason`` names the check."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class PassportToken:
    """A decoded, not yet verified, PASSporT.

    ``params`` holds the Identity header parameters (lower-case names; ``info``
    without its angle brackets) and is empty for a bare token.
    """

    compact: str
    header: Mapping[str, Any]
    claims: Mapping[str, Any]
    signing_input: bytes
    signature: bytes
    params: Mapping[str, str] = field(default_factory=dict)

    @property
    def from_identity_header(self) -> bool:
        return bool(self.params)

    @property
    def info(self) -> str | None:
        return self.params.get("info")


def parse_identity_header(value: str) -> PassportToken:
    """Parse ``<compact JWS>;info=<https://...>;alg=ES256;ppt=shaken`` or a bare compact PASSporT.

    An optional leading ``Identity:`` header name is ignored. Raises
    ``PassportError("malformed", ...)`` for anything that cannot be split and
    decoded; header *values* (alg, typ, ppt, x5u, info) are judged by the verifier.
    """
    if not isinstance(value, str):
        raise PassportError(MALFORMED, f"the Identity header must be text, not {type(value).__name__}")
    if len(value) > MAX_HEADER_LENGTH:
        raise PassportError(MALFORMED, f"the Identity header is longer than {MAX_HEADER_LENGTH} characters")
    text = _HEADER_NAME.sub("", value, count=1).strip()
    if not text:
        raise PassportError(MALFORMED, "the Identity header is empty")
    compact, _, rest = text.partition(";")
    compact = compact.strip()
    params = _parse_params(";" + rest) if rest or text.endswith(";") else {}
    return _decode_compact(compact, params)


def _parse_params(text: str) -> dict[str, str]:
    params: dict[str, str] = {}
    position = 0
    while position < len(text):
        match = _PARAM.match(text, position)
        if match is None or match.end() == position:
            raise PassportError(MALFORMED, f"cannot read the Identity header parameters at {text[position:position + 40]!r}")
        name = match.group("name").lower()
        raw = match.group("value") or ""
        if name in params:
            raise PassportError(MALFORMED, f"the Identity header repeats the parameter {name!r}")
        if raw.startswith("<"):
            raw = raw[1:-1].strip()
        elif raw.startswith('"'):
            raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
        params[name] = raw
        position = match.end()
    return params


def _decode_compact(compact: str, params: Mapping[str, str]) -> PassportToken:
    parts = compact.split(".")
    if len(parts) != 3:
        raise PassportError(MALFORMED, f"not a compact JWS: expected 3 base64url segments separated by '.', found {len(parts)}")
    header_b64, claims_b64, signature_b64 = parts
    if not header_b64:
        raise PassportError(MALFORMED, "the JWS header segment is empty")
    if not claims_b64:
        raise PassportError(MALFORMED, "the claims segment is empty (compact form with claims omitted); SHAKEN requires the full form")
    if not signature_b64:
        raise PassportError(MALFORMED, "the signature segment is empty")
    header = _json_segment(header_b64, "header")
    claims = _json_segment(claims_b64, "claims")
    signature = _b64decode(signature_b64, "signature")
    return PassportToken(
        compact=compact,
        header=header,
        claims=claims,
        signing_input=f"{header_b64}.{claims_b64}".encode("ascii"),
        signature=signature,
        params=dict(params),
    )


def _b64decode(segment: str, what: str) -> bytes:
    if not _B64URL.match(segment):
        raise PassportError(MALFORMED, f"the {what} segment is not base64url (only A-Z a-z 0-9 - _ without padding)")
    try:
        return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        raise PassportError(MALFORMED, f"the {what} segment is not valid base64url (bad length)") from None


def _json_segment(segment: str, what: str) -> dict[str, Any]:
    raw = _b64decode(segment, what)
    try:
        value = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates, parse_constant=_no_constants)
    except UnicodeDecodeError:
        raise PassportError(MALFORMED, f"the {what} segment is not UTF-8 text") from None
    except _DuplicateMember as exc:
        raise PassportError(MALFORMED, f"the {what} JSON repeats the member {exc.args[0]!r}") from None
    except ValueError as exc:  # json.JSONDecodeError and the constant refusal below
        raise PassportError(MALFORMED, f"the {what} segment is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise PassportError(MALFORMED, f"the {what} segment is JSON but not an object")
    return value


class _DuplicateMember(Exception):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # two "orig" members read differently by different parsers is exactly the ambiguity a forger wants
    result: dict[str, Any] = {}
    for key, item in pairs:
        if key in result:
            raise _DuplicateMember(key)
        result[key] = item
    return result


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")
