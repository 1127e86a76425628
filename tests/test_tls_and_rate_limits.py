"""Transport security and abuse limits: TLS and mutual TLS with certificate
files, and per-participant rate limits that keep one participant's flood from
taking the others' capacity."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from numrep.config import ServerConfig
from numrep.core.errors import InvalidArgument
from numrep.core.model import Role
from numrep.core.pseudonym import Pseudonymizer
from numrep.exchange import Exchange, ExchangeConfig
from numrep.limits import Rate, RateLimits
from numrep.server import start_server
from numrep.signing.keys import generate_identity
from numrep.store.sqlite import SqliteStore
from numrep_client import ExchangeClient, ExchangeError, FlagToSend, TlsFiles

NUMBER = "+12025550143"


def _write_pem(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _certificate(subject: str, key, issuer_cert=None, issuer_key=None, ca: bool = False):
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    now = dt.datetime.now(dt.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_cert.subject if issuer_cert else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
    return builder.sign(issuer_key or key, hashes.SHA256())


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, Path]:
    def pem_key(key) -> bytes:
        return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("numrep test CA", ca_key, ca=True)
    files = {"ca": _write_pem(tmp_path / "ca.pem", ca.public_bytes(serialization.Encoding.PEM))}
    for who in ("server", "client"):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _certificate(f"numrep {who}", key, ca, ca_key)
        files[f"{who}_cert"] = _write_pem(tmp_path / f"{who}.pem", cert.public_bytes(serialization.Encoding.PEM))
        files[f"{who}_key"] = _write_pem(tmp_path / f"{who}.key", pem_key(key))
    return files


def _serve(loop_thread, tmp_path: Path, exchange: Exchange | None = None, **config):
    cfg = ServerConfig(listen="127.0.0.1:0", data_dir=tmp_path / "exchange", **config)
    return loop_thread.run(start_server(cfg, exchange))


def _register(exchange: Exchange, role: Role, pid: str):
    identity = generate_identity(pid, role)
    exchange.register_participant(pid, role, pid, [json.dumps(identity.public_jwk())])
    return identity


def test_a_tls_server_answers_clients_that_trust_its_ca_and_refuses_plaintext(loop_thread, tmp_path, pki):
    running = _serve(loop_thread, tmp_path, tls_cert=pki["server_cert"], tls_key=pki["server_key"])
    try:
        carrier = _register(running.exchange, Role.CARRIER, "carrier-tls")
        with ExchangeClient(running.address, carrier, tls=TlsFiles(ca=pki["ca"])) as client:
            assert client.lookup(NUMBER).number == NUMBER
        with ExchangeClient(running.address, carrier, timeout=2) as plaintext, pytest.raises(ExchangeError) as caught:
            plaintext.lookup(NUMBER)
        assert caught.value.code == grpc.StatusCode.UNAVAILABLE
    finally:
        loop_thread.run(running.stop(0))


def test_mutual_tls_requires_a_client_certificate_from_the_configured_ca(loop_thread, tmp_path, pki):
    running = _serve(loop_thread, tmp_path, tls_cert=pki["server_cert"], tls_key=pki["server_key"], tls_client_ca=pki["ca"])
    try:
        carrier = _register(running.exchange, Role.CARRIER, "carrier-mtls")
        with_cert = TlsFiles(ca=pki["ca"], cert=pki["client_cert"], key=pki["client_key"])
        with ExchangeClient(running.address, carrier, tls=with_cert) as client:
            assert client.lookup(NUMBER).number == NUMBER
        with ExchangeClient(running.address, carrier, tls=TlsFiles(ca=pki["ca"]), timeout=2) as anonymous:
            with pytest.raises(ExchangeError) as caught:
                anonymous.lookup(NUMBER)
        assert caught.value.code == grpc.StatusCode.UNAVAILABLE
    finally:
        loop_thread.run(running.stop(0))


@pytest.fixture
def limited(loop_thread, tmp_path):
    """An exchange whose carriers may do 5 lookups at once and whose apps may send 30
    flags at once, both refilling slowly (one every 100 s): no test's call rides on
    tokens earned meanwhile, however slow the machine."""
    rates = RateLimits().rates | {(Role.CARRIER, "lookup"): Rate(0.01, 5)}
    limits = RateLimits(rates=rates, flags_per_app=Rate(0.01, 30), flags_per_reporter_per_batch=3)
    exchange = Exchange(SqliteStore(tmp_path / "db.sqlite3"), Pseudonymizer(b"k" * 32), ExchangeConfig(rate_limits=limits))
    running = _serve(loop_thread, tmp_path, exchange)
    yield running
    loop_thread.run(running.stop(0))
    exchange.store.close()


def test_a_participant_over_its_rate_gets_resource_exhausted_with_retry_info(limited):
    noisy = _register(limited.exchange, Role.CARRIER, "carrier-noisy")
    calm = _register(limited.exchange, Role.CARRIER, "carrier-calm")
    channel = grpc.insecure_channel(limited.address)
    try:
        with ExchangeClient(limited.address, noisy, channel=channel) as client:
            for _ in range(5):
                client.lookup(NUMBER)
            from numrep.signing.tokens import mint_token
            from numrep.v1 import lookup_pb2, lookup_pb2_grpc

            stub = lookup_pb2_grpc.LookupServiceStub(channel)
            with pytest.raises(grpc.RpcError) as caught:
                stub.Lookup(lookup_pb2.LookupRequest(number=NUMBER), metadata=[("authorization", f"Bearer {mint_token(noisy)}")])
            assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "carrier-noisy is over its lookup rate" in caught.value.details()
            retry_ms = dict(caught.value.trailing_metadata())["retry-after-ms"]
            assert 1 <= int(retry_ms) <= 100_000  # at most the time one token takes to refill
        with ExchangeClient(limited.address, calm) as other:  # the others keep their capacity
            assert other.lookup(NUMBER).number == NUMBER
    finally:
        channel.close()


def test_a_flag_flood_is_limited_per_app_and_per_reporter(limited):
    app = _register(limited.exchange, Role.APP_VENDOR, "app-flood")
    with ExchangeClient(limited.address, app) as client:
        result = client.submit_flags([FlagToSend(NUMBER, "fraud", "same-user") for _ in range(5)])
        assert [r.reason for r in result.results] == ["", "", "", "reporter_over_limit", "reporter_over_limit"]
        assert client.submit_flags([FlagToSend(f"+1212555{i:04d}", "fraud", f"u{i}") for i in range(100, 120)]).accepted == 20
        with pytest.raises(ExchangeError) as caught:  # 25 of the burst of 30 are spent
            client.submit_flags([FlagToSend(f"+1212555{i:04d}", "fraud", f"u{i}") for i in range(120, 130)])
        assert caught.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "flags/s" in caught.value.details
        with pytest.raises(ExchangeError) as too_big:
            client.submit_flags([FlagToSend(f"+1212555{i:04d}", "fraud", f"u{i}") for i in range(200, 240)])
        assert too_big.value.code == grpc.StatusCode.INVALID_ARGUMENT and "split it" in too_big.value.details


# --- rates set by the operator -------------------------------------------------------------
def test_an_operator_sets_rates_per_role_and_class_in_place_of_the_defaults() -> None:
    limits = RateLimits().with_overrides("carrier.batch=200/400, *.sync=1, regulator.write=0.5/3")

    assert limits.rates[(Role.CARRIER, "batch")] == Rate(200, 400)
    assert all(limits.rates[(role, "sync")] == Rate(1, 2) for role in Role)  # burst: twice the rate
    assert limits.rates[(Role.REGULATOR, "write")] == Rate(0.5, 3)
    assert limits.rates[(Role.APP_VENDOR, "batch")] == RateLimits().rates[(Role.APP_VENDOR, "batch")]  # the rest: defaults
    assert RateLimits().with_overrides("").rates == RateLimits().rates


@pytest.mark.parametrize("text", ["carrier.batch", "carrier=5", "carrier.batches=5", "operator.batch=5", "carrier.batch=fast",
                                  "carrier.batch=0", "carrier.batch=5/0.5", "carrier.batch=-1"])
def test_a_rate_written_wrong_is_refused_saying_how_to_write_it(text: str) -> None:
    from numrep.core.errors import InvalidArgument

    with pytest.raises(InvalidArgument) as caught:
        RateLimits().with_overrides(text)
    assert repr(text) in caught.value.message and "ROLE.CLASS=PER_SECOND[/BURST]" in caught.value.message


def test_a_server_applies_the_rates_its_operator_set(loop_thread, tmp_path):
    # refilled slowly: the third call is refused however long the first two took
    running = _serve(loop_thread, tmp_path, rate_limits="carrier.batch=0.01/2")
    try:
        carrier = _register(running.exchange, Role.CARRIER, "carrier-batches")
        with ExchangeClient(running.address, carrier) as client:
            client.batch_lookup([NUMBER])
            client.batch_lookup([NUMBER])
            with pytest.raises(ExchangeError) as caught:
                client.batch_lookup([NUMBER])
        assert caught.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED and "batch rate of 0.01/s" in caught.value.details
    finally:
        loop_thread.run(running.stop(0))


# --- keepalive settings (the behaviour: tests/clients/test_silent_connections.py) ---------
def test_an_operator_sets_the_keepalive_in_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("NUMREP_KEEPALIVE_SECONDS", "90")
    monkeypatch.setenv("NUMREP_KEEPALIVE_TIMEOUT_SECONDS", "15")
    monkeypatch.setenv("NUMREP_MIN_CLIENT_PING_SECONDS", "2")
    config = ServerConfig.from_env()
    assert (config.keepalive_seconds, config.keepalive_timeout_seconds, config.min_client_ping_seconds) == (90, 15, 2)


@pytest.mark.parametrize("setting", ["keepalive_seconds", "keepalive_timeout_seconds", "min_client_ping_seconds"])
@pytest.mark.parametrize("value", [0.0, -1.0, float("nan"), 1e9])
def test_a_keepalive_setting_out_of_range_is_refused(setting: str, value: float) -> None:
    with pytest.raises(InvalidArgument, match=f"{setting} must be 1 to 86400 seconds"):
        ServerConfig(**{setting: value})
