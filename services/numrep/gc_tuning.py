"""CPython's cyclic garbage collector, set for a long-running exchange process.

A full (generation 2) pass stops every thread while it walks every object the
collector tracks. An exchange holds tens of thousands of decoded verdicts in
its caches, and under lookups of ever new numbers those caches turn over all
the time, so with CPython's defaults a full pass came every few thousand
lookups and took 40-100 ms on the 2-core benchmark machine: every call in
flight waited for it, which alone broke p99 <= 10 ms (``benchmarks/data_scale``
measured p99 76 ms at half load in a run with one such pass, 8 ms without).

Two changes, both for a process that serves until it stops:

* what exists once the server is up (modules, protobuf descriptors, gRPC,
  telemetry) lives as long as the process, so it is frozen out of every pass;
* a full pass runs no sooner than after ``FULL_PASS_EVERY`` middle-generation
  passes instead of 10 (CPython also waits until the objects that survived into
  the old generation since the last full pass are a quarter of those it holds).
  Young cycles are still reclaimed by the young passes as before; only garbage
  cycles that outlived two passes wait longer for theirs.

Objects are still freed by reference counting the moment the last reference
goes, frozen or not: this changes when cycles are found, not what is kept.

Under that same turnover the young passes stop coming by themselves. CPython
starts one when allocations minus deallocations pass a threshold (700), and
every verdict evicted from a cache is a deallocation: each lookup allocated
about as much as its evictions freed, the count stayed low, and the young
generation grew to 100,000 objects before a pass came, which then stopped the
event loop for 60-150 ms (measured at 4,000 lookups/s over a million numbers,
each such pass reported as generation 0). ``YoungPasses`` therefore runs a
young pass from the event loop every ``YOUNG_PASS_EVERY`` seconds, and a
middle one in its place whenever CPython would start one (once more young
passes than its middle threshold ran since the last), so the young generation
holds a few milliseconds of allocations: 0.3 ms a pass. Its middle passes come
by the clock, not by allocations, so CPython's count towards a full pass would
pass 100 in seconds, and the next burst of allocations (a flag flood) would get
a full pass of 70-90 ms from CPython (measured in ``benchmarks/flag_flood``).
So while they run, ``YoungPasses`` takes the full passes over: CPython starts
none, and ``YoungPasses`` runs one every ``FULL_PASS_EVERY_SECONDS``, a pause
of 20-200 ms (the whole heap is walked) once in ten minutes, for the cyclic
garbage that reached the old generation.
"""

from __future__ import annotations

import asyncio
import gc

FULL_PASS_EVERY = 100  # middle-generation passes per full pass (CPython's default: 10)
YOUNG_PASS_EVERY = 0.01  # seconds
FULL_PASS_EVERY_SECONDS = 600.0  # YoungPasses' full passes
_NO_FULL_PASS = 1 << 30  # a full-pass threshold CPython never reaches


def tune_for_serving() -> None:
    """Freeze what exists now out of all future passes and make full passes rarer.
    Call once a serving process is set up, before it takes calls: objects of a
    call in flight would be frozen too, and a garbage cycle among them never freed."""
    gc.collect()  # garbage of the start-up must not be frozen with the rest
    gc.freeze()
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, FULL_PASS_EVERY)


class YoungPasses:
    """Collector passes at a steady pace on the running event loop: a young pass
    every ``every`` seconds, a middle pass in its place when CPython would run
    one, and a full pass every ``full_every`` seconds, CPython running none of
    its own meanwhile. Nothing while the collector is disabled. ``stop()`` ends
    them and gives CPython its full passes back."""

    def __init__(self, every: float = YOUNG_PASS_EVERY, full_every: float = FULL_PASS_EVERY_SECONDS) -> None:
        self._every = every
        self._full_every = full_every
        young, middle, self._full_threshold = gc.get_threshold()
        gc.set_threshold(young, middle, _NO_FULL_PASS)
        self._loop = asyncio.get_running_loop()
        self._full_at = self._loop.time() + full_every
        self._handle = self._loop.call_later(every, self._pass)

    def _pass(self) -> None:
        self._handle = self._loop.call_later(self._every, self._pass)  # first: a failed pass must not end them
        if not gc.isenabled():
            return
        if self._loop.time() >= self._full_at:
            self._full_at = self._loop.time() + self._full_every
            gc.collect(2)
        else:
            gc.collect(1 if gc.get_count()[1] > gc.get_threshold()[1] else 0)

    def stop(self) -> None:
        self._handle.cancel()
        young, middle, _ = gc.get_threshold()
        gc.set_threshold(young, middle, self._full_threshold)
