"""Fixtures: a real exchange (grpc.aio server + SQLite store in tmp_path) on a
background event loop, a registered federation, and clients for it."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass
from typing import Any, Callable, Coroutine, Iterator

import pytest

from numrep.config import ServerConfig
from numrep.core.model import Role
from numrep.server import RunningServer, start_server
from numrep.signing.keys import Identity, generate_identity
from numrep_client import ExchangeClient

from numrep_testkit import ROLE_PB, RawCaller, public_jwk_text


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


@pytest.fixture
def server(loop_thread: LoopThread, tmp_path) -> Iterator[RunningServer]:
    """A fresh exchange on 127.0.0.1 with an empty SQLite store in tmp_path."""
    running = loop_thread.run(start_server(ServerConfig(listen="127.0.0.1:0", data_dir=tmp_path / "exchange")))
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
