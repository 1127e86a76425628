"""A self-made STIR/SHAKEN PKI for tests: root CA -> intermediate CA -> STI-SP
leaf (ES256, P-256), and a PASSporT signer that can also produce broken tokens."""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

NOW = datetime(2025, 6, 2, 14, 30, tzinfo=timezone.utc)
X5U = "https://cert.example/cert.pem"
ORIG = "12025550143"
DEST = "12015550123"
ORIGID = "123e4567-e89b-12d3-a456-426655440000"
TN_AUTH_LIST = x509.ObjectIdentifier("1.3.6.1.5.5.7.1.26")  # RFC 8226
TN_AUTH_SPC_1234 = bytes.fromhex("3008a006160431323334")  # SEQUENCE { [0] IA5String "1234" }


def name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "numrep tests"), x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def p256() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def ca_cert(
    cn: str,
    key: Any,
    issuer: x509.Certificate | None = None,
    issuer_key: Any = None,
    not_before: datetime = NOW - timedelta(days=365),
    not_after: datetime = NOW + timedelta(days=3650),
) -> x509.Certificate:
    signer = issuer_key if issuer is not None else key
    builder = (
        x509.CertificateBuilder()
        .subject_name(name(cn))
        .issuer_name(issuer.subject if issuer is not None else name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None if issuer is None else 0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, key_cert_sign=True, crl_sign=True, encipher_only=False, decipher_only=False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if issuer is not None:
        builder = builder.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()), critical=False)
    return builder.sign(signer, hashes.SHA256())


def leaf_cert(
    key: Any,
    issuer: x509.Certificate,
    issuer_key: Any,
    not_before: datetime = NOW - timedelta(days=30),
    not_after: datetime = NOW + timedelta(days=365),
    ca: bool = False,
) -> x509.Certificate:
    return (
        x509.CertificateBuilder()
        .subject_name(name("SHAKEN 1234"))
        .issuer_name(issuer.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, key_cert_sign=ca, crl_sign=False, encipher_only=False, decipher_only=False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
        .add_extension(x509.UnrecognizedExtension(TN_AUTH_LIST, TN_AUTH_SPC_1234), critical=False)
        .sign(issuer_key, hashes.SHA256())
    )


@dataclass(frozen=True)
class Pki:
    root_key: Any
    root: x509.Certificate
    inter_key: Any
    inter: x509.Certificate
    leaf_key: Any
    leaf: x509.Certificate

    @property
    def bundle(self) -> list[x509.Certificate]:
        """What the STI-SP serves at its x5u: the leaf, then the intermediate."""
        return [self.leaf, self.inter]

    def bundle_pem(self) -> bytes:
        return b"".join(c.public_bytes(Encoding.PEM) for c in self.bundle)

    def root_pem(self) -> bytes:
        return self.root.public_bytes(Encoding.PEM)


def build_pki() -> Pki:
    root_key, inter_key, leaf_key = p256(), p256(), p256()
    root = ca_cert("Test STI Root", root_key)
    inter = ca_cert("Test STI-CA", inter_key, root, root_key)
    return Pki(root_key, root, inter_key, inter, leaf_key, leaf_cert(leaf_key, inter, inter_key))


def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


# -- PASSporTs ---------------------------------------------------------------------


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def canonical_json(value: Any) -> bytes:
    # RFC 8225 section 9: lexicographic member order, no whitespace
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode("utf-8")


def header(**changes: Any) -> dict[str, Any]:
    """A SHAKEN PASSporT header; a change to None removes that member."""
    value = {"alg": "ES256", "typ": "passport", "ppt": "shaken", "x5u": X5U}
    value.update(changes)
    return {k: v for k, v in value.items() if v is not None}


def claims(
    attest: str = "A",
    orig: str = ORIG,
    dest: Any = None,
    iat: datetime | float = NOW,
    origid: str = ORIGID,
    **changes: Any,
) -> dict[str, Any]:
    """SHAKEN claims (RFC 8588); a change to None removes that member."""
    value: dict[str, Any] = {
        "attest": attest,
        "dest": {"tn": [DEST]} if dest is None else dest,
        "iat": int(iat.timestamp()) if isinstance(iat, datetime) else iat,
        "orig": {"tn": orig},
        "origid": origid,
    }
    value.update(changes)
    return {k: v for k, v in value.items() if v is not None}


def sign(key: Any, hdr: dict[str, Any] | None = None, body: dict[str, Any] | None = None) -> str:
    """Compact JWS over ``hdr`` and ``body`` with ``key`` (EC: raw r||s, as JWS wants)."""
    signing_input = f"{b64(canonical_json(header() if hdr is None else hdr))}.{b64(canonical_json(claims() if body is None else body))}"
    return f"{signing_input}.{b64(raw_signature(key, signing_input.encode('ascii')))}"


def raw_signature(key: Any, data: bytes) -> bytes:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
        size = (key.curve.key_size + 7) // 8
        return r.to_bytes(size, "big") + s.to_bytes(size, "big")
    return bytes(64)  # the verifier refuses non-P-256 keys before it looks at the signature


def identity_header(token: str, info: str | None = X5U, alg: str | None = "ES256", ppt: str | None = "shaken") -> str:
    """The SIP Identity header value (RFC 8224 section 4)."""
    value = token
    if info is not None:
        value += f";info=<{info}>"
    if alg is not None:
        value += f";alg={alg}"
    if ppt is not None:
        value += f";ppt={ppt}"
    return value


def new_origid() -> str:
    return str(uuid.uuid4())
