"""Time: what the exchange answers once labels and verdicts have aged. The
exchange runs on a clock the test can move forward (its real ``clock`` hook);
clients sign their bearer tokens at that clock's time."""

from __future__ import annotations

import asyncio

from datetime import datetime, timedelta, timezone
from typing import Any, Iterator

import pytest

from numrep.config import ServerConfig
from numrep.server import RunningServer, build_exchange, start_server
from numrep.signing.keys import Identity
from numrep.signing.labels import sign_label
from numrep.signing.tokens import mint_token
from numrep.v1 import common_pb2, publish_pb2
from numrep_client import ExchangeClient

from numrep_testkit import NUMBER

BUG_STALE_VERDICT = (
    "BUG: Exchange.lookup (and the Sync snapshot via Store.listed_page) serve the stored verdict as it was computed; "
    "nothing recomputes it when its labels expire or its own expires_at passes, so an expired label keeps a number "
    "listed until other evidence for that number arrives"
)


class MovableClock:
    """Real time plus an offset the test can grow."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(timezone.utc) + self.offset

    def advance(self, **delta: float) -> None:
        self.offset += timedelta(**delta)


class ClockedClient(ExchangeClient):
    """The SDK client, minting its tokens at the exchange's (moved) time."""

    def __init__(self, target: str, identity: Identity, clock: MovableClock) -> None:
        super().__init__(target, identity)
        self._clock = clock

    def _metadata(self) -> list[tuple[str, str]]:
        return [("authorization", f"Bearer {mint_token(self.identity, self.audience, now=self._clock())}")]


@pytest.fixture
def clock() -> MovableClock:
    return MovableClock()


@pytest.fixture
def server(loop_thread, tmp_path, clock) -> Iterator[RunningServer]:
    config = ServerConfig(listen="127.0.0.1:0", data_dir=tmp_path / "exchange")
    exchange = build_exchange(config)
    exchange.clock = clock
    running = loop_thread.run(start_server(config, exchange))
    yield running
    loop_thread.run(running.stop(0))
    exchange.store.close()


@pytest.fixture
def connect(server, clock) -> Iterator[Any]:
    clients: list[ExchangeClient] = []

    def make(identity: Identity) -> ExchangeClient:
        client = ClockedClient(server.address, identity, clock)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def publish_one(client: ExchangeClient, token: str) -> publish_pb2.ItemResult:
    [result] = client.publish([token])
    assert result.status == publish_pb2.ITEM_STATUS_ACCEPTED, (result.reason, result.message)
    return result


def test_tokens_signed_at_the_moved_clock_are_accepted(federation, connect, clock):
    """Control for this module: moving the clock does not lock clients out."""
    clock.advance(days=30)
    assert connect(federation.carrier).lookup(NUMBER).action == common_pb2.ACTION_UNKNOWN


def test_new_evidence_recomputes_the_verdict_without_the_expired_label(federation, connect, clock):
    carrier = connect(federation.carrier)
    short = publish_one(carrier, sign_label(federation.carrier, NUMBER, "fraud", issued_at=clock(), lifetime=timedelta(days=1)))
    clock.advance(days=2)

    fresh = publish_one(connect(federation.app), sign_label(federation.app, NUMBER, "marketing", issued_at=clock()))

    verdict = carrier.lookup(NUMBER)
    assert [c.label_id for c in verdict.contributions] == [fresh.id]
    assert short.id not in verdict.explanation
    assert verdict.label_count == 1
    assert verdict.category == "marketing"


def test_a_label_expiring_first_bounds_how_long_the_verdict_may_be_cached(federation, connect, clock):
    carrier = connect(federation.carrier)
    publish_one(carrier, sign_label(federation.carrier, NUMBER, "fraud", issued_at=clock(), lifetime=timedelta(minutes=2)))

    verdict = carrier.lookup(NUMBER)

    expires = verdict.expires_at.ToDatetime(tzinfo=timezone.utc)
    assert expires <= clock() + timedelta(minutes=2)


def test_a_label_past_its_expiry_no_longer_counts_in_lookup(federation, connect, clock):
    carrier = connect(federation.carrier)
    publish_one(carrier, sign_label(federation.carrier, NUMBER, "fraud", issued_at=clock(), lifetime=timedelta(days=1)))
    assert carrier.lookup(NUMBER).action == common_pb2.ACTION_WARN

    clock.advance(days=2)

    verdict = carrier.lookup(NUMBER)
    assert verdict.action == common_pb2.ACTION_UNKNOWN
    assert list(verdict.contributions) == []


def test_a_lookup_that_meets_an_expired_label_stores_the_recomputed_verdict(federation, connect, clock, server):
    """Most lookups are answered on the server's event loop, read-only; one that
    must recompute goes to a worker thread and writes."""
    carrier = connect(federation.carrier)
    publish_one(carrier, sign_label(federation.carrier, NUMBER, "fraud", issued_at=clock(), lifetime=timedelta(days=1)))
    exchange = server.exchange
    assert asyncio.run(exchange.answer_async(NUMBER)) is not None, "a fresh verdict needs no write"

    clock.advance(days=2)
    assert asyncio.run(exchange.answer_async(NUMBER)) is None, "an expired label means a recompute"
    assert carrier.lookup(NUMBER).action == common_pb2.ACTION_UNKNOWN

    stored = exchange.store.get_verdict(NUMBER)
    assert stored is not None and stored.label_count == 0 and not stored.is_stale(clock())
    assert asyncio.run(exchange.answer_async(NUMBER)) is not None


def test_lookup_never_answers_with_a_verdict_already_past_its_expiry(federation, connect, clock):
    carrier = connect(federation.carrier)
    publish_one(carrier, sign_label(federation.carrier, NUMBER, "fraud", issued_at=clock()))

    clock.advance(minutes=10)  # past the verdict's 5-minute cache lifetime

    verdict = carrier.lookup(NUMBER)
    assert verdict.expires_at.ToDatetime(tzinfo=timezone.utc) > clock()


def test_a_number_whose_only_label_expired_is_not_in_the_sync_snapshot(federation, connect, clock):
    publish_one(connect(federation.carrier), sign_label(federation.carrier, NUMBER, "fraud", issued_at=clock(), lifetime=timedelta(days=1)))

    clock.advance(days=2)

    chunks = list(connect(federation.handset).sync())
    assert [e.number for c in chunks if c.snapshot for e in c.entries] == []
