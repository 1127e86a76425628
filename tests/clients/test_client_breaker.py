"""The circuit breaker's state machine, on an injected clock."""

from __future__ import annotations

import pytest

from numrep_client import CircuitBreaker, NullBreaker

from sdk_testkit import FakeClock


def breaker(clock: FakeClock, threshold: int = 3, window: float = 10.0, cool_down: float = 5.0) -> CircuitBreaker:
    return CircuitBreaker(failure_threshold=threshold, window=window, cool_down=cool_down, clock=clock)


def test_opens_after_consecutive_failures_within_the_window():
    clock = FakeClock()
    b = breaker(clock)
    for _ in range(2):
        assert b.allow()
        b.record_failure()
    assert b.state == "closed"
    b.record_failure()
    assert b.state == "open"
    assert not b.allow()
    assert b.snapshot().open_until == pytest.approx(clock() + 5.0)


def test_a_success_resets_the_count():
    b = breaker(FakeClock())
    b.record_failure()
    b.record_failure()
    b.record_success()
    b.record_failure()
    b.record_failure()
    assert b.state == "closed"


def test_failures_outside_the_window_do_not_count():
    clock = FakeClock()
    b = breaker(clock, window=10.0)
    b.record_failure()
    b.record_failure()
    clock.advance(10.5)  # the first two are now too old
    b.record_failure()
    assert b.state == "closed"
    clock.advance(1)
    b.record_failure()
    b.record_failure()
    assert b.state == "open"


def test_half_open_lets_exactly_one_trial_through():
    clock = FakeClock()
    b = breaker(clock, threshold=1)
    b.record_failure()
    clock.advance(4.99)
    assert not b.allow()
    clock.advance(0.01)
    assert b.state == "half_open"
    assert b.allow()  # the trial
    assert not b.allow()  # everyone else waits for it
    b.record_success()
    assert b.state == "closed"
    assert b.allow() and b.allow()


def test_a_failed_trial_opens_again_for_another_cool_down():
    clock = FakeClock()
    b = breaker(clock, threshold=1)
    b.record_failure()
    clock.advance(5)
    assert b.allow()
    b.record_failure()
    assert b.state == "open"
    clock.advance(4)
    assert not b.allow()
    clock.advance(1)
    assert b.allow()
    assert b.snapshot().opened == 2


def test_a_lost_trial_expires_and_a_released_one_frees_the_slot():
    clock = FakeClock()
    b = breaker(clock, threshold=1)
    b.record_failure()
    clock.advance(5)
    assert b.allow()
    clock.advance(5)  # the trial never reported back
    assert b.allow()
    b.release()  # ... and this one was not made after all
    assert b.allow()


def test_stragglers_do_not_extend_an_open_breaker():
    clock = FakeClock()
    b = breaker(clock, threshold=1)
    b.record_failure()
    clock.advance(3)
    b.record_failure()  # a call that started before the breaker opened
    clock.advance(2)
    assert b.state == "half_open"


def test_null_breaker_never_opens():
    b = NullBreaker()
    for _ in range(100):
        b.record_failure()
    assert b.allow() and b.state == "closed"


def test_rejects_nonsense_settings():
    with pytest.raises(ValueError):
        CircuitBreaker(failure_threshold=0)
    with pytest.raises(ValueError):
        CircuitBreaker(cool_down=0)
