"""CarrierClient and AsyncCarrierClient against real servers on 127.0.0.1:
answers, cache, deadlines, fail-open, circuit breaker, batch form, stats."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import datetime, timezone
from typing import Callable, Iterator

import grpc
import pytest

from numrep.core.errors import StoreUnavailable
from numrep.core.model import Role
from numrep.signing.keys import generate_identity
from numrep.signing.consent import sign_refusal
from numrep.v1 import consent_pb2, lookup_pb2, publish_pb2
from numrep_client import AsyncCarrierClient, CarrierClient, CircuitBreaker, InvalidNumberError, NullBreaker

from sdk_testkit import CLEAN_NUMBER, SPAM_NUMBER, SPAM_NUMBER_LOCAL, FakeClock, best_of

DEADLINE = 0.050
# How long a stalled exchange takes: far beyond the deadline, so that a check that waited
# for it cannot pass for one a busy machine woke late. The ``stall`` fixture ends it with the
# test, so it costs no time.
STALL = 1.0
# Tests of behaviour other than timing use a generous deadline: the server shares
# this process (and may sit on a Cassandra node), so a 50 ms budget would make them
# depend on the machine's load. Timing tests pass DEADLINE explicitly.
RELAXED = 2.0


@pytest.fixture
def carrier(server, federation):
    clients = []

    def make(target: str | None = None, **options):
        options.setdefault("deadline", RELAXED)
        client = CarrierClient(target or server.address, federation.carrier, **options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def stall(exchange_faults) -> Iterator[Callable[[str], None]]:
    """``stall(name)``: the exchange holds each call of ``name`` (as ``exchange_faults``
    names them) for STALL seconds, or until the test is over."""
    over = threading.Event()
    yield lambda name: exchange_faults.wrap(name, before=lambda n: over.wait(STALL))
    over.set()


def run_async(coro):
    return asyncio.run(coro)


# --- answers and cache ----------------------------------------------------------------------
def test_check_answers_from_the_exchange_then_from_the_cache(carrier, federation, publish):
    publish(federation.carrier, SPAM_NUMBER, "fraud.impersonation", 1.0)
    publish(federation.regulator, SPAM_NUMBER, "fraud.impersonation", 1.0)
    client = carrier()

    first = client.check(SPAM_NUMBER_LOCAL)
    assert first.source == "exchange"
    assert first.number == SPAM_NUMBER
    assert first.action == "block"
    assert first.category == "fraud.impersonation"
    assert first.spam_probability > 0.9
    assert first.verdict is not None and first.verdict.label_count == 2
    assert first.reason == "" and not first.failed_open

    second = client.check(SPAM_NUMBER)  # another spelling of the same number shares the entry
    assert second.source == "cache"
    assert second.action == "block"
    assert second.verdict.version == first.verdict.version

    stats = client.stats()
    assert (stats.checks, stats.hits, stats.misses, stats.rpcs) == (2, 1, 1, 1)
    assert stats.fail_open_total == 0 and stats.errors == 0
    assert stats.latency.count == 2
    assert stats.latency_by_source["cache"].count == 1
    assert stats.latency_by_source["exchange"].count == 1
    assert stats.token_mint.count == 1  # one signed bearer token per RPC


def test_a_check_with_a_callee_asks_the_exchange_each_time_and_is_not_cached(carrier, connect, federation, server):
    """Consent and refusals are about one call: a cached verdict on the number
    must not answer for a callee who said "do not call me again"."""
    callee = "+12025550188"
    client = carrier()
    assert client.check(CLEAN_NUMBER).action == "unknown"  # the number's verdict, cached
    [refused] = connect(federation.app).record_refusal([sign_refusal(federation.app, callee, CLEAN_NUMBER)])
    assert refused.status == publish_pb2.ITEM_STATUS_ACCEPTED, refused.message
    marketing = lookup_pb2.CallContext(callee=callee, call_category="marketing.loans")

    for attempt in range(2):
        decision = client.check(CLEAN_NUMBER, marketing)
        assert (decision.source, decision.action) == ("exchange", "block"), attempt
        assert decision.verdict.consent.state == consent_pb2.CONSENT_STATE_REFUSED

    assert client.check(CLEAN_NUMBER).source == "cache", "the number's own verdict stays cached"
    stats = client.stats()
    assert (stats.hits, stats.misses, stats.rpcs) == (1, 1, 3)

    async def the_async_client() -> list[tuple[str, str]]:
        async with AsyncCarrierClient(server.address, federation.carrier, deadline=RELAXED) as async_client:
            plain = await async_client.check(CLEAN_NUMBER)
            per_call = await async_client.check(CLEAN_NUMBER, marketing)
            return [(plain.source, plain.action), (per_call.source, per_call.action)]

    assert run_async(the_async_client()) == [("exchange", "unknown"), ("exchange", "block")]


def test_unknown_numbers_are_answered_and_cached(carrier):
    client = carrier()
    decision = client.check(CLEAN_NUMBER)
    assert (decision.source, decision.action, decision.category) == ("exchange", "unknown", "")
    assert client.check(CLEAN_NUMBER).source == "cache"


def test_context_is_accepted(carrier):
    context = lookup_pb2.CallContext(callee="+12125550100")
    context.call_time.FromDatetime(datetime.now(timezone.utc))
    assert carrier().check(CLEAN_NUMBER, context).source == "exchange"


def test_invalid_number_is_reported_not_failed_open(carrier):
    client = carrier()
    decision = client.check("not a number")
    assert decision.source == "invalid"
    assert decision.reason == "invalid_number"
    assert decision.action == "unknown"
    assert decision.invalid and not decision.failed_open
    assert "not a phone number" in decision.detail
    stats = client.stats()
    assert stats.invalid == 1 and stats.fail_open_total == 0 and stats.rpcs == 0

    strict = carrier(raise_on_invalid=True)
    with pytest.raises(InvalidNumberError) as caught:
        strict.check("+1 202 555")
    assert caught.value.number == "+1 202 555"


def test_invalid_argument_from_the_exchange_is_reported_as_invalid(carrier, status_server):
    status_server.code = grpc.StatusCode.INVALID_ARGUMENT
    status_server.details = "invalid phone number"
    client = carrier(status_server.address, breaker=CircuitBreaker(failure_threshold=1))
    decision = client.check(SPAM_NUMBER)
    assert (decision.source, decision.reason, decision.detail) == ("invalid", "invalid_number", "invalid phone number")
    assert client.breaker.state == "closed"  # the exchange answered: not a health failure
    assert client.stats().errors_by_code == {"INVALID_ARGUMENT": 1}


def test_cache_honours_the_verdict_expiry(carrier, server):
    wall = FakeClock(time.time())
    client = carrier(clock=wall)
    first = client.check(CLEAN_NUMBER)
    expires_at = first.verdict.expires_at.seconds + first.verdict.expires_at.nanos / 1e9
    assert expires_at > wall()

    wall.now = expires_at - 1
    assert client.check(CLEAN_NUMBER).source == "cache"
    wall.now = expires_at + 0.001
    again = client.check(CLEAN_NUMBER)
    assert again.source == "exchange"  # the expired entry was not used
    stats = client.stats()
    assert (stats.hits, stats.misses, stats.rpcs) == (1, 2, 2)


def test_cache_is_a_bounded_lru_and_caps_ttl(carrier):
    wall = FakeClock(time.time())
    client = carrier(cache_size=2, clock=wall, max_ttl=10)
    numbers = ["+12125550100", "+12125550101", "+12125550102"]
    for number in numbers[:2]:
        client.check(number)
    client.check(numbers[0])  # touch: numbers[1] is now least recently used
    client.check(numbers[2])  # evicts numbers[1]
    assert len(client.cache) == 2
    assert client.check(numbers[0]).source == "cache"
    assert client.check(numbers[1]).source == "exchange"
    wall.advance(10.5)  # beyond max_ttl, although the verdict's expiry is minutes away
    assert client.check(numbers[1]).source == "exchange"


def test_expired_verdicts_are_not_cached(carrier, federation, server):
    wall = FakeClock(time.time() + 3600)  # the client's clock is past every fresh expiry
    client = carrier(clock=wall)
    assert client.check(CLEAN_NUMBER).source == "exchange"
    assert client.check(CLEAN_NUMBER).source == "exchange"
    assert len(client.cache) == 0


# --- deadline, outage, overload -------------------------------------------------------------
def assert_within(runs: list[list[float]], deadline: float) -> None:
    """Every run returned long before the stalled exchange would have answered,
    and at least one run (see ``best_of``) kept every check inside the deadline."""
    assert all(max(run) < STALL for run in runs), runs
    assert max(runs[-1]) < deadline, runs


def test_deadline_is_honoured_when_the_exchange_stalls(carrier, exchange_faults, stall):
    client = carrier(deadline=DEADLINE, breaker=NullBreaker())
    assert client.wait_ready()
    # the way to the exchange is warm, so the first check below reaches it inside its deadline
    assert client.check(CLEAN_NUMBER, deadline=RELAXED).source == "exchange"
    stall("lookup")
    decisions = []

    def measure() -> list[float]:
        run = [client.check(f"+1212555{100 + len(decisions) + i:04d}") for i in range(3)]
        decisions.extend(run)
        return [d.latency for d in run]

    assert_within(best_of(measure, DEADLINE), DEADLINE)
    assert {(d.source, d.reason, d.action) for d in decisions} == {("fail_open", "timeout", "unknown")}
    assert client.stats().fail_opens == {"timeout": len(decisions)}
    assert exchange_faults.calls.get("lookup", 0) >= 1, "no check reached the stalled exchange"


def test_per_call_deadline_override(carrier, stall):
    client = carrier(deadline=RELAXED, breaker=NullBreaker())
    assert client.wait_ready()
    stall("lookup")
    decisions = []

    def measure() -> list[float]:
        decisions.append(client.check(SPAM_NUMBER, deadline=0.03))
        return [decisions[-1].latency]

    assert_within(best_of(measure, 0.03), 0.03)
    assert {d.reason for d in decisions} == {"timeout"}


def test_fail_open_when_the_exchange_is_down_stays_inside_the_deadline(carrier, dead_target):
    client = carrier(dead_target, deadline=DEADLINE, breaker=NullBreaker())
    decisions = []

    def measure() -> list[float]:
        run = [client.check(SPAM_NUMBER) for _ in range(50)]
        decisions.extend(run)
        return [d.latency for d in run]

    assert_within(best_of(measure, DEADLINE), DEADLINE)
    assert {(d.source, d.action) for d in decisions} == {("fail_open", "unknown")}
    stats = client.stats()
    # A refused connection fails at once ("unavailable"); should this test process
    # stall for a whole deadline (GC, a busy machine), the check still returns, as
    # a "timeout".
    assert set(stats.fail_opens) <= {"unavailable", "timeout"}
    assert stats.fail_opens.get("unavailable", 0) >= 0.9 * len(decisions), stats.fail_opens
    assert stats.fail_open_total == len(decisions)
    assert stats.cache_entries == 0  # fail-open answers are never cached


def test_overload_fails_open_and_counts_against_the_breaker(carrier, status_server):
    status_server.code = grpc.StatusCode.RESOURCE_EXHAUSTED
    client = carrier(status_server.address, breaker=CircuitBreaker(failure_threshold=2, window=60, cool_down=60))
    first, second, third = (client.check(SPAM_NUMBER) for _ in range(3))
    assert (first.reason, second.reason, third.reason) == ("overloaded", "overloaded", "circuit_open")
    assert status_server.calls == 2  # the open circuit did not touch the network


def test_a_rate_limited_client_pauses_as_the_exchange_asks(carrier, status_server):
    status_server.code = grpc.StatusCode.RESOURCE_EXHAUSTED
    status_server.trailers = [("retry-after-ms", "300")]
    client = carrier(status_server.address, breaker=NullBreaker())
    first = client.check(SPAM_NUMBER)
    assert (first.source, first.reason) == ("fail_open", "overloaded")
    paused = [client.check(CLEAN_NUMBER) for _ in range(5)] + client.check_many([SPAM_NUMBER, CLEAN_NUMBER])
    assert {d.reason for d in paused} == {"rate_limited"}
    assert status_server.calls == 1  # nothing was sent during the pause
    time.sleep(0.35)
    assert client.check(SPAM_NUMBER).reason == "overloaded"  # asked again once the pause was over
    assert status_server.calls == 2


def test_unauthenticated_fails_open_without_tripping_the_breaker(server, federation):
    stranger = generate_identity("nobody", Role.CARRIER)
    with CarrierClient(server.address, stranger, deadline=RELAXED, breaker=CircuitBreaker(failure_threshold=1)) as client:
        decision = client.check(SPAM_NUMBER)
        assert (decision.source, decision.reason) == ("fail_open", "unauthenticated")
        assert client.breaker.state == "closed"


# --- circuit breaker ------------------------------------------------------------------------------
def test_breaker_opens_after_failures_and_closes_when_the_exchange_is_back(server, federation, spare_server):
    monotonic = FakeClock()
    breaker = CircuitBreaker(failure_threshold=3, window=10, cool_down=5, clock=monotonic)
    client = CarrierClient(spare_server.address, federation.carrier, deadline=RELAXED, breaker=breaker, cache_size=0)
    try:
        assert client.check(SPAM_NUMBER).source == "exchange"

        spare_server.stop()  # outage
        failed = [client.check(SPAM_NUMBER) for _ in range(3)]
        assert [d.reason for d in failed] == ["unavailable"] * 3
        assert breaker.state == "open"

        rpcs_before = client.stats().rpcs
        short = [client.check(SPAM_NUMBER) for _ in range(20)]
        assert {d.reason for d in short} == {"circuit_open"}
        assert client.stats().rpcs == rpcs_before  # no token minted, no RPC sent
        assert max(d.latency for d in short) < RELAXED / 2  # answered here: no deadline waited

        spare_server.start()  # the exchange is back on the same port
        assert client.wait_ready(5.0)
        monotonic.advance(4.9)
        assert client.check(SPAM_NUMBER).reason == "circuit_open"  # still cooling down
        monotonic.advance(0.1)
        assert breaker.state == "half_open"
        trial = client.check(SPAM_NUMBER)
        assert trial.source == "exchange"
        assert breaker.state == "closed"
        assert client.check(SPAM_NUMBER).source == "exchange"
        assert breaker.snapshot().opened == 1
    finally:
        client.close()


def test_breaker_reopens_when_the_trial_fails(carrier, dead_target):
    monotonic = FakeClock()
    breaker = CircuitBreaker(failure_threshold=2, window=10, cool_down=5, clock=monotonic)
    client = carrier(dead_target, breaker=breaker)
    client.check(SPAM_NUMBER)
    client.check(SPAM_NUMBER)
    assert breaker.state == "open"
    monotonic.advance(5)
    assert client.check(SPAM_NUMBER).reason == "unavailable"  # the trial went out and failed
    assert breaker.state == "open"
    assert client.check(SPAM_NUMBER).reason == "circuit_open"
    assert breaker.snapshot().opened == 2


# --- batch form ------------------------------------------------------------------------------------
def test_check_many_uses_the_cache_and_one_batch_lookup_for_the_misses(carrier, federation, publish):
    publish(federation.regulator, SPAM_NUMBER, "fraud.impersonation", 1.0)
    client = carrier()
    assert client.check(CLEAN_NUMBER).source == "exchange"  # now cached
    numbers = [SPAM_NUMBER_LOCAL, "garbage", CLEAN_NUMBER, "+12125550100", SPAM_NUMBER]
    client.reset_stats()
    decisions = client.check_many(numbers)
    assert [d.number for d in decisions] == [SPAM_NUMBER, "garbage", CLEAN_NUMBER, "+12125550100", SPAM_NUMBER]
    assert [d.source for d in decisions] == ["exchange", "invalid", "cache", "exchange", "exchange"]
    assert decisions[0].action == "block" and decisions[0].category == "fraud.impersonation"
    assert decisions[1].reason == "invalid_number"
    assert len({d.latency for d in decisions}) == 1  # each carries the batch latency
    stats = client.stats()
    assert stats.rpcs == 1 and stats.checks == 5 and stats.batch_latency.count == 1

    again = client.check_many(numbers)
    assert [d.source for d in again] == ["cache", "invalid", "cache", "cache", "cache"]
    assert client.stats().rpcs == 1


def test_check_many_splits_into_requests_of_batch_size(carrier):
    client = carrier(batch_size=2)
    numbers = [f"+1212555{100 + i:04d}" for i in range(5)]
    decisions = client.check_many(numbers)
    assert [d.source for d in decisions] == ["exchange"] * 5
    assert client.stats().rpcs == 3


def test_check_many_fails_open_on_outage_and_stall(carrier, dead_target, stall):
    asked = [SPAM_NUMBER, "nonsense", CLEAN_NUMBER]
    down = carrier(dead_target, deadline=DEADLINE, breaker=NullBreaker())
    batches = []

    def measure_down() -> list[float]:
        batches.append(down.check_many(asked))
        return [batches[-1][0].latency]

    assert_within(best_of(measure_down, DEADLINE), DEADLINE)
    # A refused connection fails at once ("unavailable"); the first batch also connects and
    # signs inside its 50 ms, which a busy machine can stretch past the deadline ("timeout").
    for batch in batches:
        assert [d.source for d in batch] == ["fail_open", "invalid", "fail_open"], batch
        assert {batch[0].reason, batch[2].reason} <= {"unavailable", "timeout"}, batch
    given_time = down.check_many(asked, deadline=RELAXED)
    assert [(d.source, d.reason) for d in given_time] == [
        ("fail_open", "unavailable"), ("invalid", "invalid_number"), ("fail_open", "unavailable")]

    slow = carrier(deadline=DEADLINE, breaker=NullBreaker())
    assert slow.wait_ready()
    stall("batch_lookup")
    batches.clear()

    def measure_stalled() -> list[float]:
        batches.append(slow.check_many([SPAM_NUMBER, CLEAN_NUMBER]))
        return [batches[-1][0].latency]

    assert_within(best_of(measure_stalled, DEADLINE), DEADLINE)
    assert {(d.source, d.reason) for batch in batches for d in batch} == {("fail_open", "timeout")}


def test_check_many_reports_per_entry_errors_and_server_errors(carrier, exchange_faults):
    def store_down(call: int) -> None:
        raise StoreUnavailable("store down")

    exchange_faults.wrap("batch_lookup", before=store_down)
    client = carrier(breaker=CircuitBreaker(failure_threshold=1, cool_down=60))
    decisions = client.check_many([SPAM_NUMBER, CLEAN_NUMBER])
    assert {d.reason for d in decisions} == {"unavailable"}
    assert client.breaker.state == "open"
    assert {d.reason for d in client.check_many(["+12125550177"])} == {"circuit_open"}


# --- asyncio -----------------------------------------------------------------------------------------
def test_async_client_answers_caches_and_batches(server, federation, publish):
    publish(federation.regulator, SPAM_NUMBER, "fraud.impersonation", 1.0)

    async def scenario():
        async with AsyncCarrierClient(server.address, federation.carrier, deadline=RELAXED) as client:
            assert await client.wait_ready()
            first = await client.check(SPAM_NUMBER_LOCAL)
            second = await client.check(SPAM_NUMBER)
            invalid = await client.check("garbage")
            many = await client.check_many([CLEAN_NUMBER, SPAM_NUMBER, "x"])
            return first, second, invalid, many, client.stats()

    first, second, invalid, many, stats = run_async(scenario())
    assert (first.source, first.action, first.number) == ("exchange", "block", SPAM_NUMBER)
    assert second.source == "cache"
    assert (invalid.source, invalid.reason) == ("invalid", "invalid_number")
    assert [d.source for d in many] == ["exchange", "cache", "invalid"]
    assert stats.rpcs == 2 and stats.hits == 2


def test_async_client_honours_the_deadline_when_the_exchange_stalls(server, federation, stall):
    async def scenario():
        async with AsyncCarrierClient(server.address, federation.carrier, deadline=DEADLINE, breaker=NullBreaker()) as client:
            assert await client.wait_ready()
            stall("lookup")
            stall("batch_lookup")
            runs = []
            for attempt in range(3):  # best of three, as best_of() does for the blocking client
                run = [await client.check(f"+1212555{200 + 10 * attempt + i:04d}") for i in range(3)]
                runs.append(run)
                if max(d.latency for d in run) < DEADLINE:
                    break
            batch = await client.check_many(["+12125550290", "+12125550291"])
            return runs, batch, client.stats()

    runs, batch, stats = run_async(scenario())
    assert_within([[d.latency for d in run] for run in runs], DEADLINE)
    assert {(d.source, d.reason) for run in runs for d in run} == {("fail_open", "timeout")}
    assert stats.fail_opens["timeout"] == sum(map(len, runs)) + 2
    assert {(d.source, d.reason) for d in batch} == {("fail_open", "timeout")}
    assert batch[0].latency < STALL


def test_async_client_fails_open_when_down_and_opens_the_circuit(federation, dead_target):
    async def scenario():
        breaker = CircuitBreaker(failure_threshold=3, cool_down=60)
        async with AsyncCarrierClient(dead_target, federation.carrier, deadline=DEADLINE, breaker=breaker) as client:
            decisions = [await client.check(SPAM_NUMBER) for _ in range(5)]
            batch = await client.check_many([SPAM_NUMBER, CLEAN_NUMBER])
            return decisions, batch

    decisions, batch = run_async(scenario())
    assert [d.reason for d in decisions][3:] == ["circuit_open"] * 2
    assert set(d.reason for d in decisions[:3]) <= {"unavailable", "timeout"}
    assert all(d.latency < STALL for d in decisions)
    assert {d.reason for d in batch} == {"circuit_open"}


def test_async_client_concurrent_checks(server, federation):
    async def scenario():
        # a generous deadline: this is about concurrency, not speed (the server shares this process)
        async with AsyncCarrierClient(server.address, federation.carrier, deadline=RELAXED) as client:
            numbers = [f"+1212555{300 + i:04d}" for i in range(40)]
            return await asyncio.gather(*(client.check(n) for n in numbers))

    decisions = run_async(scenario())
    assert {d.source for d in decisions} == {"exchange"}


def test_blocking_client_is_safe_to_share_between_threads(carrier, federation, publish):
    from concurrent.futures import ThreadPoolExecutor

    publish(federation.regulator, SPAM_NUMBER, "fraud.impersonation", 1.0)
    client = carrier()  # about thread safety, not speed
    numbers = [SPAM_NUMBER, SPAM_NUMBER_LOCAL] + [f"+1212555{400 + i:04d}" for i in range(30)]
    with ThreadPoolExecutor(8) as pool:
        decisions = list(pool.map(client.check, numbers * 4))
    assert not any(d.failed_open for d in decisions)
    assert {d.action for d in decisions if d.number == SPAM_NUMBER} == {"block"}
    stats = client.stats()
    assert stats.checks == len(numbers) * 4 == stats.hits + stats.misses
    assert stats.latency.count == stats.checks


def test_wait_ready_reports_an_unreachable_exchange(carrier, dead_target):
    client = carrier(dead_target)
    started = time.perf_counter()
    assert client.wait_ready(timeout=0.2) is False
    assert time.perf_counter() - started < 1.0
