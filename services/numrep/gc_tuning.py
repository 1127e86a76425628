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
"""

from __future__ import annotations

import gc

FULL_PASS_EVERY = 100  # middle-generation passes per full pass (CPython's default: 10)


def tune_for_serving() -> None:
    """Freeze what exists now out of all future passes and make full passes rarer.
    Call once a serving process is set up, before it takes calls: objects of a
    call in flight would be frozen too, and a garbage cycle among them never freed."""
    gc.collect()  # garbage of the start-up must not be frozen with the rest
    gc.freeze()
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, FULL_PASS_EVERY)
