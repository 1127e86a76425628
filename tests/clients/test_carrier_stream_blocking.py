"""``CarrierClient(stream=True)``: the blocking carrier client sends each check
on one long-lived ``LookupStream`` (the SDK's ``LookupStreamClient`` on a thread
and event loop of its own), with the decisions, deadline, fail-open rules, cache
and rate pauses of a Lookup call per check. Real exchanges on 127.0.0.1; faults
on the server side only.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import grpc
import pytest

from numrep.core.model import Role
from numrep.signing.keys import generate_identity
from numrep_client import CarrierClient, CircuitBreaker, NullBreaker

from sdk_testkit import CLEAN_NUMBER, SLOW_NUMBER, SPAM_NUMBER, SPAM_NUMBER_LOCAL, WRITE_RACED_THE_END, numbers, stream_threads
from test_carrier_stream import GRACE, held_number  # noqa: F401 - held_number: a fixture

RELAXED = 2.0  # behaviour, not speed: the server shares this process


def wait_until(condition: Callable[[], bool], seconds: float = 5.0) -> bool:
    stop = time.monotonic() + seconds
    while not condition():
        if time.monotonic() >= stop:
            return False
        time.sleep(0.005)
    return True


def test_a_streamed_check_decides_as_a_lookup_call_does(server, federation, publish):
    publish(federation.carrier, SPAM_NUMBER, "fraud.impersonation", 1.0)
    publish(federation.regulator, SPAM_NUMBER, "fraud.impersonation", 1.0)

    def decide(stream: bool):  # type: ignore[no-untyped-def]
        with CarrierClient(server.address, federation.carrier, deadline=RELAXED, stream=stream) as client:
            decisions = [client.check(SPAM_NUMBER_LOCAL), client.check(CLEAN_NUMBER)]
            return decisions, client._lookups.client.opened if client._lookups is not None else 0

    called, no_stream = decide(stream=False)
    streamed, opened = decide(stream=True)

    as_called = [(d.number, d.action, d.category, d.source, d.spam_probability) for d in called]
    assert [(d.number, d.action, d.category, d.source, d.spam_probability) for d in streamed] == as_called
    assert as_called[0][:4] == (SPAM_NUMBER, "block", "fraud.impersonation", "exchange")
    assert streamed[0].verdict.label_count == 2
    assert (no_stream, opened) == (0, 1)


def test_checks_from_many_threads_share_one_stream_each_answered_about_its_own_number(server, federation, publish):
    publish(federation.regulator, SPAM_NUMBER, "fraud.impersonation", 1.0)
    asked = numbers(199) + [SPAM_NUMBER]
    with CarrierClient(server.address, federation.carrier, deadline=RELAXED, stream=True) as client:
        with ThreadPoolExecutor(16) as pool:
            decisions = list(pool.map(client.check, asked))
        opened, stats = client._stream_lookups().client.opened, client.stats()

    assert [d.verdict.number for d in decisions] == asked
    assert {d.source for d in decisions} == {"exchange"}
    assert decisions[-1].action == "block" and {d.action for d in decisions[:-1]} == {"unknown"}
    assert opened == 1
    assert stats.rpcs == 1  # one token, when the stream opened
    assert stats.misses == 200 and stats.fail_open_total == 0


def test_a_streamed_answer_is_cached(server, federation):
    with CarrierClient(server.address, federation.carrier, deadline=RELAXED, stream=True) as client:
        first, second = client.check(CLEAN_NUMBER), client.check(CLEAN_NUMBER)
    assert (first.source, second.source) == ("exchange", "cache")


def test_a_streamed_check_past_its_deadline_fails_open_in_time_and_its_lookup_is_forgotten(server, federation, held_number):
    deadline = 0.2
    with CarrierClient(server.address, federation.carrier, deadline=deadline, stream=True, breaker=NullBreaker()) as client:
        first = client.check(numbers(1)[0], deadline=RELAXED)
        late = client.check(SLOW_NUMBER)
        stream = client._stream_lookups().client._current
        # the cancellation runs on the stream's thread; the answer is held, so only it can empty the stream
        forgotten = wait_until(lambda: len(stream.waiting) == 0)  # len: the stream's thread may change the dict meanwhile
        after = client.check(numbers(1, start=3100)[0], deadline=RELAXED)
        opened = client._stream_lookups().client.opened

    assert (late.source, late.reason, late.action) == ("fail_open", "timeout", "unknown")
    assert late.latency < deadline + GRACE
    assert forgotten
    assert (first.source, after.source) == ("exchange", "exchange")
    assert opened == 1


def test_a_streamed_check_against_a_closed_port_fails_open_as_unavailable_within_its_deadline(federation, dead_target):
    deadline = 0.5
    with CarrierClient(dead_target, federation.carrier, deadline=deadline, stream=True, breaker=NullBreaker()) as client:
        decisions = [client.check(n) for n in numbers(3)]

    assert {(d.source, d.action, d.reason) for d in decisions} == {("fail_open", "unknown", "unavailable")}
    assert all(d.latency < deadline for d in decisions), [d.latency for d in decisions]


def test_a_streamed_check_fails_open_when_the_exchange_stops_and_answers_again_once_it_is_back(server, federation, spare_server):
    deadline = 0.5
    with CarrierClient(spare_server.address, federation.carrier, deadline=deadline, stream=True, breaker=NullBreaker()) as client:
        up = client.check(numbers(1)[0], deadline=RELAXED)
        spare_server.stop()
        down = [client.check(n) for n in numbers(3, start=3100)]
        spare_server.start()
        assert client._stream_lookups().ready(5)
        back = client.check(numbers(1, start=3200)[0], deadline=RELAXED)

    assert up.source == "exchange" and back.source == "exchange"
    assert {(d.source, d.action) for d in down} == {("fail_open", "unknown")}
    assert all(d.reason in {"unavailable", "timeout"} or (d.reason, d.detail) == WRITE_RACED_THE_END for d in down), \
        [(d.reason, d.detail) for d in down]
    assert all(d.latency < deadline + GRACE for d in down), [d.latency for d in down]


def test_streamed_checks_by_an_unregistered_carrier_fail_open_as_unauthenticated_and_never_trip_the_breaker(server):
    stranger = generate_identity("nobody", Role.CARRIER)
    breaker = CircuitBreaker(failure_threshold=3, window=60, cool_down=60)
    with CarrierClient(server.address, stranger, deadline=RELAXED, stream=True, breaker=breaker) as client:
        assert client.wait_ready()
        decisions = [client.check(n) for n in numbers(20)]

    assert {(d.source, d.action, d.reason) for d in decisions} == {("fail_open", "unknown", "unauthenticated")}
    assert breaker.state == "closed"


def test_the_stream_opens_with_the_call_sessions_token(server, federation, proofs):
    with CarrierClient(server.address, federation.carrier, deadline=RELAXED, stream=True) as client:
        assert client.wait_ready()  # opens the call session, and connects the stream's channel
        decisions = [client.check(n) for n in numbers(20)]
        stats = client.stats()

    assert {d.source for d in decisions} == {"exchange"}
    assert proofs == ["token", "session"]  # OpenSession, signed; then the stream's opening, with a call token
    assert stats.rpcs == 1


def test_a_rate_refused_streamed_check_fails_open_overloaded_and_the_client_pauses(rated):
    running, carrier = rated
    with CarrierClient(running.address, carrier, deadline=RELAXED, stream=True, breaker=NullBreaker()) as client:
        reasons = [client.check(n).reason for n in numbers(7)]
        stats = client.stats()

    assert reasons == [""] * 4 + ["overloaded", "rate_limited", "rate_limited"]
    assert stats.errors_by_code == {"RESOURCE_EXHAUSTED": 1}


def test_closing_the_client_ends_its_stream_thread_and_later_checks_fail_open(server, federation):
    before = len(stream_threads())
    client = CarrierClient(server.address, federation.carrier, deadline=RELAXED, stream=True)
    assert client.check(numbers(1)[0]).source == "exchange"
    running = len(stream_threads())
    client.close()
    after_close = client.check(numbers(1, start=3100)[0])

    assert (running, len(stream_threads())) == (before + 1, before)
    assert (after_close.source, after_close.reason) == ("fail_open", "client_error")


def test_closing_the_client_while_checks_wait_fails_them_open_at_once(server, federation, held_number):
    client = CarrierClient(server.address, federation.carrier, deadline=RELAXED, stream=True, breaker=NullBreaker())
    assert client.check(numbers(1)[0]).source == "exchange"
    with ThreadPoolExecutor(4) as pool:
        waiting = [pool.submit(client.check, SLOW_NUMBER) for _ in range(4)]
        assert wait_until(lambda: held_number.asked == 4)  # all four written, their answers held
        closed_at = time.monotonic()
        client.close()
        decisions = [w.result(timeout=RELAXED) for w in waiting]
        took = time.monotonic() - closed_at

    assert {(d.source, d.reason) for d in decisions} == {("fail_open", "cancelled")}, decisions
    assert took < RELAXED / 2  # at once, not at their deadline
    assert stream_threads() == []


def test_a_threaded_stream_takes_no_lookup_once_closed(server, federation):
    from numrep.v1 import lookup_pb2
    from numrep_client._carrier import _aio_channel
    from numrep_client._stream import ThreadedLookupStream

    from test_carrier_stream import bearer

    lookups = ThreadedLookupStream(lambda: _aio_channel(server.address, None, ()), bearer(federation.carrier))
    answered = lookups.lookup(lookup_pb2.LookupRequest(number=numbers(1)[0])).result(RELAXED)
    lookups.close()
    refused = lookups.lookup(lookup_pb2.LookupRequest(number=numbers(1, start=1100)[0]))

    assert answered.error_code == 0
    assert refused.done() and refused.exception().code() == grpc.StatusCode.CANCELLED
    lookups.close()  # a second close does nothing


def test_a_bad_write_interval_is_refused_when_the_client_is_made(server, federation):
    with pytest.raises(ValueError, match="write interval"):
        CarrierClient(server.address, federation.carrier, stream=True, stream_write_interval=-1.0)


def test_without_stream_no_stream_thread_is_started(server, federation):
    before = len(stream_threads())
    with CarrierClient(server.address, federation.carrier, deadline=RELAXED) as client:
        assert client.check(numbers(1)[0]).source == "exchange"
        during = len(stream_threads())
    assert during == before
