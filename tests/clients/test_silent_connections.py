"""A connection that goes silent without closing (a NAT or firewall dropped the
flow, the peer's host vanished) is found by keepalive pings on both sides: the
SDK closes it and reconnects, and the exchange ends the calls of a client that
went silent. Real exchanges on 127.0.0.1, reached through a TCP proxy that
silences the connections open at one moment (``net_faults``). The proxy
acknowledges what it is sent, as a middlebox ending TCP does, so only a ping
that goes unanswered can tell. These test the transport, whatever the store: they
run on SQLite only.
"""

from __future__ import annotations

import threading
import time
from typing import Callable, Iterator

import grpc
import pytest

from numrep.config import ServerConfig
from numrep.server import start_server
from numrep.signing.tokens import mint_token
from numrep.v1 import lookup_pb2, lookup_pb2_grpc
from numrep_client import CarrierClient, ExchangeClient, ExchangeError, NullBreaker
from numrep_client._carrier import CARRIER_KEEPALIVE
from numrep_client._client import KEEPALIVE_OPTIONS

from net_faults import BlackHoleProxy
from numrep_testkit import NUMBER, bearer
from sdk_testkit import numbers

pytestmark = pytest.mark.parametrize("server", ["sqlite"], indirect=True)

CARRIER_PING = dict(CARRIER_KEEPALIVE)["grpc.keepalive_time_ms"] / 1000  # after this long without hearing anything
CARRIER_PING_TIMEOUT = dict(CARRIER_KEEPALIVE)["grpc.http2.ping_timeout_ms"] / 1000
CLIENT_PING = dict(KEEPALIVE_OPTIONS)["grpc.keepalive_time_ms"] / 1000  # ExchangeClient's
CLIENT_PING_TIMEOUT = dict(KEEPALIVE_OPTIONS)["grpc.http2.ping_timeout_ms"] / 1000
DEADLINE = 0.25
SLACK = 5.0  # a ping timer's phase, a reconnection, a busy machine: liveness, not speed


@pytest.fixture
def proxy(server) -> Iterator[BlackHoleProxy]:
    through = BlackHoleProxy(server.address)
    yield through
    through.close()


@pytest.mark.parametrize("stream", [False, True], ids=["lookup_calls", "lookup_stream"])
def test_a_carrier_finds_a_silenced_connection_by_its_keepalive_and_reconnects(proxy, federation, stream):
    asked = iter(numbers(2000))
    with CarrierClient(proxy.address, federation.carrier, deadline=DEADLINE, stream=stream, breaker=NullBreaker()) as client:
        assert client.check(next(asked), deadline=2.0).source == "exchange"
        silenced = proxy.black_hole()  # the stream has a channel of its own

        silenced_at = time.monotonic()
        give_up = silenced_at + CARRIER_PING + CARRIER_PING_TIMEOUT + SLACK
        sources = []
        while time.monotonic() < give_up:
            decision = client.check(next(asked))
            sources.append(decision.source)
            if decision.source == "exchange":
                break
        recovered_after = time.monotonic() - silenced_at

    assert sources[-1] == "exchange", f"still failing open {recovered_after:.1f} s after the connection went silent"
    assert set(sources[:-1]) <= {"fail_open"}
    assert sources[0] == "fail_open"  # the silence was real: the first check after it got no answer
    assert proxy.connections > silenced  # answered over a new connection
    print(f"recovered after {recovered_after:.1f} s, {len(sources) - 1} checks failed open meanwhile")


def test_a_carrier_between_checks_finds_its_silenced_connection_before_the_next(proxy, federation):
    with CarrierClient(proxy.address, federation.carrier, deadline=DEADLINE, breaker=NullBreaker()) as client:
        assert client.check(numbers(1)[0], deadline=2.0).source == "exchange"
        proxy.black_hole()
        time.sleep(CARRIER_PING + CARRIER_PING_TIMEOUT + 2)  # no call open meanwhile
        decision = client.check(numbers(1, start=1100)[0], deadline=2.0)
    assert decision.source == "exchange", decision.detail
    assert proxy.connections == 2


def test_a_following_watch_on_a_silenced_connection_fails_rather_than_waiting_forever(proxy, federation):
    with ExchangeClient(proxy.address, federation.carrier) as client:
        watch = client.watch_disputes(follow=True)
        outcome: list[BaseException] = []
        waiting = threading.Thread(target=lambda: outcome.append(_raised(lambda: next(watch))), daemon=True)
        waiting.start()  # no dispute comes: only a closed connection can end the wait
        client.list_disputes()  # the connection is up, and the watch opens on it meanwhile
        time.sleep(0.5)
        proxy.black_hole()
        silenced_at = time.monotonic()
        waiting.join(CLIENT_PING + CLIENT_PING_TIMEOUT + SLACK)
        waited = time.monotonic() - silenced_at
    assert outcome and isinstance(outcome[0], ExchangeError), f"still waiting {waited:.1f} s after the connection went silent"
    assert outcome[0].code == grpc.StatusCode.UNAVAILABLE
    print(f"the watch ended {waited:.1f} s after its connection went silent")


def _raised(call: Callable[[], object]) -> BaseException:
    try:
        call()
    except BaseException as exc:  # noqa: BLE001 - the test reads what ended the wait
        return exc
    raise AssertionError("the watch answered")


def test_quiet_connections_outlive_the_carrier_sdks_keepalive_pings(proxy, federation):
    """The exchange allows the SDK's pings, on a quiet stream and on a connection with no
    call open. At gRPC's defaults it would close either at its third ping ("too_many_pings"),
    with every call on it."""
    with CarrierClient(proxy.address, federation.carrier, deadline=2.0, stream=True) as client:
        assert client.check(numbers(1)[0]).source == "exchange"  # and the session opens on the other connection
        connections = proxy.connections
        time.sleep(4 * CARRIER_PING + 2)
        closed = proxy.closed_by_exchange
        assert client.check(numbers(1, start=1500)[0]).source == "exchange"
        assert client._stream_lookups().client.opened == 1
    assert (connections, closed) == (2, 0)
    assert proxy.connections == connections


def test_the_exchange_ends_the_calls_of_a_client_that_went_silent(loop_thread, tmp_path, server, federation):
    """A client with no keepalive of its own: only the exchange's pings find it."""
    config = ServerConfig(listen="127.0.0.1:0", data_dir=tmp_path / "pinging", keepalive_seconds=1.0,
                          keepalive_timeout_seconds=1.0)
    running = loop_thread.run(start_server(config, server.exchange))
    proxy = BlackHoleProxy(running.address)
    done = threading.Event()

    def one_lookup_then_quiet() -> Iterator[lookup_pb2.LookupStreamRequest]:
        yield lookup_pb2.LookupStreamRequest(lookups=[lookup_pb2.StreamLookup(id=1, request=lookup_pb2.LookupRequest(number=NUMBER))])
        done.wait()  # the stream stays open and quiet

    try:
        with grpc.insecure_channel(proxy.address) as channel:
            stream = lookup_pb2_grpc.LookupServiceStub(channel).LookupStream(
                one_lookup_then_quiet(), metadata=bearer(mint_token(federation.carrier)))
            assert next(stream).answers[0].id == 1
            proxy.black_hole()
            silenced_at = time.monotonic()
            assert proxy.exchange_closed(timeout=1.0 + 1.0 + SLACK)
            print(f"the exchange closed the connection {time.monotonic() - silenced_at:.1f} s after it went silent")
            stream.cancel()
    finally:
        done.set()
        proxy.close()
        loop_thread.run(running.stop(0))
