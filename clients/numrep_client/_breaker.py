"""A small circuit breaker for calls that must never wait on a sick dependency.

States:

* ``closed``: calls go through. Each failure is remembered with its time; a
  success forgets them all. When ``failure_threshold`` consecutive failures
  fall within ``window`` seconds, the breaker opens.
* ``open``: :meth:`CircuitBreaker.allow` answers False without any I/O, so the
  caller answers its fallback at once. After ``cool_down`` seconds it becomes
  half-open.
* ``half_open``: exactly one caller is let through as a trial. Its success
  closes the breaker; its failure opens it again for another ``cool_down``.
  Everyone else is refused while the trial is in flight. A trial that never
  reports back (a caller that forgot to call ``record_*``) stops blocking
  other trials after ``cool_down`` seconds.

The clock is injectable (``clock=``, monotonic seconds) so tests can move time
without sleeping. All methods are thread-safe and cheap (one lock, no I/O), so
the same breaker also serves asyncio code.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable

log = logging.getLogger("numrep_client.breaker")

CLOSED = "closed"
OPEN = "open"
HALF_OPEN = "half_open"

Clock = Callable[[], float]


@dataclass(frozen=True)
class BreakerSnapshot:
    """The breaker's state at one moment, for stats and logs."""

    state: str
    consecutive_failures: int
    opened: int  # how many times the breaker has opened since it was created
    open_until: float | None  # clock time at which an open breaker turns half-open


class CircuitBreaker:
    """Closed → open after ``failure_threshold`` consecutive failures within
    ``window`` seconds → half-open after ``cool_down`` seconds → closed after one
    successful trial call (or open again after a failed one).

    Use it as::

        if not breaker.allow():
            return fallback()
        try:
            result = call()
        except TransientError:
            breaker.record_failure()
            return fallback()
        breaker.record_success()

    Only failures that say something about the dependency's health (timeouts,
    unavailability, overload) should be recorded as failures; a request the
    dependency answered, even with "invalid argument", is a success.
    """

    def __init__(
        self,
        failure_threshold: int = 5,
        window: float = 10.0,
        cool_down: float = 5.0,
        *,
        clock: Clock = time.monotonic,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        if window <= 0 or cool_down <= 0:
            raise ValueError("window and cool_down must be positive")
        self.failure_threshold = failure_threshold
        self.window = window
        self.cool_down = cool_down
        self._clock = clock
        self._lock = threading.Lock()
        self._failures: deque[float] = deque()
        self._state = CLOSED
        self._opened_at = 0.0
        self._trial_started: float | None = None
        self._opened_count = 0

    @property
    def state(self) -> str:
        """``"closed"``, ``"open"`` or ``"half_open"`` (an open breaker whose
        cool-down has passed reports ``"half_open"``)."""
        with self._lock:
            self._advance(self._clock())
            return self._state

    def allow(self) -> bool:
        """Whether a call may go out now. In half-open state only the first caller
        gets True (the trial); it must then report ``record_success`` or
        ``record_failure``."""
        with self._lock:
            now = self._clock()
            self._advance(now)
            if self._state == CLOSED:
                return True
            if self._state == OPEN:
                return False
            # half-open: one trial at a time; a lost trial expires after cool_down
            if self._trial_started is None or now - self._trial_started >= self.cool_down:
                self._trial_started = now
                return True
            return False

    def record_success(self) -> None:
        """The call got an answer: close the breaker and forget past failures."""
        with self._lock:
            if self._state != CLOSED:
                log.warning("circuit closed: the trial call succeeded")
            self._failures.clear()
            self._state = CLOSED
            self._trial_started = None

    def record_failure(self) -> None:
        """The call failed in a way that says the dependency is unhealthy."""
        with self._lock:
            now = self._clock()
            self._advance(now)
            if self._state == HALF_OPEN:
                self._open(now)
                return
            if self._state == OPEN:
                return  # a straggler that started before the breaker opened
            self._failures.append(now)
            while self._failures and now - self._failures[0] > self.window:
                self._failures.popleft()
            if len(self._failures) >= self.failure_threshold:
                self._open(now)

    def release(self) -> None:
        """The call admitted by :meth:`allow` was not made after all (e.g. no time
        was left for it): free the half-open trial slot without judging health."""
        with self._lock:
            self._trial_started = None

    def reset(self) -> None:
        """Force the breaker closed (e.g. after reconfiguring the target)."""
        with self._lock:
            self._failures.clear()
            self._state = CLOSED
            self._trial_started = None

    def snapshot(self) -> BreakerSnapshot:
        with self._lock:
            self._advance(self._clock())
            open_until = self._opened_at + self.cool_down if self._state == OPEN else None
            return BreakerSnapshot(self._state, len(self._failures), self._opened_count, open_until)

    # --- internals (lock held) ---------------------------------------------------
    def _open(self, now: float) -> None:
        if self._state == HALF_OPEN:
            log.warning("circuit open again: the trial call failed; next trial in %.1f s", self.cool_down)
        else:
            log.warning("circuit open after %d consecutive failures; failing open for %.1f s",
                        len(self._failures), self.cool_down)
        self._state = OPEN
        self._opened_at = now
        self._trial_started = None
        self._failures.clear()
        self._opened_count += 1

    def _advance(self, now: float) -> None:
        if self._state == OPEN and now - self._opened_at >= self.cool_down:
            self._state = HALF_OPEN
            self._trial_started = None


class NullBreaker(CircuitBreaker):
    """A breaker that never opens: every call goes to the network. Useful to
    measure raw fail-open latency, or when an outer layer already breaks."""

    def __init__(self) -> None:
        super().__init__(failure_threshold=1)

    def allow(self) -> bool:
        return True

    def record_failure(self) -> None:
        return None
