"""Who the mutual-TLS peer is: the participant a verified client certificate names,
accepted only while the certificate's key is one of that participant's registered,
unrevoked keys.

gRPC has verified the chain against the server's client CA before any call
arrives; here the certificate must also name exactly one participant (a SAN URI
``urn:numrep:participant:<id>``, ``numrep.signing.certificates``) and carry one
of its keys. So a CA-issued certificate alone makes nobody a participant, and
revoking the key in the registry ends the connection's authority within the
registry cache's few seconds. Parsing a PEM is cached; a call costs a dict hit
and the registry check.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime
from typing import Callable

import grpc
from cryptography import x509

from numrep.core.errors import Unauthenticated
from numrep.core.model import Participant
from numrep.exchange import Exchange
from numrep.signing.certificates import PARTICIPANT_URI_PREFIX, participant_ids, public_key_bytes
from numrep.signing.keys import load_public_key
from numrep.signing.tokens import Proof

_PEM_PROPERTY = "x509_pem_cert"
_CACHED_CERTIFICATES = 4096  # distinct peer certificates (a few per participant)
_CACHED_KEYS = 16384         # distinct registered JWKs


@dataclass(frozen=True)
class PeerCertificate:
    """What a verified client certificate says: the participant ids its SAN URIs
    name, its public key (DER SubjectPublicKeyInfo) and the end of its validity."""

    participants: tuple[str, ...]
    key: bytes
    not_after: datetime

    @property
    def named(self) -> str | None:
        """The one participant the certificate names, or None (none, or several)."""
        return self.participants[0] if len(self.participants) == 1 else None


@functools.lru_cache(maxsize=_CACHED_CERTIFICATES)
def parse_peer_certificate(pem: bytes) -> PeerCertificate:
    certificate = x509.load_pem_x509_certificate(pem)
    return PeerCertificate(tuple(participant_ids(certificate)), public_key_bytes(certificate.public_key()),
                           certificate.not_valid_after_utc)


@functools.lru_cache(maxsize=_CACHED_KEYS)
def registered_key_bytes(jwk: str) -> bytes | None:
    """The DER SubjectPublicKeyInfo of a registered JWK, or None if it does not parse."""
    try:
        return public_key_bytes(load_public_key(jwk)[1])
    except ValueError:
        return None


def peer_certificate(context: grpc.aio.ServicerContext) -> PeerCertificate | None:
    """The verified client certificate of this call's connection, if it has one."""
    pems = context.auth_context().get(_PEM_PROPERTY)
    return parse_peer_certificate(pems[0]) if pems else None


def confidential(context: grpc.aio.ServicerContext) -> bool:
    """Is this call's connection TLS, or from this host (loopback, a Unix socket)?
    What a secret sent in the answer may travel over."""
    if b"ssl" in context.auth_context().get("transport_security_type", ()):
        return True
    peer = context.peer() or ""
    return peer.startswith(("ipv4:127.", "ipv6:[::1]", "ipv6:[::ffff:127.", "unix:"))


class PeerIdentity:
    """Authenticates calls by their connection's client certificate. Use it only
    on a server that requires client certificates from a configured CA: the
    chain check is gRPC's."""

    def __init__(self, exchange: Exchange) -> None:
        self._participant: Callable[[str], Participant | None] = exchange.participant
        self._exchange = exchange

    def prove(self, peer: PeerCertificate) -> Proof:
        """The participant ``peer`` is bound to and the registered key it carries,
        or ``Unauthenticated`` saying why not."""
        now = self._exchange.clock()
        if now >= peer.not_after:  # TLS checked it at the handshake; a connection can outlive it
            raise Unauthenticated(f"client certificate expired at {peer.not_after:%Y-%m-%dT%H:%M:%SZ}; "
                                  "reconnect with a current certificate", "certificate_expired")
        participant_id = _named(peer)
        participant = self._participant(participant_id)
        if participant is None:
            raise Unauthenticated(f"client certificate names participant {participant_id!r}, which is not registered",
                                  "unknown_participant")
        record = next((k for k in participant.keys if registered_key_bytes(k.jwk) == peer.key), None)
        if record is None:
            raise Unauthenticated(f"client certificate's key is not a registered key of participant {participant_id!r}",
                                  "certificate_key_not_registered")
        if not record.valid_at(now):
            raise Unauthenticated(f"client certificate's key {record.kid!r} is revoked", "revoked_key")
        return Proof(participant, record.kid, "certificate", peer.not_after)

    @staticmethod
    def check_token_agrees(peer: PeerCertificate, participant: Participant) -> None:
        """A call with a bearer token on a connection whose certificate names a
        participant: both must name the same one."""
        if peer.participants and peer.participants != (participant.id,):
            named = ", ".join(repr(p) for p in peer.participants)
            raise Unauthenticated(f"bearer token is for participant {participant.id!r} but the client certificate names {named}",
                                  "certificate_participant_mismatch")


def _named(peer: PeerCertificate) -> str:
    if peer.named is not None:
        return peer.named
    if not peer.participants:
        raise Unauthenticated(f"missing bearer token, and the client certificate names no participant "
                              f"(no SAN URI {PARTICIPANT_URI_PREFIX}<id>)", "certificate_names_no_participant")
    raise Unauthenticated(f"client certificate names {len(peer.participants)} participants; it must name exactly one",
                          "certificate_names_several_participants")
