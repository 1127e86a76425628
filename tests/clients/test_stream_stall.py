"""A lookup stream that stops answering while its connection stays up (a stuck
path between carrier and exchange, which keepalive pings do not see) is
replaced; one whose answers come late is kept. ``LookupStreamClient`` against a
real exchange on 127.0.0.1, with the fault behind the real servicer."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import grpc
import pytest

from numrep_client._stream import DEFAULT_STALL_AFTER, STALLED_LOOKUPS

from sdk_testkit import SLOW_NUMBER, numbers
from test_carrier_stream import asked, bearer, eventually, lookup_stream

STUCK_NUMBER = "+12025550177"
GIVE_UP = 0.1  # the caller's deadline for each lookup


@pytest.fixture
def silence(server: Any, monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """While set, the exchange never answers STUCK_NUMBER (its answer waits a minute)."""
    exchange, answer_async, silent = server.exchange, server.exchange.answer_async, threading.Event()

    async def stuck(raw_number: str) -> Any:
        if raw_number == STUCK_NUMBER and silent.is_set():
            await asyncio.sleep(60)
        return await answer_async(raw_number)

    monkeypatch.setattr(exchange, "answer_async", stuck)
    answer_now = getattr(exchange, "answer_now", None)
    if answer_now is not None:
        monkeypatch.setattr(exchange, "answer_now", lambda raw_number: None if raw_number == STUCK_NUMBER else answer_now(raw_number))
    return silent


async def given_up(client: Any, number: str) -> bool:
    try:
        await asyncio.wait_for(client.lookup(asked(number)), GIVE_UP)
    except asyncio.TimeoutError:
        return True
    return False


def test_a_stream_that_stops_answering_is_replaced_and_the_next_lookup_is_answered_on_a_new_one(server, federation, silence):
    async def scenario() -> tuple[int, float, grpc.StatusCode | None, Any, int]:
        async with lookup_stream(server.address, bearer(federation.carrier)) as (client, _):
            await client.lookup(asked(numbers(1)[0]))
            first = client._current
            silence.set()
            started, unanswered = time.monotonic(), 0
            while not first.ended and time.monotonic() < started + 30:
                unanswered += await given_up(client, STUCK_NUMBER)
            stalled_for = time.monotonic() - started
            silence.clear()
            answer = await client.lookup(asked(STUCK_NUMBER))
            return unanswered, stalled_for, await first.call.code() if first.call.done() else None, answer, client.opened

    unanswered, stalled_for, ended_with, answer, opened = asyncio.run(scenario())

    assert unanswered >= STALLED_LOOKUPS
    assert stalled_for >= DEFAULT_STALL_AFTER  # silence, not one slow answer, ends a stream
    assert ended_with == grpc.StatusCode.CANCELLED  # the client ended it: the exchange is spared its waiting lookups
    assert answer.verdict.number == STUCK_NUMBER
    assert opened == 2


def test_a_stream_whose_answers_come_late_is_kept(server, federation, slow_number):
    async def scenario() -> tuple[int, bool, int]:
        async with lookup_stream(server.address, bearer(federation.carrier)) as (client, _):
            await client.lookup(asked(numbers(1)[0]))
            unanswered = 0
            for _ in range(2):  # each time as many as would end a silent stream; their answers come after SLOW
                for _ in range(STALLED_LOOKUPS):
                    unanswered += await given_up(client, SLOW_NUMBER)
                await eventually(lambda: slow_number.count(SLOW_NUMBER) >= unanswered)
            await asyncio.sleep(DEFAULT_STALL_AFTER)  # a quiet spell, then one lookup given up: no silence of many
            unanswered += await given_up(client, SLOW_NUMBER)
            answered = (await client.lookup(asked(numbers(1, start=1100)[0]))).verdict.number == numbers(1, start=1100)[0]
            return unanswered, answered, client.opened

    unanswered, answered, opened = asyncio.run(scenario())

    assert unanswered == 2 * STALLED_LOOKUPS + 1
    assert answered and opened == 1
