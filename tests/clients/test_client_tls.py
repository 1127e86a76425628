"""The SDK clients over mutual TLS: a TLS front end for the fixture exchange."""

from __future__ import annotations

import asyncio

import pytest

from numrep.config import ServerConfig
from numrep.server import start_server
from numrep_client import AppFlagClient, AsyncCarrierClient, CarrierClient, NullBreaker, TlsFiles

from sdk_testkit import CLEAN_NUMBER, SPAM_NUMBER, make_pki


@pytest.fixture
def tls_server(loop_thread, server, tmp_path):
    pki = make_pki(tmp_path / "pki")
    config = ServerConfig(listen="127.0.0.1:0", data_dir=tmp_path / "tls", tls_cert=pki["server_cert"],
                          tls_key=pki["server_key"], tls_client_ca=pki["ca"])
    running = loop_thread.run(start_server(config, server.exchange))
    yield running.address, pki
    loop_thread.run(running.stop(0))


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
