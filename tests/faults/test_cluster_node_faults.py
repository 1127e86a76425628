"""One node of a 3-node Cassandra cluster (RF=3, QUORUM) fails while carriers
publish signed labels and look callers up through a real exchange process; the
load keeps going, the node comes back and rejoins. Two ways to fail:

* killed (SIGKILL): its connections close, and the driver knows at once;
* hung (SIGSTOP, then SIGCONT): its connections stay open and it answers
  nothing, as a node stuck in a long GC pause or on a dead disk; nobody is told.

Either way nothing acknowledged is lost or stored twice, and lookups keep being
answered (QUORUM of RF=3 survives one node; reads a hung coordinator holds are
asked again of another replica: ``CassandraStore``'s speculative reads).

Whether the answers also came inside a carrier's call-setup budget (250 ms) is a
measurement, not an assertion (this machine's speed is not the exchange's): the
numbers (availability, share inside the budget, acknowledged vs found, lookup
p50/p99 before, during and after the fault) are printed and written to
var/faults/cluster_kill.json and var/faults/cluster_hang.json.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from numrep.core.errors import AlreadyExists, StoreTimeout
from numrep.core.model import Participant, PublicKeyRecord, Role
from numrep.signing.keys import Identity, generate_identity
from numrep.signing.labels import sign_label
from numrep.store.cassandra import CassandraStore
from numrep_client import CarrierClient, ExchangeClient, ExchangeError, NullBreaker

from faults_kit import REPO, CassandraNodes, ExchangeProcess, drop_keyspace, percentile
from numrep_testkit import public_jwk_text

pytestmark = [pytest.mark.faults, pytest.mark.timeout(1200)]

NODE = int(os.environ.get("NUMREP_FAULTS_KILL_NODE", "2"))          # which node is killed or hung
DEADLINE = float(os.environ.get("NUMREP_FAULTS_LOOKUP_DEADLINE", "5.0"))  # the client's deadline: answered or not, s
BUDGET = 0.25  # a carrier's per-call budget inside call set-up, s: reported
LOOKUP_RATE = 40.0       # carrier lookups per second, at a fixed arrival rate (a shared 2-core box)
LOOKUP_WORKERS = 32      # threads issuing them, so a slow answer does not delay the next call
PUBLISHERS = 2
PUBLISH_BATCH = 5
PUBLISH_PAUSE = 0.5      # seconds between a publisher's batches: about 2 x 10 labels/s, each an LWT at QUORUM/SERIAL
WARMUP, BEFORE, DURING, AFTER = 5.0, 15.0, 20.0, 15.0  # seconds: not counted, before the fault, in it, after the rejoin
AVAILABILITY_TARGET = 0.999
NUMBERS = [f"+1212555{n:04d}" for n in range(1000, 1400)]


@dataclass
class Load:
    """What the load threads saw, shared with the test."""

    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    acknowledged: list[str] = field(default_factory=list)
    abandoned: int = 0       # labels of batches given up on (never acknowledged)
    rejected: list[str] = field(default_factory=list)  # reasons of labels refused (none expected)
    publish_errors: dict[str, int] = field(default_factory=dict)
    lookups: list[tuple[float, float, bool]] = field(default_factory=list)  # (sent at, latency s, answered)
    fail_reasons: dict[str, int] = field(default_factory=dict)


def _publisher(address: str, identity: Identity, load: Load, seed: int) -> None:
    """Publish batches; retry a failed batch with the same tokens until it is acknowledged
    (the duplicates of a retry are acknowledgements too: the label is stored)."""
    rng = random.Random(seed)
    with ExchangeClient(address, identity, timeout=5) as client:
        while not load.stop.is_set():
            batch = [sign_label(identity, rng.choice(NUMBERS), "fraud.impersonation", 0.9) for _ in range(PUBLISH_BATCH)]
            give_up = time.monotonic() + 60
            while True:
                try:
                    results = client.publish(batch)
                except ExchangeError as exc:
                    with load.lock:
                        load.publish_errors[exc.code.name] = load.publish_errors.get(exc.code.name, 0) + 1
                    if time.monotonic() > give_up:
                        with load.lock:
                            load.abandoned += len(batch)
                        break
                    time.sleep(0.2)
                    continue
                with load.lock:
                    load.acknowledged += [r.id for r in results if r.status in (1, 2)]
                    load.rejected += [r.reason for r in results if r.status not in (1, 2)]
                break
            time.sleep(PUBLISH_PAUSE)


def _looker(address: str, identity: Identity, load: Load) -> None:
    """Carrier lookups at a fixed arrival rate (a pool of threads, so a slow answer
    does not hold the next call back), no cache, no breaker: every call asks."""
    rng = random.Random(7)
    interval = 1.0 / LOOKUP_RATE

    def one(scheduled: float, number: str) -> None:
        decision = carrier.check(number)
        answered = decision.source == "exchange"
        with load.lock:
            load.lookups.append((scheduled, decision.latency, answered))
            if not answered:
                load.fail_reasons[decision.reason] = load.fail_reasons.get(decision.reason, 0) + 1

    with CarrierClient(address, identity, deadline=DEADLINE, cache_size=0, breaker=NullBreaker()) as carrier, \
            ThreadPoolExecutor(LOOKUP_WORKERS, thread_name_prefix="lookups") as pool:
        carrier.wait_ready(10)
        due = time.monotonic()
        while not load.stop.is_set():
            due += interval
            pause = due - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            pool.submit(one, due, rng.choice(NUMBERS))


def _phase(load: Load, start: float, end: float) -> dict[str, Any]:
    calls = [(lat, ok) for sent, lat, ok in load.lookups if start <= sent < end]
    answered = [lat for lat, ok in calls if ok]
    in_budget = [lat for lat in answered if lat <= BUDGET]
    p50, p99 = percentile([lat for lat, _ in calls], 50), percentile([lat for lat, _ in calls], 99)
    return {
        "seconds": round(end - start, 1), "lookups": len(calls), "answered_in_deadline": len(answered),
        "availability": round(len(answered) / len(calls), 5) if calls else None,
        "answered_in_budget": len(in_budget),
        "share_in_budget": round(len(in_budget) / len(calls), 5) if calls else None,
        "p50_ms": None if p50 is None else round(p50 * 1000, 2), "p99_ms": None if p99 is None else round(p99 * 1000, 2),
    }


def _health(address: str) -> str:
    with grpc.insecure_channel(address) as channel:
        status = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5).status
    return health_pb2.HealthCheckResponse.ServingStatus.Name(status)


def _register(store: CassandraStore, participant: Participant, attempts: int = 5) -> None:
    """The operator's registration, before any fault. Right after the cluster starts, a node
    may still be slow to answer Paxos (a CAS write timeout: outcome unknown), so the
    operator asks again; a retry that finds the participant means the first one landed."""
    for attempt in range(attempts):
        try:
            store.add_participant(participant)
            return
        except AlreadyExists:
            if attempt == 0:
                raise
            return
        except StoreTimeout:
            if attempt == attempts - 1:
                raise
            time.sleep(2.0)


@dataclass(frozen=True)
class Fault:
    name: str
    description: str
    inject: Callable[[CassandraNodes], None]
    recover: Callable[[CassandraNodes], None]  # back: started again, or resumed


KILL = Fault("kill", "SIGKILL", lambda c: c.kill(NODE), lambda c: c.start_node(NODE))
HANG = Fault("hang", "SIGSTOP, SIGCONT after the fault phase", lambda c: c.pause(NODE), lambda c: c.resume(NODE))


def _whole_again(cluster: CassandraNodes) -> None:
    """Whatever the test did or failed to do: the node resumed if hung, started if down."""
    cluster.run("resume", str(NODE), check=False, timeout=60)
    if cluster.running() < cluster.nodes:
        cluster.start_node(NODE)


@pytest.mark.parametrize("fault", [KILL, HANG], ids=lambda f: f.name)
def test_a_node_killed_or_hung_under_load_loses_nothing_acknowledged_and_lookups_keep_answering(
    cluster: CassandraNodes, tmp_path: Path, fault: Fault
) -> None:
    keyspace = f"numrep_{fault.name}_{uuid.uuid4().hex[:10]}"
    url = cluster.store_url(keyspace, replication="NetworkTopologyStrategy:datacenter1=3", consistency="QUORUM")
    publishers = [generate_identity(f"carrier-pub{i}", Role.CARRIER, ("ES256", "EdDSA")[i % 2]) for i in range(PUBLISHERS)]
    looker = generate_identity("carrier-calls", Role.CARRIER, "EdDSA")
    registered = datetime.now(timezone.utc) - timedelta(minutes=1)
    # The operator creates the keyspace (RF=3) and tables, and registers the carriers. Schema
    # changes wait for all three nodes to agree: a generous timeout on a loaded machine.
    store = CassandraStore.from_url(url, request_timeout=60.0)
    for identity in (*publishers, looker):
        _register(store, Participant(identity.participant_id, Role.CARRIER, "",
                                     (PublicKeyRecord(identity.kid, public_jwk_text(identity), registered),)))
    data = tmp_path / "exchange"
    data.mkdir()
    (data / "pseudonym.key").write_text("cd" * 32)
    exchange = ExchangeProcess(data, url)
    load = Load()
    threads = [threading.Thread(target=_publisher, args=(exchange.address, p, load, i), name=f"publisher-{i}")
               for i, p in enumerate(publishers)]
    threads.append(threading.Thread(target=_looker, args=(exchange.address, looker, load), name="lookups"))
    timeline: dict[str, float] = {}
    health: dict[str, str] = {}
    loadavg: dict[str, float] = {}  # the machine's 1-minute load average (2 cores, shared)
    try:
        for thread in threads:
            thread.start()
        time.sleep(WARMUP)
        timeline["start"] = time.monotonic()
        loadavg["start"] = os.getloadavg()[0]
        time.sleep(BEFORE)
        health["before"] = _health(exchange.address)
        timeline["fault"] = time.monotonic()
        loadavg["fault"] = os.getloadavg()[0]
        fault.inject(cluster)
        time.sleep(DURING)
        health["during"] = _health(exchange.address)
        timeline["recover"] = time.monotonic()
        fault.recover(cluster)
        timeline["node_answers"] = time.monotonic()
        cluster.wait_all_up()
        timeline["rejoined"] = time.monotonic()
        time.sleep(AFTER)
        health["after"] = _health(exchange.address)
        timeline["end"] = time.monotonic()
        loadavg["end"] = os.getloadavg()[0]
    finally:
        load.stop.set()
        for thread in threads:
            thread.join(120)
        exchange.stop()
        _whole_again(cluster)  # a failed test must not leave the next one a node short

    try:
        acknowledged = set(load.acknowledged)
        missing = [lid for lid in acknowledged if store.get_label(lid) is None]
        stored_ids: list[str] = []
        unbalanced: list[str] = []
        for number in NUMBERS:
            ids = [label.id for label in store.evidence(number).labels]
            stored_ids += ids
            verdict = store.get_verdict(number)
            if ids and (verdict is None or verdict.label_count != len(ids)):
                unbalanced.append(number)
    finally:
        drop_keyspace(store._session, keyspace)
        store.close()

    phases = {
        "before": _phase(load, timeline["start"], timeline["fault"]),
        "during": _phase(load, timeline["fault"], timeline["rejoined"]),
        "after": _phase(load, timeline["rejoined"], timeline["end"]),
    }
    overall = _phase(load, timeline["start"], timeline["end"])
    result = {
        "cluster": "3 nodes, RF=3 (NetworkTopologyStrategy datacenter1=3), QUORUM reads and writes",
        "fault": fault.description,
        "failed_node": cluster.address(NODE),
        "lookup_deadline_ms": DEADLINE * 1000,
        "call_setup_budget_ms": BUDGET * 1000,
        "lookup_rate_per_s": LOOKUP_RATE,
        "timeline_s": {
            "load_before_fault": round(timeline["fault"] - timeline["start"], 1),
            "fault_until_recovery": round(timeline["recover"] - timeline["fault"], 1),
            "recovery_until_node_answers": round(timeline["node_answers"] - timeline["recover"], 1),
            "node_answers_until_all_UN": round(timeline["rejoined"] - timeline["node_answers"], 1),
            "load_after_rejoin": round(timeline["end"] - timeline["rejoined"], 1),
        },
        "labels": {
            "acknowledged": len(acknowledged), "found": len(acknowledged) - len(missing), "missing": len(missing),
            "stored": len(stored_ids), "stored_twice": len(stored_ids) - len(set(stored_ids)),
            "given_up_unacknowledged": load.abandoned,
            "verdicts_not_matching_evidence": len(unbalanced),
            "publish_errors_retried": load.publish_errors,
        },
        "lookups": {"overall": overall, **phases, "fail_open_reasons": load.fail_reasons},
        "health": health,
        "load_average_1min": loadavg,
    }
    print(f"cluster node {fault.name}:", json.dumps(result, indent=2))
    out = REPO / "var" / "faults"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"cluster_{fault.name}.json").write_text(json.dumps(result, indent=2))

    assert len(acknowledged) > 100, "the publishers made too little progress"
    assert load.rejected == [], f"labels refused: {load.rejected[:5]}"
    assert missing == [], f"{len(missing)} of {len(acknowledged)} acknowledged labels are missing"
    assert len(stored_ids) == len(set(stored_ids)), "a label is stored twice"
    assert acknowledged <= set(stored_ids)
    assert unbalanced == [], f"verdicts that do not count their labels: {unbalanced[:5]}"
    assert phases["during"]["lookups"] > 0 and phases["after"]["lookups"] > 0
    assert health["during"] == "SERVING", "the exchange answers with a node down: no load balancer should drop it"
    assert overall["availability"] >= AVAILABILITY_TARGET, (
        f"{overall['answered_in_deadline']} of {overall['lookups']} lookups answered inside {DEADLINE * 1000:.0f} ms")
