"""Fixtures: a real exchange (grpc.aio server + SQLite or Cassandra store) on a
background event loop, a registered federation, and clients for it."""

from __future__ import annotations

import asyncio
import os
import threading
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Coroutine, Iterator

import grpc
import pytest
from hypothesis import HealthCheck, settings

from numrep.config import ServerConfig
from numrep.core.model import Role
from numrep.server import RunningServer, build_exchange, start_server
from numrep.signing.keys import Identity, generate_identity
from numrep.signing.labels import sign_label
from numrep.v1 import common_pb2, publish_pb2
from numrep_client import ExchangeClient

from numrep_testkit import NUMBER, ROLE_PB, RawCaller, empty_keyspace, public_jwk_text

# Property tests assert properties, not speed: no per-example deadline, which a loaded shared
# machine (the whole suite beside a Cassandra node on 2 cores) can miss by being descheduled.
settings.register_profile("numrep", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("numrep")


class LoopThread:
    """One asyncio loop running forever on a daemon thread; servers live on it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="numrep-test-loop", daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, Any], timeout: float = 30.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        async def drain() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.loop.shutdown_default_executor()

        self.run(drain())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture(scope="session")
def loop_thread() -> Iterator[LoopThread]:
    runner = LoopThread()
    yield runner
    runner.close()


def _cassandra_target() -> tuple[list[str], int] | None:
    raw = os.environ.get("NUMREP_TEST_CASSANDRA", "").strip()
    if raw in ("", "off"):
        return None
    hosts, _, port = raw.rpartition(":")
    return [h for h in hosts.split(",") if h], int(port)


@pytest.fixture(scope="session")
def e2e_cassandra() -> Iterator[Any]:
    """One keyspace for the whole session; each test starts from truncated tables
    (a keyspace per test would cost ~1.7 s of schema changes each)."""
    target = _cassandra_target()
    if target is None:
        pytest.skip("NUMREP_TEST_CASSANDRA is not set: the Cassandra half of the end-to-end tests needs a node (make test starts one)")
    from numrep.store.cassandra import CassandraStore

    store = CassandraStore.connect(target[0], target[1], keyspace=f"numrep_e2e_{uuid.uuid4().hex[:12]}",
                                   feed_safety_lag_seconds=0)
    yield store
    store._session.execute(f"DROP KEYSPACE IF EXISTS {store.keyspace}", timeout=120)
    store.close()


def _truncate(store: Any) -> None:
    empty_keyspace(store._session, store.keyspace)


@pytest.fixture(params=[pytest.param("sqlite"), pytest.param("cassandra", marks=pytest.mark.cassandra)])
def server(request: pytest.FixtureRequest, loop_thread: LoopThread, tmp_path) -> Iterator[RunningServer]:
    """A fresh exchange on 127.0.0.1 with an empty store: SQLite in tmp_path, or the
    real Cassandra node when NUMREP_TEST_CASSANDRA names it (every end-to-end test
    runs on both)."""
    config = ServerConfig(listen="127.0.0.1:0", data_dir=tmp_path / "exchange")
    if request.param == "sqlite":
        running = loop_thread.run(start_server(config))
    else:
        store = request.getfixturevalue("e2e_cassandra")
        _truncate(store)
        running = loop_thread.run(start_server(config, build_exchange(config, store=store)))
    yield running
    loop_thread.run(running.stop(0))


@dataclass(frozen=True)
class Federation:
    regulator: Identity  # EdDSA, registered directly through the exchange
    carrier: Identity  # ES256, registered by the regulator over gRPC
    handset: Identity  # EdDSA
    app: Identity  # EdDSA

    def by_role(self, role: Role) -> Identity:
        return {
            Role.REGULATOR: self.regulator,
            Role.CARRIER: self.carrier,
            Role.HANDSET_VENDOR: self.handset,
            Role.APP_VENDOR: self.app,
        }[role]

    @property
    def members(self) -> tuple[Identity, ...]:
        return (self.regulator, self.carrier, self.handset, self.app)


Connect = Callable[..., ExchangeClient]


@pytest.fixture
def connect(server: RunningServer) -> Iterator[Connect]:
    """``connect(identity)``: an ExchangeClient for the running server, closed at teardown."""
    clients: list[ExchangeClient] = []

    def make(identity: Identity, **options: Any) -> ExchangeClient:
        client = ExchangeClient(server.address, identity, **options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def federation(server: RunningServer, connect: Connect) -> Federation:
    """Regulator, carrier, handset vendor and app vendor, all registered."""
    fed = Federation(
        regulator=generate_identity("ftc", Role.REGULATOR, "EdDSA"),
        carrier=generate_identity("carrier-north", Role.CARRIER, "ES256"),
        handset=generate_identity("handset-co", Role.HANDSET_VENDOR, "EdDSA"),
        app=generate_identity("blocker-app", Role.APP_VENDOR, "EdDSA"),
    )
    server.exchange.register_participant(fed.regulator.participant_id, Role.REGULATOR, "Regulator", [public_jwk_text(fed.regulator)])
    regulator = connect(fed.regulator)
    for member in (fed.carrier, fed.handset, fed.app):
        regulator.register_participant(member.participant_id, ROLE_PB[member.role], [public_jwk_text(member)], member.participant_id.title())
    return fed


@pytest.fixture
def raw(server: RunningServer) -> Iterator[RawCaller]:
    """Any RPC with arbitrary raw metadata, through the generated stubs."""
    caller = RawCaller(server.address)
    yield caller
    caller.close()


@pytest.fixture
def refused(server, federation, raw, connect):
    """``refused(metadata, *fragments)``: a Publish of a valid carrier label with
    exactly ``metadata`` (a bad bearer token, say) must be UNAUTHENTICATED, its details must contain every
    fragment, and the label must not be stored."""

    def check(metadata, *fragments: str) -> str:
        label = sign_label(federation.carrier, NUMBER, "fraud", jti="carried")
        head = server.store.feed_head()

        outcome = raw.call("PublishService/Publish", publish_pb2.PublishRequest(labels=[label]), metadata)

        assert outcome.code == grpc.StatusCode.UNAUTHENTICATED, (outcome.code, outcome.details)
        for fragment in fragments:
            assert fragment in outcome.details
        assert server.store.get_label("carrier-north/carried") is None
        assert server.store.changes_after(head, 1) == []
        assert connect(federation.handset).lookup(NUMBER).action == common_pb2.ACTION_UNKNOWN
        return outcome.details

    return check
