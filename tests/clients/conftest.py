"""Fixtures for the participant SDK tests (carrier checks, app flags, examples).

Everything runs against real gRPC servers on 127.0.0.1, built on the shared
fixtures of ``tests/conftest.py`` (``loop_thread``, ``server``, ``federation``,
``connect``). Faults are injected on the server side only:

* ``dead_target``: an address whose port is bound but not listening, so a
  connection attempt is refused at once (the exchange is down).
* ``exchange_faults``: wraps methods of the running exchange (``lookup``,
  ``submit_flags``, ...) to stall or fail, behind the real servicers and the
  real authenticating interceptor.
* ``spare_server``: a second exchange front end on a port of its own, sharing
  the fixture's exchange, that a test can stop and start again on the same
  port (an outage and a recovery).
* ``status_server``: a bare ``grpc.aio`` LookupService that answers every call
  with a chosen gRPC status (e.g. ``RESOURCE_EXHAUSTED``, which no exchange
  error maps to) and counts the calls it received.
* ``slow_number``: the exchange answers ``SLOW_NUMBER`` only after ``SLOW`` seconds.
* ``rated``: an exchange of its own with a tight carrier lookup rate (``LOOKUP_RATE``).
"""

from __future__ import annotations

import asyncio
import socket
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import grpc
import pytest

from numrep.config import ServerConfig
from numrep.core.model import Role
from numrep.server import RunningServer, start_server
from numrep.signing.keys import Identity, generate_identity
from numrep.signing.labels import sign_label
from numrep.v1 import common_pb2, lookup_pb2, lookup_pb2_grpc
from numrep_client import ExchangeClient

from numrep_testkit import public_jwk_text
from sdk_testkit import LOOKUP_RATE, SLOW, SLOW_NUMBER

@pytest.fixture
def proofs(server, monkeypatch) -> list[str]:
    """How each call the exchange authenticated proved its participant ("token", "session")."""
    seen: list[str] = []
    prove = server.exchange.prove

    def recording(token):  # type: ignore[no-untyped-def]
        proof = prove(token)
        seen.append(proof.via)
        return proof

    monkeypatch.setattr(server.exchange, "prove", recording)
    return seen


@pytest.fixture
def publish(connect: Callable[..., ExchangeClient]) -> Callable[..., None]:
    """``publish(identity, number, category="fraud.impersonation", confidence=1.0)``:
    sign and publish one label through the real Publish RPC."""

    def run(identity: Identity, number: str, category: str = "fraud.impersonation", confidence: float = 1.0) -> None:
        results = connect(identity).publish([sign_label(identity, number, category, confidence)])
        assert [r.status for r in results] == [1], results  # ITEM_STATUS_ACCEPTED

    return run


@pytest.fixture
def dead_target() -> Iterator[str]:
    """``127.0.0.1:PORT`` where PORT is bound (so nobody else takes it) but not
    listening: every connection attempt is refused."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    yield f"127.0.0.1:{sock.getsockname()[1]}"
    sock.close()


@dataclass
class ExchangeFaults:
    """Replace methods of the running exchange for the length of one test."""

    exchange: Any
    monkeypatch: pytest.MonkeyPatch
    calls: dict[str, int] = field(default_factory=dict)
    originals: dict[str, Any] = field(default_factory=dict)

    def wrap(self, name: str, before: Callable[[int], None] | None = None, after: Callable[[int], None] | None = None) -> None:
        """Around ``exchange.<name>``: ``before(n)`` runs before the n-th call
        (1-based; it may raise a NumrepError or sleep), ``after(n)`` after it
        completed (the work is done and stored; raise to lose the answer)."""
        lock = threading.Lock()
        for method in ENTRY_POINTS.get(name, (name,)):
            original = self.originals.setdefault(method, getattr(self.exchange, method))
            self.monkeypatch.setattr(self.exchange, method, self._wrapped(name, original, lock, before, after))

    def _wrapped(self, name: str, original: Callable[..., Any], lock: threading.Lock,
                 before: Callable[[int], None] | None, after: Callable[[int], None] | None) -> Callable[..., Any]:
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            with lock:
                self.calls[name] = self.calls.get(name, 0) + 1
                n = self.calls[name]
            if before is not None:
                before(n)
            result = original(*args, **kwargs)
            if after is not None:
                after(n)
            return result

        return wrapped

    def stall(self, name: str, seconds: float) -> None:
        self.wrap(name, before=lambda n: time.sleep(seconds))

    def restore(self, name: str) -> None:
        """Put the real method back (the fault ends)."""
        for method in ENTRY_POINTS.get(name, (name,)):
            self.monkeypatch.setattr(self.exchange, method, self.originals.pop(method))


# A Lookup is answered by ``answer_async`` on the server's event loop when it
# needs no write, else by ``lookup``: a fault in "lookup" is a fault in both. A
# BatchLookup is answered by ``batch_answers`` (``batch_lookup`` is its in-process form).
ENTRY_POINTS = {"lookup": ("lookup", "answer_async"), "batch_lookup": ("batch_lookup", "batch_answers")}


@pytest.fixture
def exchange_faults(server: RunningServer, monkeypatch: pytest.MonkeyPatch) -> ExchangeFaults:
    return ExchangeFaults(server.exchange, monkeypatch)


class SpareServer:
    """Another front end for the fixture's exchange, on a port of its own, that
    can go down and come back on the same port."""

    def __init__(self, loop_thread: Any, exchange: Any, data_dir: Path) -> None:
        self._loop_thread = loop_thread
        self._exchange = exchange
        self._data_dir = data_dir
        self.running: RunningServer | None = None
        self.address = ""
        self.start()

    def start(self) -> None:
        listen = self.address or "127.0.0.1:0"
        self.running = self._loop_thread.run(
            start_server(ServerConfig(listen=listen, data_dir=self._data_dir), exchange=self._exchange)
        )
        self.address = self.running.address

    def stop(self) -> None:
        if self.running is not None:
            self._loop_thread.run(self.running.stop(0))
            self.running = None


@pytest.fixture
def spare_server(loop_thread: Any, server: RunningServer, tmp_path: Path) -> Iterator[SpareServer]:
    spare = SpareServer(loop_thread, server.exchange, tmp_path / "spare")
    yield spare
    spare.stop()


class _StatusLookup(lookup_pb2_grpc.LookupServiceServicer):
    def __init__(self, owner: "StatusServer") -> None:
        self._owner = owner

    async def Lookup(self, request: lookup_pb2.LookupRequest, context: grpc.aio.ServicerContext) -> common_pb2.Verdict:
        return await self._answer(context, common_pb2.Verdict(number=request.number))

    async def BatchLookup(self, request: lookup_pb2.BatchLookupRequest,
                          context: grpc.aio.ServicerContext) -> lookup_pb2.BatchLookupResponse:
        return await self._answer(context, lookup_pb2.BatchLookupResponse())

    async def _answer(self, context: grpc.aio.ServicerContext, ok: Any) -> Any:
        self._owner.calls += 1
        if self._owner.delay:
            await asyncio.sleep(self._owner.delay)
        if self._owner.code != grpc.StatusCode.OK:
            await context.abort(self._owner.code, self._owner.details, tuple(self._owner.trailers))
        return ok


class StatusServer:
    """A bare LookupService answering every call with ``code`` (after ``delay`` s,
    with ``trailers`` as trailing metadata)."""

    def __init__(self) -> None:
        self.code = grpc.StatusCode.RESOURCE_EXHAUSTED
        self.details = "too many requests"
        self.delay = 0.0
        self.trailers: list[tuple[str, str]] = []
        self.calls = 0
        self.server: grpc.aio.Server | None = None
        self.address = ""

    async def start(self) -> None:
        self.server = grpc.aio.server()
        lookup_pb2_grpc.add_LookupServiceServicer_to_server(_StatusLookup(self), self.server)
        port = self.server.add_insecure_port("127.0.0.1:0")
        await self.server.start()
        self.address = f"127.0.0.1:{port}"

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop(0)


@pytest.fixture
def status_server(loop_thread: Any) -> Iterator[StatusServer]:
    fake = StatusServer()
    loop_thread.run(fake.start())
    yield fake
    loop_thread.run(fake.stop())


class StoreEvidence:
    """What the fixture exchange's store really holds, read beside the exchange
    (a separate SQLite connection, or a CQL query on the Cassandra session)."""

    def __init__(self, server: RunningServer, data_dir: Path) -> None:
        store = server.exchange.store
        self.store = getattr(store, "inner", store)  # unwrap a tracing wrapper
        self.data_dir = data_dir

    @property
    def backend(self) -> str:
        return "cassandra" if hasattr(self.store, "keyspace") else "sqlite"

    def flag_rows(self, number: str) -> list[tuple[str, str]]:
        """(reporter, comment) of every stored flag on ``number``."""
        if self.backend == "cassandra":
            rows = self.store._session.execute(
                f"SELECT reporter, comment FROM {self.store.keyspace}.flags_by_number WHERE number = %s", (number,))
            return [(row.reporter, row.comment) for row in rows]
        db = sqlite3.connect(f"file:{self.store.path}?mode=ro", uri=True)
        try:
            return db.execute("SELECT reporter, comment FROM flags WHERE number = ?", (number,)).fetchall()
        finally:
            db.close()

    def files(self) -> list[Path]:
        """The exchange's data files on this machine (the SQLite database, its WAL
        and the data directory's other files); none for Cassandra."""
        if self.backend == "cassandra":
            return []
        return sorted(p for p in self.data_dir.rglob("*") if p.is_file())


@pytest.fixture
def store_evidence(server: RunningServer, tmp_path: Path) -> StoreEvidence:
    return StoreEvidence(server, tmp_path / "exchange")


@pytest.fixture
def slow_number(server, monkeypatch) -> list[str]:
    """The exchange answers SLOW_NUMBER only after SLOW seconds, waiting on its own
    event loop (other lookups are answered meanwhile): a fault behind the real
    servicer and interceptor, as ``exchange_faults`` injects. Returns the numbers
    whose answer the exchange has finished on that path (SLOW_NUMBER, once done).

    A lookup is answered by ``answer_async``, or in place by ``answer_now`` (where
    the exchange has it: a store whose reads never wait); SLOW_NUMBER is never
    answered in place."""
    exchange = server.exchange
    answer_async = exchange.answer_async
    finished: list[str] = []

    async def slowly(raw_number: str):  # type: ignore[no-untyped-def]
        if raw_number == SLOW_NUMBER:
            await asyncio.sleep(SLOW)
        answer = await answer_async(raw_number)
        finished.append(raw_number)
        return answer

    monkeypatch.setattr(exchange, "answer_async", slowly)
    answer_now = getattr(exchange, "answer_now", None)
    if answer_now is not None:
        monkeypatch.setattr(exchange, "answer_now",
                            lambda raw_number: None if raw_number == SLOW_NUMBER else answer_now(raw_number))
    return finished


@pytest.fixture
def rated(loop_thread, tmp_path):  # type: ignore[no-untyped-def]
    """An exchange of its own whose carriers may make 5 lookups at once (the
    stream's opening is one), then one every 5 s; and a carrier registered on it."""
    running = loop_thread.run(start_server(ServerConfig(listen="127.0.0.1:0", data_dir=tmp_path / "rated",
                                                        rate_limits=LOOKUP_RATE)))
    carrier = generate_identity("carrier-rated", Role.CARRIER, "ES256")
    running.exchange.register_participant(carrier.participant_id, Role.CARRIER, "Carrier", [public_jwk_text(carrier)])
    yield running, carrier
    loop_thread.run(running.stop(0))
