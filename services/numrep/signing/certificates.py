"""X.509 certificates for mutual TLS, and the participant they name.

A participant certificate binds a participant id to one of its registered public
keys: the subject alternative name carries one URI
``urn:numrep:participant:<id>`` and the certificate's key is the participant's
own ES256 (P-256) signing key. The exchange accepts the connection as that
participant only while the key is registered and not revoked (see
``numrep.api.peer_identity``); the CA's signature alone makes nobody a participant.

EdDSA keys cannot be used: gRPC's TLS stack (BoringSSL) does not offer Ed25519 for
client signatures, so such a handshake fails with NO_COMMON_SIGNATURE_ALGORITHMS.
A participant with an Ed25519 key registers an ES256 key too (rotation allows
several keys) and uses that one for its certificate.
"""

from __future__ import annotations

import ipaddress
from datetime import datetime, timedelta, timezone
from typing import Any, Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from numrep.signing.keys import PrivateKey, load_public_key

PARTICIPANT_URI_PREFIX = "urn:numrep:participant:"
DEFAULT_CERTIFICATE_LIFETIME = timedelta(days=365)
DEFAULT_CA_LIFETIME = timedelta(days=3650)
_BACKDATE = timedelta(minutes=5)  # tolerate clocks a little behind the issuer's


def participant_uri(participant_id: str) -> str:
    return PARTICIPANT_URI_PREFIX + participant_id


def participant_ids(certificate: x509.Certificate) -> list[str]:
    """The participant ids the certificate's SAN URIs name (none, one, or a bad several)."""
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    uris = san.get_values_for_type(x509.UniformResourceIdentifier)
    return [uri[len(PARTICIPANT_URI_PREFIX):] for uri in uris if uri.startswith(PARTICIPANT_URI_PREFIX)]


def public_key_bytes(key: Any) -> bytes:
    """The key's DER SubjectPublicKeyInfo: one canonical form to compare keys by."""
    der: bytes = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return der


def new_certificate_authority(name: str, *, lifetime: timedelta = DEFAULT_CA_LIFETIME,
                              now: datetime | None = None) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A self-signed P-256 CA (certificate, private key) for issuing the certificates below."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = _name(name)
    builder = _builder(subject, subject, key.public_key(), lifetime, now)
    builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True).add_extension(
        x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False, data_encipherment=False,
                      key_agreement=False, key_cert_sign=True, crl_sign=True, encipher_only=False, decipher_only=False),
        critical=True)
    return builder.sign(key, hashes.SHA256()), key


def issue_server_certificate(hosts: Sequence[str], ca_cert: x509.Certificate, ca_key: PrivateKey, *,
                             lifetime: timedelta = DEFAULT_CERTIFICATE_LIFETIME,
                             now: datetime | None = None) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A certificate (and its new P-256 key) for the exchange, valid for ``hosts``
    (DNS names or IP addresses)."""
    if not hosts:
        raise ValueError("a server certificate needs at least one host name or address")
    key = ec.generate_private_key(ec.SECP256R1())
    builder = _leaf(_builder(_name(hosts[0]), ca_cert.subject, key.public_key(), lifetime, now),
                    [_host_name(h) for h in hosts], ExtendedKeyUsageOID.SERVER_AUTH)
    return builder.sign(ca_key, hashes.SHA256()), key


def issue_participant_certificate(participant_id: str, public_jwk: str, ca_cert: x509.Certificate, ca_key: PrivateKey, *,
                                  lifetime: timedelta = DEFAULT_CERTIFICATE_LIFETIME,
                                  now: datetime | None = None) -> x509.Certificate:
    """A client certificate naming ``participant_id`` for its registered public key
    ``public_jwk`` (JSON text), signed by the CA. Raises ``ValueError`` for a key that
    cannot authenticate a TLS client (anything but ES256)."""
    alg, public_key = load_public_key(public_jwk)
    if alg != "ES256":
        raise ValueError(f"certificate identity needs an ES256 (P-256) key, not {alg}: "
                         "gRPC's TLS does not accept Ed25519 client certificates; register an ES256 key for it")
    builder = _leaf(_builder(_name(participant_id), ca_cert.subject, public_key, lifetime, now),
                    [x509.UniformResourceIdentifier(participant_uri(participant_id))], ExtendedKeyUsageOID.CLIENT_AUTH)
    return builder.sign(ca_key, hashes.SHA256())


def certificate_pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def private_key_pem(key: PrivateKey) -> bytes:
    """Unencrypted PKCS#8 PEM, the form gRPC's credentials read (keep the file private)."""
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _builder(subject: x509.Name, issuer: x509.Name, public_key: Any, lifetime: timedelta,
             now: datetime | None) -> x509.CertificateBuilder:
    start = (now or datetime.now(timezone.utc)) - _BACKDATE
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(public_key)
            .serial_number(x509.random_serial_number()).not_valid_before(start).not_valid_after(start + _BACKDATE + lifetime))


def _leaf(builder: x509.CertificateBuilder, names: list[x509.GeneralName], usage: x509.ObjectIdentifier) -> x509.CertificateBuilder:
    return (builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False))


def _host_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)
