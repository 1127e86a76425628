"""The store goes away and comes back: with its only Cassandra node stopped the
exchange answers UNAVAILABLE at once (not after the client's deadline), health
says NOT_SERVING and the carrier client fails open; when the node is back, the
same exchange process serves again, with everything stored before the outage."""

from __future__ import annotations

import itertools
import json
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from numrep.config import ServerConfig
from numrep.core.model import Role
from numrep.server import RunningServer, start_server
from numrep.signing.keys import generate_identity
from numrep.signing.labels import sign_label
from numrep_client import CarrierClient, ExchangeClient, ExchangeError, FlagToSend

from faults_kit import REPO, CassandraNodes, drop_keyspace
from numrep_testkit import public_jwk_text

pytestmark = [pytest.mark.faults, pytest.mark.timeout(600)]

CLIENT_DEADLINE = 5.0       # seconds the SDK client waits for any RPC
QUICK = 1.0                 # an outage must be reported well inside that deadline
CARRIER_DEADLINE = 0.2      # the carrier's per-call budget
HEALTH_INTERVAL = 0.5       # how often the exchange pings its store
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
LABELLED = "+12125550100"


@pytest.fixture
def exchange(single_node: CassandraNodes, loop_thread: Any, tmp_path: Path) -> Iterator[RunningServer]:
    keyspace = f"numrep_outage_{uuid.uuid4().hex[:10]}"
    config = ServerConfig(listen="127.0.0.1:0", data_dir=tmp_path / "exchange", store=single_node.store_url(keyspace),
                          health_interval_seconds=HEALTH_INTERVAL)
    running = loop_thread.run(start_server(config))
    try:
        yield running
    finally:
        if single_node.running() < 1:
            single_node.start_node(1)  # a failed test must not leave the node down for the next
        try:
            drop_keyspace(running.store._session, keyspace)  # type: ignore[attr-defined]
        finally:
            loop_thread.run(running.stop(0))


def _health(channel: grpc.Channel) -> int:
    return health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=CLIENT_DEADLINE).status


def _wait_for(predicate: Callable[[], bool], timeout: float) -> float:
    """Seconds until ``predicate`` held; fails after ``timeout``."""
    started = time.monotonic()
    while not predicate():
        assert time.monotonic() - started < timeout, f"not within {timeout:.0f} s"
        time.sleep(0.1)
    return time.monotonic() - started


def _timed_refusal(call: Callable[[], Any]) -> tuple[float, ExchangeError]:
    started = time.monotonic()
    with pytest.raises(ExchangeError) as refused:
        call()
    return time.monotonic() - started, refused.value


def test_an_unreachable_store_is_reported_at_once_and_recovers_without_a_restart(
    exchange: RunningServer, single_node: CassandraNodes
) -> None:
    carrier = generate_identity("carrier-outage", Role.CARRIER, "ES256")
    app = generate_identity("app-outage", Role.APP_VENDOR, "EdDSA")
    for member in (carrier, app):
        exchange.exchange.register_participant(member.participant_id, member.role, "", [public_jwk_text(member)])
    fresh = (f"+1212555{n:04d}" for n in itertools.count(2000))
    with ExchangeClient(exchange.address, carrier, timeout=CLIENT_DEADLINE) as client, \
            ExchangeClient(exchange.address, app, timeout=CLIENT_DEADLINE) as app_client, \
            CarrierClient(exchange.address, carrier, deadline=CARRIER_DEADLINE, cache_size=0) as carrier_client, \
            grpc.insecure_channel(exchange.address) as probe:
        stored = client.publish([sign_label(carrier, LABELLED, "fraud.impersonation", 0.9)])
        assert [r.status for r in stored] == [1]
        assert client.lookup(LABELLED).label_count == 1
        assert _health(probe) == SERVING
        assert carrier_client.check(next(fresh)).source == "exchange"

        killed_at = time.monotonic()
        single_node.kill(1)
        to_not_serving = _wait_for(lambda: _health(probe) == NOT_SERVING, timeout=10 * HEALTH_INTERVAL + 5)

        # Every kind of RPC is refused with UNAVAILABLE and a message, well inside the deadline.
        refusals: dict[str, list[float]] = {"Lookup": [], "Publish": [], "SubmitFlags": [], "Sync": []}
        calls: dict[str, Callable[[], Any]] = {
            "Lookup": lambda: client.lookup(next(fresh)),
            "Publish": lambda: client.publish([sign_label(carrier, next(fresh), "marketing.robocall", 0.7)]),
            "SubmitFlags": lambda: app_client.submit_flags([FlagToSend(next(fresh), "marketing", "reporter-1")]),
            "Sync": lambda: list(app_client.sync()),
        }
        for _ in range(10):
            for rpc, call in calls.items():
                seconds, error = _timed_refusal(call)
                assert error.code is grpc.StatusCode.UNAVAILABLE, (rpc, error)
                assert "unavailable" in error.details.lower(), (rpc, error.details)
                refusals[rpc].append(seconds)
        slowest = max(max(times) for times in refusals.values())
        assert slowest < QUICK, f"an UNAVAILABLE answer took {slowest:.3f} s (client deadline {CLIENT_DEADLINE} s)"

        # The carrier's per-call check fails open inside its deadline (first "unavailable",
        # then, once the breaker has opened, "circuit_open" without asking).
        decisions = [carrier_client.check(next(fresh)) for _ in range(20)]
        assert all(d.failed_open and d.action == "unknown" for d in decisions)
        assert {d.reason for d in decisions} <= {"unavailable", "circuit_open"}
        assert "unavailable" in {d.reason for d in decisions}
        assert max(d.latency for d in decisions) < CARRIER_DEADLINE
        assert _health(probe) == NOT_SERVING

        restarted_at = time.monotonic()
        single_node.start_node(1)
        node_back = time.monotonic() - restarted_at
        to_serving = _wait_for(lambda: _health(probe) == SERVING, timeout=60)
        # The same process, no restart: reads, writes and flags work again, the old data is there.
        to_first_lookup = _wait_for(lambda: _succeeds(lambda: client.lookup(LABELLED)), timeout=30)
        after = client.lookup(LABELLED)
        assert after.label_count == 1, (after, exchange.store.get_verdict(LABELLED), exchange.store.evidence(LABELLED))
        assert [r.status for r in client.publish([sign_label(carrier, next(fresh), "fraud", 0.9)])] == [1]
        assert app_client.submit_flags([FlagToSend(next(fresh), "marketing", "reporter-2")]).accepted == 1
        to_carrier_answer = _wait_for(lambda: carrier_client.check(next(fresh)).source == "exchange", timeout=30)

    result = {
        "outage_seconds": round(restarted_at - killed_at, 1),
        "health_not_serving_after_s": round(to_not_serving, 2),
        "unavailable_answer_s": {rpc: {"max": round(max(t), 4), "median": round(sorted(t)[len(t) // 2], 4)}
                                 for rpc, t in refusals.items()},
        "client_deadline_s": CLIENT_DEADLINE,
        "carrier_fail_open_max_s": round(max(d.latency for d in decisions), 4),
        "carrier_fail_open_reasons": sorted({d.reason for d in decisions}),
        "node_restart_s": round(node_back, 1),
        "health_serving_after_node_back_s": round(to_serving, 2),
        "first_lookup_after_serving_s": round(to_first_lookup, 2),
        "carrier_answered_again_after_s": round(to_carrier_answer, 2),
    }
    print("store unreachable:", json.dumps(result, indent=2))
    out = REPO / "var" / "faults"
    out.mkdir(parents=True, exist_ok=True)
    (out / "store_unreachable.json").write_text(json.dumps(result, indent=2))


def _succeeds(call: Callable[[], Any]) -> bool:
    try:
        call()
        return True
    except ExchangeError:
        return False
