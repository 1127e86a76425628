"""TokenBuckets, the rate limiter behind every RPC class and the web page: it
limits, and it forgets buckets that have filled up again, so a stream of new
client addresses cannot grow its memory without bound."""

from __future__ import annotations

from numrep.limits import Rate, TokenBuckets


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


RATE = Rate(per_second=10, burst=2)


def test_a_burst_passes_then_the_next_request_waits_for_a_token() -> None:
    clock = Clock()
    buckets = TokenBuckets(clock)

    assert [buckets.take(("1.2.3.4", "lookup"), RATE) for _ in range(2)] == [0.0, 0.0]
    assert buckets.take(("1.2.3.4", "lookup"), RATE) == 0.1
    clock.now += 0.1
    assert buckets.take(("1.2.3.4", "lookup"), RATE) == 0.0


def test_a_cost_above_the_burst_can_never_pass() -> None:
    assert TokenBuckets(Clock()).take(("a", "flags"), RATE, cost=3) == float("inf")


def test_buckets_that_filled_up_again_are_forgotten() -> None:
    clock = Clock()
    buckets = TokenBuckets(clock)
    for address in range(50_000):  # a scan from many addresses, one request each
        buckets.take((f"10.0.{address}", "web"), RATE)
        clock.now += 0.001

    assert len(buckets) < 2 * TokenBuckets.SWEEP_AT, "only the recent, not yet refilled buckets are kept"


def test_a_bucket_still_refilling_is_kept_with_its_debt() -> None:
    clock = Clock()
    buckets = TokenBuckets(clock)
    for _ in range(3):
        buckets.take(("busy", "web"), RATE)
    for address in range(5_000):  # sweeps happen meanwhile, within the busy bucket's refill time
        buckets.take((f"10.1.{address}", "web"), RATE)

    assert buckets.take(("busy", "web"), RATE) > 0, "the busy client is still limited"
