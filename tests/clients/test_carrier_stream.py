"""Per-call lookups over one ``LookupStream`` (numrep.v1): the SDK's
``LookupStreamClient`` and ``AsyncCarrierClient(stream=True)`` against real
exchanges on 127.0.0.1 (answers, per-lookup refusals, rotation, callers who
give up, outages, authentication, the lookup rate).

Faults are injected on the server side only, as in test_carrier_client.py; the
exchange itself is never replaced.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from typing import AsyncIterator, Awaitable, Callable, Iterator, Sequence, TypeVar

import grpc
import pytest

from numrep.core.model import Role
from numrep.signing.keys import Identity, generate_identity
from numrep.signing.tokens import mint_token
from numrep.v1 import common_pb2, lookup_pb2, lookup_pb2_grpc
from numrep_client import AsyncCarrierClient, CircuitBreaker, NullBreaker
from numrep_client._carrier import DEFAULT_CHANNEL_OPTIONS
from numrep_client._stream import LookupStreamClient

from sdk_testkit import CLEAN_NUMBER, SLOW_NUMBER, SPAM_NUMBER, SPAM_NUMBER_LOCAL, WRITE_RACED_THE_END, FakeClock, numbers

# Behaviour, not speed: the server shares this process (and may sit on a Cassandra node).
RELAXED = 2.0
# How long past its deadline a busy machine may wake a check that gave up in time. A check that
# waited for the exchange instead waits for an answer held until the test releases it, or for
# an exchange that is down.
GRACE = 0.5
HOLD_AT_MOST = 30.0  # seconds: a held answer the test never releases does not outlive the test
INVALID_ARGUMENT = grpc.StatusCode.INVALID_ARGUMENT.value[0]  # 3
T = TypeVar("T")
RESOURCE_EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]  # 8


def asked(number: str) -> lookup_pb2.LookupRequest:
    return lookup_pb2.LookupRequest(number=number)


def bearer(identity: Identity) -> Callable[[], Sequence[tuple[str, str]]]:
    """Stream metadata: a freshly signed bearer token for each stream opened."""
    return lambda: (("authorization", f"Bearer {mint_token(identity)}"),)


@contextlib.asynccontextmanager
async def lookup_stream(target: str, metadata: Callable[[], Sequence[tuple[str, str]]],
                        **options: object) -> AsyncIterator[tuple[LookupStreamClient, grpc.aio.Channel]]:
    """A LookupStreamClient on a channel of its own (reconnecting quickly, as the
    carrier client's does), closed afterwards."""
    channel = grpc.aio.insecure_channel(target, options=list(DEFAULT_CHANNEL_OPTIONS))
    client = LookupStreamClient(lookup_pb2_grpc.LookupServiceStub(channel), metadata, **options)  # type: ignore[arg-type]
    try:
        yield client, channel
    finally:
        await client.close()
        await channel.close()


def decision_of(decision) -> tuple[str, str, str, str]:  # type: ignore[no-untyped-def]
    return decision.number, decision.action, decision.category, decision.source


def timeless(verdict: common_pb2.Verdict) -> common_pb2.Verdict:
    """The verdict less its times: each answer carries its own cache expiry, and an
    unknown number's verdict is computed when asked."""
    copy = common_pb2.Verdict()
    copy.CopyFrom(verdict)
    copy.ClearField("expires_at")
    copy.ClearField("computed_at")
    return copy


async def eventually(condition: Callable[[], bool], seconds: float = 5.0) -> bool:
    stop = time.monotonic() + seconds
    while time.monotonic() < stop:
        if condition():
            return True
        await asyncio.sleep(0.01)
    return condition()


class HeldAnswer:
    """The exchange's answer to SLOW_NUMBER, held until the test calls ``release()``."""

    def __init__(self) -> None:
        self.asked = 0  # lookups of SLOW_NUMBER the exchange has begun to answer
        self.answered = 0  # ... and has answered
        self._released = threading.Event()

    def release(self) -> None:
        self._released.set()

    async def wait(self) -> None:
        """On the exchange's event loop, which goes on answering other lookups meanwhile."""
        stop = time.monotonic() + HOLD_AT_MOST
        while not self._released.is_set() and time.monotonic() < stop:
            await asyncio.sleep(0.005)


@pytest.fixture
def held_number(server, monkeypatch) -> Iterator[HeldAnswer]:  # type: ignore[no-untyped-def]
    """As ``slow_number``, but the exchange answers SLOW_NUMBER only once the test calls
    ``release()`` (or ends): what happens before then does not race a timer, however
    slow the machine."""
    exchange, held = server.exchange, HeldAnswer()
    answer_async = exchange.answer_async

    async def holding(raw_number: str):  # type: ignore[no-untyped-def]
        if raw_number != SLOW_NUMBER:
            return await answer_async(raw_number)
        held.asked += 1
        await held.wait()
        answer = await answer_async(raw_number)
        held.answered += 1
        return answer

    monkeypatch.setattr(exchange, "answer_async", holding)
    answer_now = getattr(exchange, "answer_now", None)
    if answer_now is not None:
        monkeypatch.setattr(exchange, "answer_now",
                            lambda raw_number: None if raw_number == SLOW_NUMBER else answer_now(raw_number))
    yield held
    held.release()


# --- the same decisions as a Lookup call ------------------------------------------------------
def test_a_streamed_check_decides_as_a_lookup_call_does_for_a_labelled_and_an_unknown_number(server, federation, publish):
    publish(federation.carrier, SPAM_NUMBER, "fraud.impersonation", 1.0)
    publish(federation.regulator, SPAM_NUMBER, "fraud.impersonation", 1.0)

    async def decide(stream: bool):  # type: ignore[no-untyped-def]
        async with AsyncCarrierClient(server.address, federation.carrier, deadline=RELAXED, stream=stream) as client:
            decisions = [await client.check(SPAM_NUMBER_LOCAL), await client.check(CLEAN_NUMBER)]
            return decisions, client._lookups.opened if client._lookups is not None else 0

    called, no_stream = asyncio.run(decide(stream=False))
    streamed, opened = asyncio.run(decide(stream=True))

    assert [decision_of(d) for d in streamed] == [decision_of(d) for d in called] == [
        (SPAM_NUMBER, "block", "fraud.impersonation", "exchange"),
        (CLEAN_NUMBER, "unknown", "", "exchange"),
    ]
    for on_stream, by_call in zip(streamed, called):
        assert on_stream.spam_probability == by_call.spam_probability
        assert timeless(on_stream.verdict) == timeless(by_call.verdict)  # the very same verdict
        assert on_stream.verdict.expires_at.seconds > 0
    assert streamed[0].verdict.label_count == 2
    assert (no_stream, opened) == (0, 1)


def test_two_hundred_concurrent_checks_share_one_stream_and_each_gets_its_own_number_answered(server, federation, publish):
    publish(federation.regulator, SPAM_NUMBER, "fraud.impersonation", 1.0)
    asked_numbers = numbers(199) + [SPAM_NUMBER]

    async def scenario():  # type: ignore[no-untyped-def]
        async with AsyncCarrierClient(server.address, federation.carrier, deadline=RELAXED, stream=True) as client:
            decisions = await asyncio.gather(*(client.check(n) for n in asked_numbers))
            return decisions, client._stream_lookups().opened, client.stats()

    decisions, opened, stats = asyncio.run(scenario())

    assert [d.number for d in decisions] == asked_numbers
    assert [d.verdict.number for d in decisions] == asked_numbers  # each answer is about its own number
    assert {d.source for d in decisions} == {"exchange"}
    assert decisions[-1].action == "block" and {d.action for d in decisions[:-1]} == {"unknown"}
    assert opened == 1
    assert stats.rpcs == 1 and stats.token_mint.count == 1  # one token, when the stream opened
    assert stats.misses == 200 and stats.fail_open_total == 0


def test_a_streamed_answer_is_cached_as_a_lookup_calls_answer_is(server, federation):
    async def scenario():  # type: ignore[no-untyped-def]
        async with AsyncCarrierClient(server.address, federation.carrier, deadline=RELAXED, stream=True) as client:
            return await client.check(CLEAN_NUMBER), await client.check(CLEAN_NUMBER), client.stats()

    first, second, stats = asyncio.run(scenario())

    assert (first.source, second.source) == ("exchange", "cache")
    assert (stats.hits, stats.misses) == (1, 1)


# --- refusals of one lookup -------------------------------------------------------------------
@pytest.mark.parametrize("bad_number", ["12", "not a number"])
def test_a_number_the_exchange_refuses_fails_only_its_own_answer(server, federation, bad_number):
    """The client SDK normalises as the exchange does (a number it accepts, the
    exchange accepts), so the refused number is sent raw on the stream."""
    good = numbers(3)

    async def scenario():  # type: ignore[no-untyped-def]
        async with lookup_stream(server.address, bearer(federation.carrier)) as (client, _):
            answers = await asyncio.gather(
                client.lookup(asked(good[0])), client.lookup(asked(bad_number)), client.lookup(asked(good[1])))
            later = await client.lookup(asked(good[2]))  # the same stream goes on
            return answers, later, client.opened

    (first, refused, third), later, opened = asyncio.run(scenario())

    assert refused.error_code == INVALID_ARGUMENT
    assert bad_number in refused.error_message and "invalid phone number" in refused.error_message
    assert not refused.HasField("verdict")
    for answer, number in ((first, good[0]), (third, good[1]), (later, good[2])):
        assert answer.error_code == 0 and answer.error_message == ""
        assert answer.verdict.number == number and answer.verdict.action == common_pb2.ACTION_UNKNOWN
    assert len({first.id, refused.id, third.id, later.id}) == 4  # each lookup its own id
    assert opened == 1


def test_an_invalid_number_is_decided_locally_without_opening_a_stream(server, federation):
    async def scenario():  # type: ignore[no-untyped-def]
        async with AsyncCarrierClient(server.address, federation.carrier, deadline=RELAXED, stream=True) as client:
            return await client.check("not a number"), client._lookups, client.stats()

    decision, lookups, stats = asyncio.run(scenario())

    assert (decision.source, decision.reason, decision.action) == ("invalid", "invalid_number", "unknown")
    assert lookups is None and stats.rpcs == 0


# --- rotation ---------------------------------------------------------------------------------
def test_after_rotate_after_new_lookups_go_to_a_new_stream_and_the_old_one_ends_cleanly(server, federation, held_number):
    clock = FakeClock()

    async def scenario():  # type: ignore[no-untyped-def]
        async with lookup_stream(server.address, bearer(federation.carrier), rotate_after=60, clock=clock) as (client, _):
            before = await asyncio.gather(*(client.lookup(asked(n)) for n in numbers(5)))
            old = client._current
            in_flight = asyncio.ensure_future(client.lookup(asked(SLOW_NUMBER)))  # still unanswered at the rotation
            assert await eventually(lambda: held_number.asked == 1)
            clock.advance(59.9)
            same = await client.lookup(asked(numbers(1, start=1100)[0]))
            assert client.opened == 1 and client._current is old
            clock.advance(0.1)
            after = await asyncio.gather(*(client.lookup(asked(n)) for n in numbers(5, start=1200)))
            new = client._current
            assert not in_flight.done() and old.retiring  # rotated while the slow answer was still due
            held_number.release()
            slow = await in_flight
            old_status = await asyncio.wait_for(old.call.code(), 5)
            assert await eventually(lambda: old.ended)
            assert not new.ended and client._current is new
            return before, same, after, slow, old, new, old_status, client.opened

    before, same, after, slow, old, new, old_status, opened = asyncio.run(scenario())

    assert opened == 2 and new is not old
    assert [a.error_code for a in (*before, same, *after, slow)] == [0] * 12
    assert [a.verdict.number for a in after] == numbers(5, start=1200)
    assert slow.verdict.number == SLOW_NUMBER  # answered on the old stream after the rotation
    assert old_status == grpc.StatusCode.OK  # the exchange ended it: the client had said it was done
    assert old.waiting == {}


def test_the_carrier_client_moves_to_a_new_stream_after_stream_rotate_after_seconds(server, federation):
    async def scenario():  # type: ignore[no-untyped-def]
        async with AsyncCarrierClient(server.address, federation.carrier, deadline=RELAXED, stream=True,
                                      stream_rotate_after=0.2) as client:
            before = await asyncio.gather(*(client.check(n) for n in numbers(10)))
            opened_before = client._stream_lookups().opened
            await asyncio.sleep(0.3)
            after = await asyncio.gather(*(client.check(n) for n in numbers(10, start=1100)))
            return before, after, opened_before, client._stream_lookups().opened, client.stats()

    before, after, opened_before, opened_after, stats = asyncio.run(scenario())

    assert {d.source for d in before + after} == {"exchange"}
    assert (opened_before, opened_after) == (1, 2)
    assert stats.rpcs == 2 and stats.fail_open_total == 0


# --- callers who give up ----------------------------------------------------------------------
def test_a_lookup_whose_caller_times_out_leaves_nothing_waiting_and_the_stream_goes_on(server, federation, held_number):
    async def scenario():  # type: ignore[no-untyped-def]
        async with lookup_stream(server.address, bearer(federation.carrier)) as (client, _):
            first = await client.lookup(asked(numbers(1)[0]))
            stream = client._current
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(client.lookup(asked(SLOW_NUMBER)), 0.05)
            waiting_after_giving_up = dict(stream.waiting)
            during = await client.lookup(asked(numbers(1, start=1100)[0]))  # answered while the slow one is due
            held_number.release()
            assert await eventually(lambda: held_number.answered == 1)  # its answer came, and was dropped
            await asyncio.sleep(0.05)
            later = await client.lookup(asked(numbers(1, start=1200)[0]))
            return first, waiting_after_giving_up, during, later, stream, client

    first, waiting, during, later, stream, client = asyncio.run(scenario())

    assert waiting == {}
    assert stream.waiting == {}
    assert [a.verdict.number for a in (first, during, later)] == [
        numbers(1)[0], numbers(1, start=1100)[0], numbers(1, start=1200)[0]]
    assert client.opened == 1 and client._current is None  # closed at the end, not before


def test_a_cancelled_lookup_leaves_nothing_waiting_and_the_stream_goes_on(server, federation, held_number):
    async def scenario():  # type: ignore[no-untyped-def]
        async with lookup_stream(server.address, bearer(federation.carrier)) as (client, _):
            await client.lookup(asked(numbers(1)[0]))
            stream = client._current
            task = asyncio.ensure_future(client.lookup(asked(SLOW_NUMBER)))
            assert await eventually(lambda: held_number.asked == 1)
            waiting_before = len(stream.waiting)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            waiting_after = dict(stream.waiting)
            held_number.release()
            assert await eventually(lambda: held_number.answered == 1)
            later = await asyncio.gather(*(client.lookup(asked(n)) for n in numbers(3, start=1100)))
            return waiting_before, waiting_after, later, stream, client.opened

    waiting_before, waiting_after, later, stream, opened = asyncio.run(scenario())

    assert (waiting_before, waiting_after) == (1, {})
    assert [a.verdict.number for a in later] == numbers(3, start=1100)
    assert stream.waiting == {} and opened == 1


def test_a_streamed_check_past_its_deadline_fails_open_as_a_timeout_and_keeps_the_stream(server, federation, held_number):
    deadline = 0.2

    async def scenario():  # type: ignore[no-untyped-def]
        async with AsyncCarrierClient(server.address, federation.carrier, deadline=deadline, stream=True,
                                      breaker=NullBreaker()) as client:
            first = await client.check(numbers(1)[0], deadline=RELAXED)
            late = await client.check(SLOW_NUMBER)
            stream = client._stream_lookups()._current
            # the check cancelled its lookup: gone from the stream once the cancellation has run (the answer is held)
            emptied = await eventually(lambda: not stream.waiting)
            waiting = dict(stream.waiting)
            after = await client.check(numbers(1, start=1100)[0], deadline=RELAXED)
            return first, late, emptied, waiting, after, client._stream_lookups().opened

    first, late, emptied, waiting, after, opened = asyncio.run(scenario())

    assert (late.source, late.reason, late.action) == ("fail_open", "timeout", "unknown"), (late, first)
    assert late.latency < deadline + GRACE
    assert emptied and waiting == {}
    assert (first.source, after.source) == ("exchange", "exchange")
    assert opened == 1


# --- outages: fail open -----------------------------------------------------------------------
def test_a_streamed_check_fails_open_within_its_deadline_when_the_exchange_is_stopped(server, federation, spare_server):
    deadline = 0.5

    async def scenario():  # type: ignore[no-untyped-def]
        async with AsyncCarrierClient(spare_server.address, federation.carrier, deadline=deadline, stream=True,
                                      breaker=NullBreaker()) as client:
            up = await client.check(numbers(1)[0], deadline=RELAXED)
            await asyncio.to_thread(spare_server.stop)
            down = [await client.check(n) for n in numbers(3, start=1100)]
            return up, down, client.stats()

    up, down, stats = asyncio.run(scenario())

    assert up.source == "exchange"
    assert {(d.source, d.action) for d in down} == {("fail_open", "unknown")}, [(d.reason, d.detail) for d in down]
    assert all(d.reason in {"unavailable", "timeout"} or (d.reason, d.detail) == WRITE_RACED_THE_END for d in down), \
        [(d.reason, d.detail) for d in down]
    assert all(d.latency < deadline + GRACE for d in down), [d.latency for d in down]
    assert stats.cache_entries == 1  # fail-open answers are never cached


def test_a_streamed_check_against_a_closed_port_fails_open_as_unavailable(federation, dead_target):
    deadline = 0.5

    async def scenario():  # type: ignore[no-untyped-def]
        async with AsyncCarrierClient(dead_target, federation.carrier, deadline=deadline, stream=True,
                                      breaker=NullBreaker()) as client:
            return [await client.check(n) for n in numbers(3)]

    decisions = asyncio.run(scenario())

    assert {(d.source, d.action, d.reason) for d in decisions} == {("fail_open", "unknown", "unavailable")}
    assert all(d.latency < deadline for d in decisions), [d.latency for d in decisions]


def test_when_the_stream_fails_waiting_lookups_get_the_failure_and_a_later_lookup_opens_a_new_stream(
        server, federation, spare_server, held_number):
    async def scenario():  # type: ignore[no-untyped-def]
        async with lookup_stream(spare_server.address, bearer(federation.carrier)) as (client, channel):
            up = await client.lookup(asked(numbers(1)[0]))
            waiting = asyncio.ensure_future(client.lookup(asked(SLOW_NUMBER)))
            assert await eventually(lambda: held_number.asked == 1)
            await asyncio.to_thread(spare_server.stop)
            with pytest.raises(grpc.aio.AioRpcError) as failed_in_flight:
                await waiting
            assert await eventually(lambda: channel.get_state() != grpc.ChannelConnectivity.READY)
            with pytest.raises(grpc.aio.AioRpcError) as failed_down:
                await client.lookup(asked(numbers(1, start=1100)[0]))
            opened_while_down = client.opened
            await asyncio.to_thread(spare_server.start)  # back on the same port
            await asyncio.wait_for(channel.channel_ready(), 5)
            back = await client.lookup(asked(numbers(1, start=1200)[0]))
            return up, failed_in_flight.value, failed_down.value, opened_while_down, back, client.opened

    up, in_flight, down, opened_while_down, back, opened = asyncio.run(scenario())

    assert up.verdict.number == numbers(1)[0]
    assert in_flight.code() == grpc.StatusCode.UNAVAILABLE, (in_flight.code(), in_flight.details())
    assert down.code() == grpc.StatusCode.UNAVAILABLE, (down.code(), down.details())
    assert opened_while_down == 2  # the lookup made while the exchange was down tried a new stream
    assert back.error_code == 0 and back.verdict.number == numbers(1, start=1200)[0]
    assert opened == 3


# --- authentication ---------------------------------------------------------------------------
# A stream the exchange refuses when it opens reaches the client as UNAUTHENTICATED: the
# client writes nothing before the exchange admits the stream, since a write racing the
# refusal can make grpcio report INTERNAL "Internal error from Core" (grpc/grpc#36066).


def test_a_stream_opened_without_a_token_is_refused_and_each_lookup_on_it_raises(server, federation):
    async def scenario():  # type: ignore[no-untyped-def]
        async with lookup_stream(server.address, lambda: ()) as (client, channel):
            await asyncio.wait_for(channel.channel_ready(), 5)
            refusals = []
            for number in numbers(20):  # each on a new stream: the refused one is gone
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await asyncio.wait_for(client.lookup(asked(number)), 5)
                refusals.append(refused.value)
                assert client._current is None and not client._streams
            return refusals, client.opened

    refusals, opened = asyncio.run(scenario())

    assert {r.code() for r in refusals} == {grpc.StatusCode.UNAUTHENTICATED}, {(r.code(), r.details()) for r in refusals}
    assert all(r.details().startswith("missing bearer token") for r in refusals), refusals[0].details()
    assert opened == 20


def test_every_stream_refused_at_opening_raises_unauthenticated(server, federation):
    async def scenario():  # type: ignore[no-untyped-def]
        async with lookup_stream(server.address, lambda: ()) as (client, channel):
            await asyncio.wait_for(channel.channel_ready(), 5)
            codes = []
            for number in numbers(100):
                try:
                    await asyncio.wait_for(client.lookup(asked(number)), 5)
                except grpc.aio.AioRpcError as refused:
                    codes.append((refused.code(), refused.details()))
            return codes

    codes = asyncio.run(scenario())

    assert len(codes) == 100
    assert {code for code, _ in codes} == {grpc.StatusCode.UNAUTHENTICATED}, sorted({(c.name, d) for c, d in codes})


def test_streamed_checks_by_an_unregistered_carrier_fail_open_as_unauthenticated_and_never_trip_the_breaker(server, federation):
    stranger = generate_identity("nobody", Role.CARRIER)

    async def scenario():  # type: ignore[no-untyped-def]
        breaker = CircuitBreaker(failure_threshold=3, window=60, cool_down=60)
        async with AsyncCarrierClient(server.address, stranger, deadline=RELAXED, stream=True, breaker=breaker) as client:
            assert await client.wait_ready()
            decisions = [await client.check(n) for n in numbers(100)]
            return decisions, breaker.state

    decisions, breaker = asyncio.run(scenario())

    assert {(d.source, d.action) for d in decisions} == {("fail_open", "unknown")}
    assert {d.reason for d in decisions} == {"unauthenticated"}, sorted({(d.reason, d.detail) for d in decisions})
    assert breaker == "closed"


def test_a_stream_is_authenticated_once_when_it_opens_with_the_call_sessions_token(server, federation, proofs):
    async def scenario():  # type: ignore[no-untyped-def]
        async with AsyncCarrierClient(server.address, federation.carrier, deadline=RELAXED, stream=True) as client:
            assert await client.wait_ready()  # opens a call session
            decisions = await asyncio.gather(*(client.check(n) for n in numbers(20)))
            return decisions, client.stats()

    decisions, stats = asyncio.run(scenario())

    assert {d.source for d in decisions} == {"exchange"}
    assert proofs == ["token", "session"]  # OpenSession, signed; then the stream's opening, with a call token
    assert stats.rpcs == 1


def test_a_stream_ends_unauthenticated_once_the_key_that_opened_it_is_revoked(server, federation, connect):
    """The exchange checks the opening key again at most once a second, as lookups arrive."""
    async def scenario():  # type: ignore[no-untyped-def]
        async with lookup_stream(server.address, bearer(federation.carrier)) as (client, _):
            before = await client.lookup(asked(numbers(1)[0]))
            await asyncio.to_thread(connect(federation.carrier).revoke_key, "carrier-north", federation.carrier.kid)
            await asyncio.sleep(1.05)
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await asyncio.wait_for(client.lookup(asked(numbers(1, start=1100)[0])), 5)
            return before, refused.value, client._current, client.opened

    before, refused, current, opened = asyncio.run(scenario())

    assert before.error_code == 0
    assert refused.code() == grpc.StatusCode.UNAUTHENTICATED, (refused.code(), refused.details())
    assert "revoked" in refused.details() and federation.carrier.kid in refused.details()
    assert current is None and opened == 1  # the stream ended; a new one would open with the next lookup


# --- the lookup rate --------------------------------------------------------------------------
def test_each_lookup_on_a_stream_counts_against_the_lookup_rate(rated):
    running, carrier = rated
    asked_numbers = numbers(10)

    async def scenario():  # type: ignore[no-untyped-def]
        async with lookup_stream(running.address, bearer(carrier)) as (client, _):
            answers = await asyncio.gather(*(client.lookup(asked(n)) for n in asked_numbers))
            return answers, client.opened, client._current

    answers, opened, stream = asyncio.run(scenario())

    answered = [a for a in answers if a.error_code == 0]
    refused = [a for a in answers if a.error_code != 0]
    assert [a.verdict.number for a in answered] == asked_numbers[:4]  # the burst of 5, less the stream's opening
    assert len(refused) == 6
    assert {a.error_code for a in refused} == {RESOURCE_EXHAUSTED}
    for answer in refused:
        assert "over its lookup rate of 0.2/s" in answer.error_message and carrier.participant_id in answer.error_message
        assert not answer.HasField("verdict")
    assert opened == 1  # refusals of single lookups do not end the stream


def test_the_carrier_client_decides_rate_refused_stream_lookups_as_overloaded_fail_opens(rated):
    running, carrier = rated

    async def scenario():  # type: ignore[no-untyped-def]
        async with AsyncCarrierClient(running.address, carrier, deadline=RELAXED, stream=True,
                                      breaker=NullBreaker()) as client:
            decisions = await asyncio.gather(*(client.check(n) for n in numbers(10)))
            return decisions, client._stream_lookups().opened, client.stats()

    decisions, opened, stats = asyncio.run(scenario())

    assert [d.source for d in decisions] == ["exchange"] * 4 + ["fail_open"] * 6
    assert {(d.reason, d.action) for d in decisions[4:]} == {("overloaded", "unknown")}
    assert all("over its lookup rate" in d.detail for d in decisions[4:])
    assert stats.fail_opens == {"overloaded": 6}
    assert stats.errors_by_code == {"RESOURCE_EXHAUSTED": 6}
    assert opened == 1


# --- many lookups at once ---------------------------------------------------------------------
def test_more_lookups_at_once_than_one_request_may_carry_are_all_answered(server, federation):
    asked_numbers = numbers(1001)

    async def scenario():  # type: ignore[no-untyped-def]
        async with AsyncCarrierClient(server.address, federation.carrier, deadline=RELAXED + 3, stream=True) as client:
            return await asyncio.gather(*(client.check(n) for n in asked_numbers))

    decisions = asyncio.run(scenario())

    assert [(d.number, d.source) for d in decisions] == [(n, "exchange") for n in asked_numbers], decisions[0]


def test_a_rate_refused_streamed_check_makes_the_client_pause_as_a_refused_lookup_call_does(rated):
    running, carrier = rated

    async def scenario():  # type: ignore[no-untyped-def]
        async with AsyncCarrierClient(running.address, carrier, deadline=RELAXED, stream=True,
                                      breaker=NullBreaker()) as client:
            return [(await client.check(n)).reason for n in numbers(7)]

    reasons = asyncio.run(scenario())

    assert reasons == [""] * 4 + ["overloaded", "rate_limited", "rate_limited"]


# --- the credential's end, and answers the client cannot read -----------------------------------
def test_a_stream_is_replaced_before_the_credential_that_opened_it_ends(server, federation):
    clock = FakeClock()

    async def scenario():  # type: ignore[no-untyped-def]
        ends = time.time() + 65.0  # as a call session ending in 65 s would say
        async with lookup_stream(server.address, bearer(federation.carrier), rotate_after=600, clock=clock,
                                 valid_until=lambda metadata: ends) as (client, _):
            await client.lookup(asked(numbers(1)[0]))
            clock.advance(59.0)  # more than 5 s before the end: the same stream
            await client.lookup(asked(numbers(1, start=1100)[0]))
            kept = client.opened
            clock.advance(1.5)  # within 5 s of the end: a new one
            await client.lookup(asked(numbers(1, start=1200)[0]))
            return kept, client.opened

    assert asyncio.run(scenario()) == (1, 2)


@pytest.fixture
def stream_server() -> Iterator[Callable[[Callable[..., AsyncIterator[bytes]]], str]]:
    """``stream_server(handler)``: the address of a server on 127.0.0.1 whose
    LookupStream is ``handler`` (decoded requests in, encoded responses out), run on
    an event loop of its own in a thread: a far side of the test's own making."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    servers: list[grpc.aio.Server] = []

    async def serve(handler: Callable[..., AsyncIterator[bytes]]) -> str:
        server = grpc.aio.server()
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("numrep.v1.LookupService", {
            "LookupStream": grpc.stream_stream_rpc_method_handler(
                handler, request_deserializer=lookup_pb2.LookupStreamRequest.FromString)}),))
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        servers.append(server)
        return f"127.0.0.1:{port}"

    yield lambda handler: asyncio.run_coroutine_threadsafe(serve(handler), loop).result(5)
    for server in servers:
        asyncio.run_coroutine_threadsafe(server.stop(0), loop).result(5)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    loop.close()


@pytest.fixture
def misbehaving(stream_server) -> Callable[[str], str]:  # type: ignore[no-untyped-def]
    """``misbehaving(kind)``: the address of a server whose LookupStream admits the
    stream and then either answers every request with bytes that are no
    LookupStreamResponse (``"garbage"``) or ends the stream INVALID_ARGUMENT
    (``"refuses"``): faults of the far side, which the exchange never commits."""

    def start(kind: str) -> str:
        async def handler(requests, context):  # type: ignore[no-untyped-def]
            await context.send_initial_metadata(())
            async for _ in requests:
                if kind == "refuses":
                    await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "1001 lookups in one request; the maximum is 1000")
                yield b"\xff\xff\xff"

        return stream_server(handler)

    return start


def test_an_answer_the_client_cannot_read_fails_its_stream_at_once_and_the_next_lookup_opens_another(federation, misbehaving):
    address = misbehaving("garbage")

    async def scenario():  # type: ignore[no-untyped-def]
        async with lookup_stream(address, bearer(federation.carrier)) as (client, _):
            failures = []
            for number in numbers(2):
                with pytest.raises(grpc.aio.AioRpcError) as failed:
                    await asyncio.wait_for(client.lookup(asked(number)), 2)
                failures.append(failed.value)
            return failures, client.opened, client._current

    failures, opened, current = asyncio.run(scenario())

    assert [f.code() for f in failures] == [grpc.StatusCode.INTERNAL] * 2, [(f.code(), f.details()) for f in failures]
    assert opened == 2 and current is None


def test_a_stream_the_exchange_ends_invalid_argument_fails_its_checks_open_as_a_bad_request(federation, misbehaving):
    address = misbehaving("refuses")

    async def scenario():  # type: ignore[no-untyped-def]
        async with AsyncCarrierClient(address, federation.carrier, deadline=RELAXED, stream=True, sessions=False,
                                      raise_on_invalid=True, breaker=NullBreaker()) as client:
            return await client.check(numbers(1)[0]), client.stats()

    decision, stats = asyncio.run(scenario())

    assert (decision.source, decision.action, decision.reason) == ("fail_open", "unknown", "bad_request"), decision
    assert stats.checks == 1


# --- writes at most once per write interval ---------------------------------------------------
@pytest.fixture
def recording(stream_server) -> tuple[str, list[int]]:  # type: ignore[no-untyped-def]
    """A LookupStream server that answers every lookup ALLOW for its number and
    records how many lookups each request it read carried: (address, counts)."""
    counts: list[int] = []

    async def handler(requests, context):  # type: ignore[no-untyped-def]
        await context.send_initial_metadata(())
        async for request in requests:
            counts.append(len(request.lookups))
            expires = common_pb2.Verdict().expires_at
            expires.FromSeconds(int(time.time()) + 60)
            yield lookup_pb2.LookupStreamResponse(answers=[
                lookup_pb2.StreamAnswer(id=lookup.id, verdict=common_pb2.Verdict(
                    number=lookup.request.number, action=common_pb2.ACTION_ALLOW, expires_at=expires))
                for lookup in request.lookups]).SerializeToString()

    return stream_server(handler), counts


WRITE_INTERVAL = 1.0  # long enough that lookups asked in the next tens of milliseconds are within it on a busy machine too


async def spread(ask: Callable[[str], Awaitable[T]], asked_numbers: Sequence[str], gap: float = 0.01) -> list[T]:
    """Each number asked ``gap`` seconds after the one before, all answered."""
    asking = []
    for number in asked_numbers:
        asking.append(asyncio.ensure_future(ask(number)))
        await asyncio.sleep(gap)
    return list(await asyncio.gather(*asking))


def test_lookups_asked_within_the_write_interval_of_the_last_write_leave_together_in_the_next(federation, recording):
    address, counts = recording
    first, *rest = numbers(6)

    async def scenario():  # type: ignore[no-untyped-def]
        async with lookup_stream(address, bearer(federation.carrier), write_interval=WRITE_INTERVAL) as (client, _):
            await client.lookup(asked(first))
            answers = await spread(lambda n: client.lookup(asked(n)), rest)
            return [a.verdict.number for a in answers]

    assert asyncio.run(scenario()) == rest
    assert counts == [1, 5]


def test_a_lookup_asked_after_a_quiet_spell_leaves_at_once_on_its_own(federation, recording):
    address, counts = recording

    async def scenario():  # type: ignore[no-untyped-def]
        async with lookup_stream(address, bearer(federation.carrier), write_interval=WRITE_INTERVAL) as (client, _):
            first, later = numbers(2)
            await client.lookup(asked(first))
            await asyncio.sleep(WRITE_INTERVAL + 0.1)
            asked_at = time.monotonic()
            await client.lookup(asked(later))
            return time.monotonic() - asked_at

    took = asyncio.run(scenario())

    assert counts == [1, 1]
    assert took < WRITE_INTERVAL / 2  # not held back for the next write: the last one was long ago


def test_a_lookup_given_up_while_it_waits_for_the_next_write_is_never_sent(federation, recording):
    address, counts = recording
    first, given_up, kept = numbers(3)

    async def scenario():  # type: ignore[no-untyped-def]
        async with lookup_stream(address, bearer(federation.carrier), write_interval=WRITE_INTERVAL) as (client, _):
            await client.lookup(asked(first))
            waiting = asyncio.ensure_future(client.lookup(asked(kept)))
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(client.lookup(asked(given_up)), 0.01)
            return (await waiting).verdict.number

    assert asyncio.run(scenario()) == kept
    assert counts == [1, 1]


def test_the_carrier_client_spaces_its_stream_writes_by_stream_write_interval(federation, recording):
    address, counts = recording
    first, *rest = numbers(4)

    async def scenario():  # type: ignore[no-untyped-def]
        async with AsyncCarrierClient(address, federation.carrier, deadline=RELAXED, stream=True, sessions=False,
                                      stream_write_interval=WRITE_INTERVAL) as client:
            await client.check(first)
            return [d.source for d in await spread(client.check, rest)]

    assert asyncio.run(scenario()) == ["exchange"] * 3
    assert counts == [1, 3]


def test_a_streams_credential_end_is_read_from_the_token_that_opened_it(federation):
    from datetime import datetime, timedelta, timezone

    from numrep.signing.sessions import mint_call_token, open_session
    from numrep_client._carrier import _CarrierCore

    opened = datetime(2027, 1, 1, 12, 0, tzinfo=timezone.utc)
    session = open_session(lambda session_id: b"k" * 32, "carrier-north", "kid", opened, timedelta(minutes=30))
    newer = open_session(lambda session_id: b"k" * 32, "carrier-north", "kid", opened, timedelta(minutes=90))

    def opening(with_session):  # type: ignore[no-untyped-def]
        return (("authorization", f"Bearer {mint_call_token(with_session)}"),)

    assert _CarrierCore.session_until(opening(session)) == (opened + timedelta(minutes=30)).timestamp()
    assert _CarrierCore.session_until(opening(newer)) == (opened + timedelta(minutes=90)).timestamp()  # each token's own
    assert _CarrierCore.session_until(bearer(federation.carrier)()) is None  # a signed token: no session to end
    assert _CarrierCore.session_until(()) is None  # certificate identity: no token


@pytest.mark.parametrize("interval", [-0.001, float("inf"), float("nan")])
def test_a_write_interval_that_is_negative_or_not_finite_is_refused_when_the_client_is_made(federation, interval):
    with pytest.raises(ValueError, match="write interval"):
        LookupStreamClient(object(), bearer(federation.carrier), write_interval=interval)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="write interval"):
        AsyncCarrierClient("127.0.0.1:1", federation.carrier, stream=True, stream_write_interval=interval)
