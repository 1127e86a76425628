"""Certificate identity: on an exchange that requires client certificates, a
connection whose certificate names a participant and carries one of its
registered, unrevoked keys authenticates that participant, so its calls need no
per-call bearer token. Everything after authentication (role matrix, the label's
signer, rate limits) is as with a token. Real TLS servers on 127.0.0.1."""

from __future__ import annotations

import datetime as dt
import json
import queue
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID

from numrep.config import ServerConfig
from numrep.core.model import Role
from numrep.server import RunningServer, start_server
from numrep.signing.certificates import (certificate_pem, issue_participant_certificate, issue_server_certificate,
                                         new_certificate_authority, participant_uri, private_key_pem)
from numrep.signing.keys import Identity, generate_identity
from numrep.signing.labels import sign_label
from numrep.signing.sessions import mint_call_token
from numrep.v1 import lookup_pb2, lookup_pb2_grpc
from numrep_client import ExchangeClient, ExchangeError, TlsFiles, open_channel

from numrep_testkit import bearer

NUMBER = "+12025550143"
ACCEPTED, REJECTED = 1, 3  # publish_pb2.ItemStatus


@dataclass
class Pki:
    """A throw-away CA, the exchange's certificate, and participant certificates on demand."""

    directory: Path
    ca_cert: x509.Certificate
    ca_key: object

    @property
    def ca(self) -> Path:
        return self.directory / "ca.pem"

    def server_files(self) -> tuple[Path, Path]:
        cert, key = issue_server_certificate(["127.0.0.1", "localhost"], self.ca_cert, self.ca_key)  # type: ignore[arg-type]
        return self._write("server", certificate_pem(cert), private_key_pem(key))

    def participant_tls(self, holder: Identity, named: str | None = None, *, cert_identity: bool = True,
                        lifetime: dt.timedelta | None = None) -> TlsFiles:
        """Mutual-TLS files for ``holder``'s key in a certificate naming ``named``
        (default: the holder itself), valid for ``lifetime`` (default: the CLI's)."""
        named = named or holder.participant_id
        cert = issue_participant_certificate(named, json.dumps(holder.public_jwk()), self.ca_cert, self.ca_key,  # type: ignore[arg-type]
                                             **({"lifetime": lifetime} if lifetime else {}))
        return self.tls(cert, holder, cert_identity=cert_identity)

    def certificate_with_uris(self, holder: Identity, uris: list[str]) -> x509.Certificate:
        """A CA-signed certificate for ``holder``'s key with exactly these SAN URIs."""
        now = dt.datetime.now(dt.timezone.utc)
        builder = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "odd")]))
                   .issuer_name(self.ca_cert.subject).public_key(holder.private_key.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
                   .not_valid_after(now + dt.timedelta(days=1)))
        if uris:
            builder = builder.add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(u) for u in uris]),
                                            critical=False)
        return builder.sign(self.ca_key, hashes.SHA256())  # type: ignore[arg-type]

    def tls(self, cert: x509.Certificate, holder: Identity, *, cert_identity: bool = True) -> TlsFiles:
        stem = f"client-{cert.serial_number:x}"
        cert_path, key_path = self._write(stem, certificate_pem(cert), private_key_pem(holder.private_key))
        return TlsFiles(self.ca, cert_path, key_path, cert_identity=cert_identity)

    def _write(self, stem: str, cert: bytes, key: bytes) -> tuple[Path, Path]:
        (self.directory / f"{stem}.pem").write_bytes(cert)
        (self.directory / f"{stem}.key").write_bytes(key)
        return self.directory / f"{stem}.pem", self.directory / f"{stem}.key"


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    directory = tmp_path / "pki"
    directory.mkdir()
    ca_cert, ca_key = new_certificate_authority("numrep test participants CA")
    (directory / "ca.pem").write_bytes(certificate_pem(ca_cert))
    return Pki(directory, ca_cert, ca_key)


def _serve(loop_thread, tmp_path: Path, pki: Pki, *, mutual: bool = True) -> Iterator[RunningServer]:
    cert, key = pki.server_files()
    config = ServerConfig(listen="127.0.0.1:0", data_dir=tmp_path / "exchange", tls_cert=cert, tls_key=key,
                          tls_client_ca=pki.ca if mutual else None)
    running = loop_thread.run(start_server(config))
    yield running
    loop_thread.run(running.stop(0))


@pytest.fixture
def mtls(loop_thread, tmp_path, pki) -> Iterator[RunningServer]:
    """An exchange that requires client certificates from ``pki``'s CA."""
    yield from _serve(loop_thread, tmp_path, pki)


@pytest.fixture
def one_way_tls(loop_thread, tmp_path, pki) -> Iterator[RunningServer]:
    """An exchange serving TLS without a client CA: it asks no client for a certificate."""
    yield from _serve(loop_thread, tmp_path, pki, mutual=False)


def _register(running: RunningServer, pid: str, role: Role = Role.CARRIER) -> Identity:
    identity = generate_identity(pid, role, "ES256")
    running.exchange.register_participant(pid, role, pid, [json.dumps(identity.public_jwk())])
    return identity


def _ten_minute_certificate(running: RunningServer, pki: Pki, pid: str) -> tuple[Identity, TlsFiles, dt.datetime]:
    """A carrier registered on ``running``, its mutual-TLS files with a certificate valid
    for ten minutes, and that certificate's notAfter."""
    carrier = _register(running, pid)
    tls = pki.participant_tls(carrier, lifetime=dt.timedelta(minutes=10))
    return carrier, tls, x509.load_pem_x509_certificate(tls.cert.read_bytes()).not_valid_after_utc


def _tokenless_lookup(address: str, tls: TlsFiles) -> str:
    """One Lookup with no metadata at all, straight on the stub."""
    channel = open_channel(address, tls)
    try:
        return lookup_pb2_grpc.LookupServiceStub(channel).Lookup(lookup_pb2.LookupRequest(number=NUMBER), timeout=5).number
    finally:
        channel.close()


def _refusal(client: ExchangeClient) -> ExchangeError:
    with pytest.raises(ExchangeError) as caught:
        client.lookup(NUMBER)
    return caught.value


# --- who the certificate makes the caller ------------------------------------------------------
def test_a_bound_certificate_authenticates_its_participant_without_any_token(mtls, pki):
    carrier = _register(mtls, "carrier-cert")
    tls = pki.participant_tls(carrier)
    assert _tokenless_lookup(mtls.address, tls) == NUMBER
    with ExchangeClient(mtls.address, carrier, tls=tls) as client:
        assert client.lookup(NUMBER).number == NUMBER
        [published] = client.publish([sign_label(carrier, NUMBER, "fraud.impersonation", 0.9)])
        assert published.status == ACCEPTED
        assert published.id.startswith("carrier-cert/")
        with pytest.raises(ExchangeError) as denied:  # its role's permissions apply: no regulator RPCs
            client.list_cases()
    assert denied.value.code == grpc.StatusCode.PERMISSION_DENIED
    assert denied.value.details == "role carrier may not call CaseService/ListCases"


def test_a_certificate_opens_a_call_session_bound_to_the_key_it_carries(mtls, pki):
    carrier = _register(mtls, "carrier-cert")
    tls = pki.participant_tls(carrier)
    with ExchangeClient(mtls.address, carrier, tls=tls) as client:  # no token: the certificate authenticates
        session = client.open_session()
    channel = open_channel(mtls.address, tls)
    try:
        lookup = lookup_pb2_grpc.LookupServiceStub(channel).Lookup
        answered = lookup(lookup_pb2.LookupRequest(number=NUMBER), metadata=bearer(mint_call_token(session)), timeout=5)
        mtls.exchange.revoke_key(None, "carrier-cert", carrier.kid)
        with pytest.raises(grpc.RpcError) as ended:
            lookup(lookup_pb2.LookupRequest(number=NUMBER), metadata=bearer(mint_call_token(session)), timeout=5)
    finally:
        channel.close()

    assert (session.participant_id, session.kid) == ("carrier-cert", carrier.kid)
    assert answered.number == NUMBER
    assert ended.value.code() == grpc.StatusCode.UNAUTHENTICATED and "(revoked_key)" in ended.value.details()


def test_a_session_a_certificate_opens_is_accepted_no_longer_than_the_certificate(mtls, pki, monkeypatch):
    carrier, tls, not_after = _ten_minute_certificate(mtls, pki, "carrier-short-cert")
    skew = mtls.exchange.config.token_policy.clock_skew  # how long past its expiry a session is still accepted
    with ExchangeClient(mtls.address, carrier, tls=tls) as client:
        session = client.open_session(lifetime_seconds=3600)  # asks for an hour
    channel = open_channel(mtls.address, tls)
    try:
        lookup = lookup_pb2_grpc.LookupServiceStub(channel).Lookup
        at_the_end = not_after - dt.timedelta(seconds=1)
        monkeypatch.setattr(mtls.exchange, "clock", lambda: at_the_end)
        answered = lookup(lookup_pb2.LookupRequest(number=NUMBER), metadata=bearer(mint_call_token(session, now=at_the_end)), timeout=5)
        after = not_after + dt.timedelta(seconds=1)
        monkeypatch.setattr(mtls.exchange, "clock", lambda: after)
        with pytest.raises(grpc.RpcError) as ended:
            lookup(lookup_pb2.LookupRequest(number=NUMBER), metadata=bearer(mint_call_token(session, now=after)), timeout=5)
    finally:
        channel.close()

    assert not_after - skew - dt.timedelta(seconds=1) <= session.expires_at <= not_after - skew
    assert answered.number == NUMBER
    assert ended.value.code() == grpc.StatusCode.UNAUTHENTICATED and "(session_expired)" in ended.value.details()


def test_a_certificate_too_close_to_its_end_opens_no_session(mtls, pki, monkeypatch):
    carrier, tls, not_after = _ten_minute_certificate(mtls, pki, "carrier-ending-cert")
    monkeypatch.setattr(mtls.exchange, "clock", lambda: not_after - dt.timedelta(seconds=10))
    with ExchangeClient(mtls.address, carrier, tls=tls) as client:
        with pytest.raises(ExchangeError) as refused:
            client.open_session()

    assert refused.value.code == grpc.StatusCode.UNAUTHENTICATED
    assert "too soon to open a session; reconnect with a current certificate" in refused.value.details


def test_an_open_connection_authenticates_nothing_once_its_certificate_expires(mtls, pki, monkeypatch):
    carrier, tls, _ = _ten_minute_certificate(mtls, pki, "carrier-expiring")
    with ExchangeClient(mtls.address, carrier, tls=tls) as client:
        assert client.lookup(NUMBER).number == NUMBER
        later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=11)
        monkeypatch.setattr(mtls.exchange, "clock", lambda: later)
        refused = _refusal(client)  # same channel: TLS checked the certificate only at the handshake
    assert refused.code == grpc.StatusCode.UNAUTHENTICATED
    assert refused.details.startswith("client certificate expired at ")
    assert refused.details.endswith("; reconnect with a current certificate")


def test_a_lookup_stream_a_certificate_opens_ends_when_the_certificate_does(mtls, pki, monkeypatch):
    carrier, tls, not_after = _ten_minute_certificate(mtls, pki, "carrier-stream-cert")
    monkeypatch.setattr(mtls.exchange, "clock", lambda: not_after - dt.timedelta(seconds=2))  # two seconds of it left
    channel = open_channel(mtls.address, tls)
    try:
        outbox: queue.Queue = queue.Queue()
        responses = lookup_pb2_grpc.LookupServiceStub(channel).LookupStream(iter(outbox.get, None), timeout=20)
        outbox.put(_stream_request(1))
        first = next(responses)
        time.sleep(2.2)
        outbox.put(_stream_request(2))
        with pytest.raises(grpc.RpcError) as ended:
            next(responses)
        outbox.put(None)
    finally:
        channel.close()

    assert [answer.error_code for answer in first.answers] == [0]
    assert ended.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "(or as the call session or client certificate that opened it lasts)" in ended.value.details()


def _stream_request(lookup_id: int) -> lookup_pb2.LookupStreamRequest:
    return lookup_pb2.LookupStreamRequest(lookups=[lookup_pb2.StreamLookup(id=lookup_id, request=lookup_pb2.LookupRequest(number=NUMBER))])


def test_a_regulator_certificate_carries_the_regulators_permissions(mtls, pki):
    regulator = _register(mtls, "regulator-cert", Role.REGULATOR)
    with ExchangeClient(mtls.address, regulator, tls=pki.participant_tls(regulator)) as client:
        assert client.list_cases() == []


def test_a_participant_cannot_publish_as_another_through_its_certificate(mtls, pki):
    carrier = _register(mtls, "carrier-honest")
    other = _register(mtls, "carrier-other")
    with ExchangeClient(mtls.address, carrier, tls=pki.participant_tls(carrier)) as client:
        [result] = client.publish([sign_label(other, NUMBER, "fraud.impersonation", 0.9)])
        assert result.status == REJECTED and result.reason == "issuer_mismatch"
        assert list(client.lookup(NUMBER).contributions) == []


# --- certificates that prove nothing ------------------------------------------------------------
def test_a_ca_signed_certificate_for_an_unregistered_key_is_refused(mtls, pki):
    _register(mtls, "carrier-real")
    impostor = generate_identity("carrier-real", Role.CARRIER, "ES256")  # same id, a key the registry does not hold
    with ExchangeClient(mtls.address, impostor, tls=pki.participant_tls(impostor)) as client:
        refused = _refusal(client)
    assert refused.code == grpc.StatusCode.UNAUTHENTICATED
    assert refused.details == "client certificate's key is not a registered key of participant 'carrier-real'"


def test_a_certificate_naming_an_unregistered_participant_is_refused(mtls, pki):
    stranger = generate_identity("carrier-nobody", Role.CARRIER, "ES256")
    with ExchangeClient(mtls.address, stranger, tls=pki.participant_tls(stranger)) as client:
        refused = _refusal(client)
    assert refused.code == grpc.StatusCode.UNAUTHENTICATED
    assert refused.details == "client certificate names participant 'carrier-nobody', which is not registered"


def test_a_certificate_naming_one_participant_with_anothers_key_is_refused(mtls, pki):
    _register(mtls, "carrier-a")
    b = _register(mtls, "carrier-b")
    with ExchangeClient(mtls.address, b, tls=pki.participant_tls(b, named="carrier-a")) as client:
        refused = _refusal(client)
    assert refused.code == grpc.StatusCode.UNAUTHENTICATED
    assert refused.details == "client certificate's key is not a registered key of participant 'carrier-a'"


def test_revoking_the_key_ends_the_open_connections_authority(mtls, pki):
    carrier = _register(mtls, "carrier-revoked")
    regulator = _register(mtls, "regulator-revokes", Role.REGULATOR)
    with ExchangeClient(mtls.address, carrier, tls=pki.participant_tls(carrier)) as client:
        assert client.lookup(NUMBER).number == NUMBER
        with ExchangeClient(mtls.address, regulator, tls=pki.participant_tls(regulator)) as admin:
            admin.revoke_key("carrier-revoked", carrier.kid)
        refused = _refusal(client)  # same channel, same TLS connection
    assert refused.code == grpc.StatusCode.UNAUTHENTICATED
    assert refused.details == f"client certificate's key {carrier.kid!r} is revoked"


def test_a_certificate_that_names_no_participant_still_needs_a_token(mtls, pki):
    carrier = _register(mtls, "carrier-plain")
    plain = pki.certificate_with_uris(carrier, [])
    with ExchangeClient(mtls.address, carrier, tls=pki.tls(plain, carrier)) as client:
        refused = _refusal(client)
    assert refused.code == grpc.StatusCode.UNAUTHENTICATED
    assert refused.details == ("missing bearer token, and the client certificate names no participant "
                               "(no SAN URI urn:numrep:participant:<id>)")
    with ExchangeClient(mtls.address, carrier, tls=pki.tls(plain, carrier, cert_identity=False)) as with_token:
        assert with_token.lookup(NUMBER).number == NUMBER


def test_a_certificate_naming_two_participants_is_refused(mtls, pki):
    carrier = _register(mtls, "carrier-two")
    _register(mtls, "carrier-three")
    both = pki.certificate_with_uris(carrier, [participant_uri("carrier-two"), participant_uri("carrier-three")])
    with ExchangeClient(mtls.address, carrier, tls=pki.tls(both, carrier)) as client:
        refused = _refusal(client)
    assert refused.code == grpc.StatusCode.UNAUTHENTICATED
    assert refused.details == "client certificate names 2 participants; it must name exactly one"


# --- tokens and certificates together ----------------------------------------------------------------
def test_a_token_wins_but_must_name_the_certificates_participant(mtls, pki):
    a = _register(mtls, "carrier-token-a")
    b = _register(mtls, "carrier-token-b")
    with ExchangeClient(mtls.address, a, tls=pki.participant_tls(a, cert_identity=False)) as same:
        assert same.lookup(NUMBER).number == NUMBER
    with ExchangeClient(mtls.address, b, tls=pki.participant_tls(a, cert_identity=False)) as crossed:
        refused = _refusal(crossed)
    assert refused.code == grpc.StatusCode.UNAUTHENTICATED
    assert refused.details == "bearer token is for participant 'carrier-token-b' but the client certificate names 'carrier-token-a'"


def test_without_mutual_tls_a_missing_token_is_refused_as_before(one_way_tls, pki):
    carrier = _register(one_way_tls, "carrier-one-way")
    with pytest.raises(grpc.RpcError) as caught:
        _tokenless_lookup(one_way_tls.address, pki.participant_tls(carrier))  # its certificate is never asked for
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert caught.value.details() == "missing bearer token: send 'authorization: Bearer <JWT signed with your key>'"
    with ExchangeClient(one_way_tls.address, carrier, tls=TlsFiles(pki.ca)) as client:
        assert client.lookup(NUMBER).number == NUMBER


# --- issuing ----------------------------------------------------------------------------------------
def test_an_issued_certificate_names_the_participant_and_carries_its_key(pki):
    carrier = generate_identity("carrier-issued", Role.CARRIER, "ES256")
    cert = issue_participant_certificate("carrier-issued", json.dumps(carrier.public_jwk()), pki.ca_cert, pki.ca_key)  # type: ignore[arg-type]
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == ["urn:numrep:participant:carrier-issued"]
    assert cert.public_key() == carrier.private_key.public_key()
    assert cert.issuer == pki.ca_cert.subject


def test_an_eddsa_key_cannot_get_a_certificate(pki):
    carrier = generate_identity("carrier-ed", Role.CARRIER, "EdDSA")
    with pytest.raises(ValueError, match="needs an ES256 .* not EdDSA"):
        issue_participant_certificate("carrier-ed", json.dumps(carrier.public_jwk()), pki.ca_cert, pki.ca_key)  # type: ignore[arg-type]


def test_the_cli_issues_every_file_a_certificate_identity_deployment_needs(loop_thread, tmp_path, capsys):
    from numrep.cli.main import main

    d = tmp_path / "cli"
    d.mkdir()
    assert main(["cert", "ca", "--out", str(d / "ca.pem"), "--key-out", str(d / "ca.key")]) == 0
    ca = ["--ca", str(d / "ca.pem"), "--ca-key", str(d / "ca.key")]
    assert main(["cert", "server", "127.0.0.1", *ca, "--out", str(d / "server.pem"), "--key-out", str(d / "server.key")]) == 0
    assert main(["keys", "carrier-cli", "--role", "carrier", "--alg", "ES256", "--out", str(d / "carrier.json")]) == 0
    assert main(["cert", "issue", "--identity", str(d / "carrier.json"), *ca,
                 "--out", str(d / "carrier.pem"), "--key-out", str(d / "carrier.key")]) == 0
    assert "urn:numrep:participant:carrier-cli" in capsys.readouterr().out
    assert main(["cert", "issue", "--identity", str(d / "carrier.json"), *ca,
                 "--out", str(d / "again.pem"), "--key-out", str(d / "carrier.key")]) == 1
    assert "refusing to overwrite a private key" in capsys.readouterr().err

    config = ServerConfig(listen="127.0.0.1:0", data_dir=tmp_path / "exchange", tls_cert=d / "server.pem",
                          tls_key=d / "server.key", tls_client_ca=d / "ca.pem")
    running = loop_thread.run(start_server(config))
    try:
        carrier = Identity.load(d / "carrier.json")
        running.exchange.register_participant("carrier-cli", Role.CARRIER, "CLI", [json.dumps(carrier.public_jwk())])
        tls = TlsFiles(d / "ca.pem", d / "carrier.pem", d / "carrier.key", cert_identity=True)
        with ExchangeClient(running.address, carrier, tls=tls) as client:
            assert client.lookup(NUMBER).number == NUMBER
        tls_flags = ["--tls-ca", str(d / "ca.pem"), "--tls-cert", str(d / "carrier.pem"), "--tls-key", str(d / "carrier.key")]
        capsys.readouterr()
        assert main(["lookup", NUMBER, "--server", running.address, "--identity", str(d / "carrier.json"),
                     *tls_flags, "--cert-identity"]) == 0
        assert NUMBER in capsys.readouterr().out
        assert main(["lookup", NUMBER, "--server", running.address, "--identity", str(d / "carrier.json"),
                     "--tls-ca", str(d / "ca.pem"), "--cert-identity"]) != 0
        assert "--cert-identity needs your client certificate and key" in capsys.readouterr().err
    finally:
        loop_thread.run(running.stop(0))
