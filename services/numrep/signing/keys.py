"""Participant key pairs and their JWK form.

A participant signs with its own private key (ES256 on P-256 or EdDSA on
Ed25519); the exchange and every handset hold only the public JWK. Key ids are
RFC 7638 thumbprints prefixed with the participant id, so a ``kid`` names its
owner and cannot collide across participants.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from jwt.algorithms import ECAlgorithm, OKPAlgorithm

from numrep.core.model import Role

SIGNING_ALGORITHMS = ("ES256", "EdDSA")
_KEY_TYPES = {"ES256": ("EC", "P-256"), "EdDSA": ("OKP", "Ed25519")}  # RFC 7518 3.4, RFC 8037
PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


@dataclass(frozen=True)
class Identity:
    """What a participant keeps secret: its id, role and private signing key."""

    participant_id: str
    role: Role
    kid: str
    alg: str
    private_key: PrivateKey

    def public_jwk(self) -> dict[str, Any]:
        return public_jwk(self.private_key, self.kid, self.alg)

    def to_json(self) -> str:
        return json.dumps(
            {
                "participant_id": self.participant_id,
                "role": self.role.value,
                "kid": self.kid,
                "alg": self.alg,
                "private_jwk": _algorithm(self.alg).to_jwk(self.private_key, as_dict=True),
            },
            indent=2,
        )

    @classmethod
    def from_json(cls, text: str) -> "Identity":
        data = json.loads(text)
        key = jwt.PyJWK(data["private_jwk"], algorithm=data["alg"]).key
        return cls(data["participant_id"], Role(data["role"]), data["kid"], data["alg"], key)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600, exist_ok=True)
        path.write_text(self.to_json())

    @classmethod
    def load(cls, path: Path) -> "Identity":
        return cls.from_json(path.read_text())


def generate_identity(participant_id: str, role: Role, alg: str = "EdDSA") -> Identity:
    if alg == "ES256":
        key: PrivateKey = ec.generate_private_key(ec.SECP256R1())
    elif alg == "EdDSA":
        key = ed25519.Ed25519PrivateKey.generate()
    else:
        raise ValueError(f"unsupported algorithm {alg!r}; use one of {', '.join(SIGNING_ALGORITHMS)}")
    kid = f"{participant_id}#{thumbprint(public_jwk(key, '', alg))[:16]}"
    return Identity(participant_id, role, kid, alg, key)


def public_jwk(key: PrivateKey, kid: str, alg: str) -> dict[str, Any]:
    jwk: dict[str, Any] = _algorithm(alg).to_jwk(key.public_key(), as_dict=True)
    jwk.update({"alg": alg, "use": "sig"})
    if kid:
        jwk["kid"] = kid
    return jwk


def thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 JWK thumbprint (SHA-256, base64url)."""
    members = {"EC": ("crv", "kty", "x", "y"), "OKP": ("crv", "kty", "x")}[jwk["kty"]]
    canonical = json.dumps({m: jwk[m] for m in members}, separators=(",", ":"), sort_keys=True)
    digest = hashlib.sha256(canonical.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def parse_public_jwk(text: str) -> tuple[str, str, dict[str, Any]]:
    """Validate a public JWK (JSON text); return (kid, alg, jwk dict).

    Raises ``ValueError`` with a readable message for anything that is not an
    ES256/EdDSA public key with a ``kid``.
    """
    try:
        jwk = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"JWK is not JSON: {exc.msg}") from None
    if not isinstance(jwk, dict):
        raise ValueError("JWK must be a JSON object")
    if "d" in jwk:
        raise ValueError("JWK contains a private key ('d'); register only the public key")
    kid = jwk.get("kid")
    if not isinstance(kid, str) or not kid:
        raise ValueError("JWK has no 'kid'")
    alg = jwk.get("alg") or {"EC": "ES256", "OKP": "EdDSA"}.get(jwk.get("kty", ""), "")
    if alg not in SIGNING_ALGORITHMS:
        raise ValueError(f"JWK algorithm {alg!r} not allowed; use ES256 or EdDSA")
    expected = _KEY_TYPES[alg]
    if (jwk.get("kty"), jwk.get("crv")) != expected:
        raise ValueError(f"{alg} needs a {expected[0]} key on {expected[1]}, not kty={jwk.get('kty')!r} crv={jwk.get('crv')!r}")
    try:
        jwt.PyJWK(jwk, algorithm=alg)
    except (jwt.PyJWKError, jwt.InvalidKeyError, KeyError, ValueError) as exc:
        raise ValueError(f"JWK is not a valid {alg} public key: {exc}") from None
    return kid, alg, jwk


def load_public_key(jwk_text: str) -> tuple[str, Any]:
    """(alg, key object) for a registered public JWK."""
    _, alg, jwk = parse_public_jwk(jwk_text)
    return alg, jwt.PyJWK(jwk, algorithm=alg).key


def _algorithm(alg: str) -> Any:
    return ECAlgorithm(ECAlgorithm.SHA256) if alg == "ES256" else OKPAlgorithm()
