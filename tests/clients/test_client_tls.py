"""The SDK clients over mutual TLS: a TLS front end for the fixture exchange,
with per-call tokens, and with certificate identity (no tokens at all)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from cryptography import x509

from numrep.config import ServerConfig
from numrep.core.model import Role
from numrep.server import start_server
from numrep.signing.certificates import (certificate_pem, issue_participant_certificate, issue_server_certificate,
                                         new_certificate_authority, private_key_pem)
from numrep.signing.keys import Identity, generate_identity
from numrep_client import AppFlagClient, AsyncCarrierClient, CarrierClient, ExchangeClient, NullBreaker, TlsFiles

from sdk_testkit import CLEAN_NUMBER, SPAM_NUMBER, make_pki, numbers, stream_threads


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
    """A mutual-TLS front end for the fixture exchange, and ``issue(identity, lifetime)``:
    TlsFiles with a certificate bound to that identity's key, signed by its CA."""
    directory = tmp_path / "identity-pki"
    directory.mkdir()
    ca_cert, ca_key = new_certificate_authority("numrep SDK participants CA")
    server_cert, server_key = issue_server_certificate(["127.0.0.1"], ca_cert, ca_key)
    files = {name: directory / name for name in ("ca.pem", "server.pem", "server.key")}
    files["ca.pem"].write_bytes(certificate_pem(ca_cert))
    files["server.pem"].write_bytes(certificate_pem(server_cert))
    files["server.key"].write_bytes(private_key_pem(server_key))

    def issue(identity: Identity, lifetime: dt.timedelta | None = None, *, key: bool = True,
              now: dt.datetime | None = None) -> TlsFiles:
        """(Re)writes the identity's certificate (valid from ``now``), and with ``key`` its key,
        at the same paths each time."""
        cert = issue_participant_certificate(identity.participant_id, json.dumps(identity.public_jwk()), ca_cert, ca_key,
                                             now=now, **({"lifetime": lifetime} if lifetime else {}))
        paths = (directory / f"{identity.participant_id}.pem", directory / f"{identity.participant_id}.key")
        paths[0].write_bytes(certificate_pem(cert))
        if key:
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


# --- a certificate renewed on disk ---------------------------------------------------------------
# The exchange's clock is set to a few seconds before the first certificate ends, then past it. A
# stream the first certificate opened lasts only those seconds of real time (the exchange times a
# stream on its loop's clock): after them, a client that kept the old files opens its next stream
# with the expired certificate, and is refused. A renewal is taken once its connection is up, in
# the background: the checks after it are asked until one is answered, for SWITCH seconds at most.
LEFT = dt.timedelta(seconds=3)
SWITCH = 5.0


def _not_after(tls: TlsFiles) -> dt.datetime:
    return x509.load_pem_x509_certificate(tls.cert.read_bytes()).not_valid_after_utc


def _answered_soon(check: Callable[[str], Any]) -> Any:
    """The first decision the exchange answers, asking a new number every 50 ms for ``SWITCH`` s."""
    give_up = time.monotonic() + SWITCH
    for number in numbers(1000, start=4000):
        decision = check(number)
        if decision.source == "exchange" or time.monotonic() > give_up:
            return decision
        time.sleep(0.05)
    raise AssertionError("ran out of numbers")


def _sources_in_turn(check: Callable[[str], Any], asked: list[str]) -> list[str]:
    """Who decided each of ``asked``, checked 50 ms apart (looks at the files, and
    connections in the background, have time to happen in between)."""
    sources = []
    for number in asked:
        sources.append(check(number).source)
        time.sleep(0.05)
    return sources


@pytest.mark.parametrize("stream", [False, True], ids=["lookup_calls", "lookup_stream"])
def test_a_carrier_goes_on_over_its_renewed_certificate_once_the_old_one_has_expired(identity_server, server, federation,
                                                                                    monkeypatch, stream):
    address, issue = identity_server
    tls = issue(federation.carrier, dt.timedelta(minutes=10))
    first_end = _not_after(tls)
    monkeypatch.setattr(server.exchange, "clock", lambda: first_end - LEFT)
    with CarrierClient(address, federation.carrier, tls=tls, tls_recheck=0, deadline=2.0, stream=stream,
                       breaker=NullBreaker()) as carrier:
        assert carrier.check(CLEAN_NUMBER).source == "exchange"
        issue(federation.carrier, dt.timedelta(days=1))  # renewed at the same paths
        assert carrier.check(SPAM_NUMBER).source == "exchange"  # over the old connection while the new one comes up
        time.sleep(LEFT.total_seconds() + 0.5)  # the old certificate has ended, and any stream it opened
        monkeypatch.setattr(server.exchange, "clock", lambda: first_end + dt.timedelta(minutes=1))
        decision = _answered_soon(carrier.check)
    assert decision.source == "exchange", decision.detail
    assert stream_threads() == []  # close() ended the replaced stream too


@pytest.mark.parametrize("stream", [False, True], ids=["lookup_calls", "lookup_stream"])
def test_the_async_carrier_goes_on_over_its_renewed_certificate(identity_server, server, federation, monkeypatch, stream):
    address, issue = identity_server
    tls = issue(federation.carrier, dt.timedelta(minutes=10))
    first_end = _not_after(tls)
    monkeypatch.setattr(server.exchange, "clock", lambda: first_end - LEFT)

    async def scenario():  # type: ignore[no-untyped-def]
        async with AsyncCarrierClient(address, federation.carrier, tls=tls, tls_recheck=0, deadline=2.0, stream=stream,
                                      breaker=NullBreaker()) as carrier:
            before = await carrier.check(CLEAN_NUMBER)
            issue(federation.carrier, dt.timedelta(days=1))
            await carrier.check(SPAM_NUMBER)
            await asyncio.sleep(LEFT.total_seconds() + 0.5)
            monkeypatch.setattr(server.exchange, "clock", lambda: first_end + dt.timedelta(minutes=1))
            give_up = time.monotonic() + SWITCH
            for number in numbers(1000, start=5000):
                after = await carrier.check(number)
                if after.source == "exchange" or time.monotonic() > give_up:
                    return before, after
                await asyncio.sleep(0.05)

    before, after = asyncio.run(scenario())
    assert (before.source, after.source) == ("exchange", "exchange"), after.detail


def test_without_a_renewal_on_disk_the_expired_certificate_fails_open(identity_server, server, federation, monkeypatch):
    address, issue = identity_server
    tls = issue(federation.carrier, dt.timedelta(minutes=10))
    with CarrierClient(address, federation.carrier, tls=tls, tls_recheck=0, deadline=2.0, breaker=NullBreaker()) as carrier:
        assert carrier.check(CLEAN_NUMBER).source == "exchange"
        monkeypatch.setattr(server.exchange, "clock", lambda: _not_after(tls) + dt.timedelta(minutes=1))
        decision = carrier.check(SPAM_NUMBER)
    assert (decision.source, decision.reason) == ("fail_open", "unauthenticated"), decision


def test_a_certificate_caught_halfway_through_its_renewal_is_not_taken(identity_server, server, federation, connect,
                                                                      monkeypatch):
    address, issue = identity_server
    tls = issue(federation.carrier, dt.timedelta(minutes=10))
    first_end = _not_after(tls)
    new_key = generate_identity(federation.carrier.participant_id, Role.CARRIER, "ES256")
    connect(federation.carrier).add_key(federation.carrier.participant_id, json.dumps(new_key.public_jwk()))
    with CarrierClient(address, federation.carrier, tls=tls, tls_recheck=0, deadline=2.0, breaker=NullBreaker()) as carrier:
        assert carrier.check(CLEAN_NUMBER).source == "exchange"
        issue(new_key, dt.timedelta(days=1), key=False)  # the new certificate is written, its key not yet
        halfway = _sources_in_turn(carrier.check, numbers(10, start=3000))
        issue(new_key, dt.timedelta(days=1))
        carrier.check(SPAM_NUMBER)  # the look that finds the pair whole
        time.sleep(0.5)
        monkeypatch.setattr(server.exchange, "clock", lambda: first_end + dt.timedelta(minutes=1))
        renewed = _answered_soon(carrier.check)
    assert set(halfway) == {"exchange"}  # still over the old pair
    assert renewed.source == "exchange", renewed.detail


def test_a_renewal_that_cannot_connect_is_not_taken_and_the_old_connection_goes_on(identity_server, federation):
    address, issue = identity_server
    tls = issue(federation.carrier)
    with CarrierClient(address, federation.carrier, tls=tls, tls_recheck=0, deadline=2.0, breaker=NullBreaker()) as carrier:
        assert carrier.check(CLEAN_NUMBER).source == "exchange"
        lapsed = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=2)
        issue(federation.carrier, dt.timedelta(days=1), now=lapsed)  # a matching pair the exchange's TLS refuses
        sources = _sources_in_turn(carrier.check, numbers(20, start=3500))
    assert set(sources) == {"exchange"}


def test_a_bad_recheck_interval_is_refused(identity_server, federation):
    address, issue = identity_server
    with pytest.raises(ValueError, match="tls_recheck"):
        CarrierClient(address, federation.carrier, tls=issue(federation.carrier), tls_recheck=float("nan"))
    with pytest.raises(ValueError, match="tls_recheck"):
        AsyncCarrierClient(address, federation.carrier, tls_recheck=-1.0)
