"""The SDK clients over mutual TLS: a TLS front end for the fixture exchange,
with per-call tokens, and with certificate identity (no tokens at all)."""

from __future__ import annotations

import asyncio
import json
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

from numrep.config import ServerConfig
from numrep.core.model import Role
from numrep.server import start_server
from numrep.signing.certificates import (certificate_pem, issue_participant_certificate, issue_server_certificate,
                                         new_certificate_authority, private_key_pem)
from numrep.signing.keys import Identity, generate_identity
from numrep_client import AppFlagClient, AsyncCarrierClient, CarrierClient, ExchangeClient, NullBreaker, TlsFiles

from sdk_testkit import CLEAN_NUMBER, SPAM_NUMBER, make_pki


@contextmanager
def mutual_tls_front_end(loop_thread, exchange, data_dir: Path, cert: Path, key: Path, client_ca: Path) -> Iterator[str]:
    """A mutual-TLS server for ``exchange``; yields its address."""
    config = ServerConfig(listen="127.0.0.1:0", data_dir=data_dir, tls_cert=cert, tls_key=key, tls_client_ca=client_ca)
    running = loop_thread.run(start_server(config, exchange))
    try:
        yield running.address
    finally:
        loop_thread.run(running.stop(0))


@pytest.fixture
def tls_server(loop_thread, server, tmp_path):
    pki = make_pki(tmp_path / "pki")
    with mutual_tls_front_end(loop_thread, server.exchange, tmp_path / "tls", pki["server_cert"], pki["server_key"],
                              pki["ca"]) as address:
        yield address, pki


def test_carrier_and_app_clients_speak_mutual_tls(tls_server, federation):
    address, pki = tls_server
    tls = TlsFiles(pki["ca"], pki["client_cert"], pki["client_key"])
    with CarrierClient(address, federation.carrier, tls=tls, deadline=2.0) as carrier:
        assert carrier.check(CLEAN_NUMBER).source == "exchange"
    with AppFlagClient(address, federation.app, bytes(32), tls=tls) as app:
        app.flag(SPAM_NUMBER, "fraud", "alice")
        assert app.flush().accepted == 1

    async def scenario():
        async with AsyncCarrierClient(address, federation.carrier, tls=tls, deadline=2.0) as client:
            return await client.check(SPAM_NUMBER)

    decision = asyncio.run(scenario())
    assert decision.source == "exchange" and decision.verdict.flag_count == 1


def test_without_a_client_certificate_the_carrier_fails_open(tls_server, federation):
    address, pki = tls_server
    with CarrierClient(address, federation.carrier, tls=TlsFiles(pki["ca"]), breaker=NullBreaker()) as carrier:
        decision = carrier.check(CLEAN_NUMBER)
    assert decision.source == "fail_open" and decision.reason in {"unavailable", "timeout"}


@pytest.fixture
def identity_server(loop_thread, server, tmp_path):
    """A mutual-TLS front end for the fixture exchange, and ``issue(identity)``:
    TlsFiles with a certificate bound to that identity's key, signed by its CA."""
    directory = tmp_path / "identity-pki"
    directory.mkdir()
    ca_cert, ca_key = new_certificate_authority("numrep SDK participants CA")
    server_cert, server_key = issue_server_certificate(["127.0.0.1"], ca_cert, ca_key)
    files = {name: directory / name for name in ("ca.pem", "server.pem", "server.key")}
    files["ca.pem"].write_bytes(certificate_pem(ca_cert))
    files["server.pem"].write_bytes(certificate_pem(server_cert))
    files["server.key"].write_bytes(private_key_pem(server_key))

    def issue(identity: Identity) -> TlsFiles:
        cert = issue_participant_certificate(identity.participant_id, json.dumps(identity.public_jwk()), ca_cert, ca_key)
        paths = (directory / f"{identity.participant_id}.pem", directory / f"{identity.participant_id}.key")
        paths[0].write_bytes(certificate_pem(cert))
        paths[1].write_bytes(private_key_pem(identity.private_key))
        return TlsFiles(files["ca.pem"], paths[0], paths[1], cert_identity=True)

    with mutual_tls_front_end(loop_thread, server.exchange, tmp_path / "identity-tls", files["server.pem"],
                              files["server.key"], files["ca.pem"]) as address:
        yield address, issue


def test_carrier_clients_with_certificate_identity_sign_no_tokens(identity_server, federation):
    address, issue = identity_server
    tls = issue(federation.carrier)  # the carrier's registered ES256 key
    with CarrierClient(address, federation.carrier, tls=tls, deadline=2.0) as carrier:
        assert carrier.wait_ready(5.0)
        assert carrier.check(CLEAN_NUMBER).source == "exchange"
        stats = carrier.stats()
    assert stats.rpcs == 1 and stats.token_mint.count == 0

    async def scenario():
        async with AsyncCarrierClient(address, federation.carrier, tls=tls, deadline=2.0) as client:
            return await client.check(SPAM_NUMBER), client.stats()

    decision, async_stats = asyncio.run(scenario())
    assert decision.source == "exchange" and async_stats.token_mint.count == 0


def test_an_eddsa_app_flags_over_its_certificate_with_an_added_es256_key(identity_server, federation, connect):
    address, issue = identity_server
    tls_key = generate_identity(federation.app.participant_id, Role.APP_VENDOR, "ES256")
    connect(federation.app).add_key(federation.app.participant_id, json.dumps(tls_key.public_jwk()))
    with AppFlagClient(address, tls_key, bytes(32), tls=issue(tls_key)) as app:
        app.flag(SPAM_NUMBER, "fraud", "alice")
        assert app.flush().accepted == 1


def test_by_default_a_client_with_a_bound_certificate_still_sends_tokens(identity_server, federation):
    address, issue = identity_server
    bound = issue(federation.carrier)
    with_tokens = TlsFiles(bound.ca, bound.cert, bound.key)
    with CarrierClient(address, federation.carrier, tls=with_tokens, deadline=2.0) as carrier:
        assert carrier.check(CLEAN_NUMBER).source == "exchange"
        assert carrier.stats().token_mint.count == 1
    with ExchangeClient(address, federation.carrier, tls=with_tokens) as client:
        assert client.lookup(CLEAN_NUMBER).number == CLEAN_NUMBER


def test_certificate_identity_needs_a_certificate_and_key(tmp_path: Path):
    with pytest.raises(ValueError, match="cert_identity needs a client certificate and its key"):
        TlsFiles(tmp_path / "ca.pem", cert_identity=True)
