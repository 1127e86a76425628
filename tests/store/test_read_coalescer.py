"""Reads of single keys that arrive together go to the store as one read
(``numrep.store.read_coalescer``): a lone key at once; keys asked for while a
send is out all together in the next; every caller its own answer; a failed
read of several keys tried again key by key, so a failure reaches only the
callers of keys that fail alone; and a slow send holds nobody past its
patience. The store's side on a live node is in the conformance suite."""

from __future__ import annotations

import asyncio
import gc
import weakref
from typing import Any, Awaitable, Callable, Mapping, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from numrep.store.read_coalescer import ReadCoalescer

STORED = {"a": 1, "b": 2, "c": 3}


class Reads:
    """A store whose reads answer only when the test says so."""

    def __init__(self) -> None:
        self.sent: list[list[str]] = []
        self.pending: list[asyncio.Future[Mapping[str, int]]] = []

    def __call__(self, keys: Sequence[str]) -> "asyncio.Future[Mapping[str, int]]":
        assert len(set(keys)) == len(keys), "keys of one read are distinct"
        self.sent.append(list(keys))
        future: asyncio.Future[Mapping[str, int]] = asyncio.get_running_loop().create_future()
        self.pending.append(future)
        return future

    def answer(self, index: int, stored: Mapping[str, int] = STORED) -> None:
        self.pending[index].set_result({k: stored[k] for k in self.sent[index] if k in stored})

    def fail(self, index: int, error: BaseException) -> None:
        self.pending[index].set_exception(error)


def run(test: Callable[[], Awaitable[Any]]) -> Any:
    """``test`` on a new event loop whose callbacks may not fail: asyncio would only log it."""
    async def main() -> Any:
        failures: list[dict[str, Any]] = []
        asyncio.get_running_loop().set_exception_handler(lambda loop, context: failures.append(context))
        result = await test()
        await turn()
        assert failures == [], f"a loop callback failed: {failures}"
        return result

    return asyncio.run(main())


async def turn() -> None:
    for _ in range(3):
        await asyncio.sleep(0)


def on_a_loop(test: Callable[[Reads], Awaitable[None]]) -> Callable[[], None]:
    """``test`` given a new ``Reads``, as ``run`` runs it: a plain test function for pytest."""
    def run_test() -> None:
        run(lambda: test(Reads()))

    run_test.__name__, run_test.__qualname__, run_test.__doc__ = test.__name__, test.__qualname__, test.__doc__
    return run_test


def coalescer(reads: Any, *, max_sends: int = 1, max_keys: int = 50, patience: float = 60.0) -> ReadCoalescer[str, int]:
    return ReadCoalescer(reads, max_sends=max_sends, max_keys=max_keys, patience=patience)


@on_a_loop
async def test_a_lone_key_is_read_alone_and_at_once(reads: Reads) -> None:
    answer = coalescer(reads).get("a")
    await turn()
    assert reads.sent == [["a"]]
    reads.answer(0)
    assert await answer == 1


@on_a_loop
async def test_keys_asked_in_one_turn_go_in_one_read_and_a_key_not_found_is_none(reads: Reads) -> None:
    c = coalescer(reads)
    answers = [c.get(k) for k in ["a", "b", "x"]]
    await turn()
    assert reads.sent == [["a", "b", "x"]]
    reads.answer(0)
    assert [await a for a in answers] == [1, 2, None]


@on_a_loop
async def test_keys_asked_while_a_send_is_out_wait_and_go_together_when_it_returns(reads: Reads) -> None:
    c = coalescer(reads)
    first = c.get("a")
    await turn()
    later = [c.get("b"), c.get("c"), c.get("x")]
    await turn()
    assert reads.sent == [["a"]], "nothing more is sent while the one send allowed is out"
    reads.answer(0)
    await turn()
    assert reads.sent == [["a"], ["b", "c", "x"]]
    reads.answer(1)
    assert await first == 1
    assert [await a for a in later] == [2, 3, None]
    assert (c.counts.reads, c.counts.keys) == (2, 4)


@on_a_loop
async def test_max_sends_sends_may_be_out_at_once(reads: Reads) -> None:
    c = coalescer(reads, max_sends=2)
    c.get("a")
    await turn()
    c.get("b")
    await turn()
    c.get("c")
    await turn()
    assert reads.sent == [["a"], ["b"]]
    reads.answer(1)
    await turn()
    assert reads.sent == [["a"], ["b"], ["c"]]


@on_a_loop
async def test_a_key_asked_twice_in_one_send_is_read_once_and_answers_both(reads: Reads) -> None:
    c = coalescer(reads)
    answers = [c.get("a"), c.get("b"), c.get("a")]
    await turn()
    assert reads.sent == [["a", "b"]]
    reads.answer(0)
    assert [await a for a in answers] == [1, 2, 1]


@on_a_loop
async def test_every_key_waiting_goes_at_the_next_send_in_reads_of_max_keys(reads: Reads) -> None:
    c = coalescer(reads, max_keys=2)
    answers = [c.get(k) for k in ["a", "b", "c", "x", "y"]]
    await turn()
    assert reads.sent == [["a", "b"], ["c", "x"], ["y"]]
    more = c.get("a")
    reads.answer(0)
    reads.answer(2)
    await turn()
    assert len(reads.sent) == 3, "the send is out until its last read returns"
    reads.answer(1)
    await turn()
    assert reads.sent[3:] == [["a"]]
    reads.answer(3)
    assert [await a for a in answers] + [await more] == [1, 2, 3, None, None, 1]


@on_a_loop
async def test_a_failed_read_of_several_keys_is_tried_key_by_key_and_fails_only_the_key_that_fails_alone(reads: Reads) -> None:
    c = coalescer(reads)
    answers = {k: c.get(k) for k in ["a", "b"]}
    await turn()
    reads.fail(0, TimeoutError("a replica of b did not answer"))
    await turn()
    assert reads.sent == [["a", "b"], ["a"], ["b"]]
    reads.answer(1)
    reads.fail(2, TimeoutError("a replica of b did not answer"))
    assert await answers["a"] == 1
    with pytest.raises(TimeoutError, match="a replica of b did not answer"):
        await answers["b"]


@on_a_loop
async def test_a_key_whose_callers_all_gave_up_is_not_tried_again(reads: Reads) -> None:
    c = coalescer(reads)
    gave_up, stays = c.get("a"), c.get("b")
    await turn()
    gave_up.cancel()
    reads.fail(0, TimeoutError("the node did not answer"))
    await turn()
    assert reads.sent == [["a", "b"], ["b"]]
    reads.answer(1)
    assert await stays == 2


@on_a_loop
async def test_after_a_failed_read_the_next_send_still_goes(reads: Reads) -> None:
    c = coalescer(reads)
    failing = c.get("a")
    await turn()
    after = c.get("c")
    reads.fail(0, TimeoutError("the node did not answer"))
    with pytest.raises(TimeoutError, match="the node did not answer"):
        await failing
    await turn()
    assert reads.sent == [["a"], ["c"]]
    reads.answer(1)
    assert await after == 3


@on_a_loop
async def test_a_read_that_cannot_start_fails_its_callers_and_holds_nothing(reads: Reads) -> None:
    broken = True

    def read_many(keys: Sequence[str]) -> "asyncio.Future[Mapping[str, int]]":
        if broken:
            raise ConnectionError("no host available")
        return reads(keys)

    c = coalescer(read_many)
    with pytest.raises(ConnectionError, match="no host available"):
        await c.get("a")
    broken = False
    answer = c.get("b")
    await turn()
    assert reads.sent == [["b"]]
    reads.answer(0)
    assert await answer == 2


@on_a_loop
async def test_a_caller_that_gives_up_cancels_no_one_else_and_is_not_read_if_still_waiting(reads: Reads) -> None:
    c = coalescer(reads)
    first = c.get("a")
    await turn()
    gave_up, stays, withdrawn = c.get("b"), c.get("b"), c.get("c")
    gave_up.cancel()
    withdrawn.cancel()
    reads.answer(0)
    await turn()
    assert reads.sent == [["a"], ["b"]], "a key whose only caller left is not read"
    reads.answer(1)
    assert (await first, await stays) == (1, 2)
    assert gave_up.cancelled()


@on_a_loop
async def test_a_caller_that_gives_up_after_its_read_went_out_is_left_alone_when_it_returns(reads: Reads) -> None:
    c = coalescer(reads)
    gave_up, stays = c.get("a"), c.get("b")
    await turn()
    gave_up.cancel()
    reads.answer(0)  # settling the cancelled caller would fail in a loop callback (see run)
    assert await stays == 2
    failing_late = c.get("a")
    await turn()
    failing_late.cancel()
    reads.fail(1, TimeoutError("late"))


@on_a_loop
async def test_a_cancelled_read_cancels_its_callers(reads: Reads) -> None:
    c = coalescer(reads)
    answers = [c.get("a"), c.get("b")]
    await turn()
    reads.pending[0].cancel()
    await turn()
    assert all(answer.cancelled() for answer in answers)


@on_a_loop
async def test_a_send_out_longer_than_its_patience_stops_holding_the_next_back(reads: Reads) -> None:
    patience = 1.0  # far longer than the few turns of the loop before the first look, however busy the machine
    c = coalescer(reads, patience=patience, max_keys=2)
    stuck = c.get("a")
    await turn()
    waiting = [c.get(k) for k in ["b", "c", "x"]]
    await turn()
    assert reads.sent == [["a"]]
    await asyncio.sleep(patience)  # set after the patience's timer and as long: it comes due after it, however busy the machine
    assert reads.sent == [["a"], ["b", "c"], ["x"]], "every key waiting goes once the stuck send ran out of patience"
    reads.answer(1)
    reads.answer(2)
    assert [await a for a in waiting] == [2, 3, None]
    reads.answer(0)  # the stuck read returns at last: its caller is answered, nothing else moves
    assert await stuck == 1
    c.get("c")
    await turn()
    assert reads.sent[-1] == ["c"]


def test_nonsense_limits_are_refused() -> None:
    for limits in [{"max_sends": 0}, {"max_keys": 0}, {"patience": 0.0}, {"patience": float("nan")}]:
        with pytest.raises(ValueError):
            coalescer(Reads(), **limits)


def test_the_coalescer_keeps_no_event_loop_alive() -> None:
    reads = Reads()
    c = coalescer(reads)

    async def ask() -> None:
        answer = c.get("a")
        await turn()
        reads.answer(0)
        await answer

    loop = asyncio.new_event_loop()
    loop.run_until_complete(ask())
    loop.close()
    gone = weakref.ref(loop)
    reads.pending.clear()
    del loop
    gc.collect()
    assert gone() is None and c.counts.reads == 1


@settings(max_examples=80, deadline=None)
@given(
    waves=st.lists(st.lists(st.sampled_from(["a", "b", "c", "x", "y"]), min_size=1, max_size=8), min_size=1, max_size=6),
    max_sends=st.integers(1, 3),
    max_keys=st.integers(1, 4),
    delays=st.lists(st.integers(0, 3), min_size=1, max_size=10),
    broken=st.sets(st.sampled_from(["a", "b", "c", "x", "y"]), max_size=2),
)
def test_every_caller_gets_its_own_keys_value_or_its_own_keys_failure_and_no_more_sends_are_out_than_allowed(
        waves: list[list[str]], max_sends: int, max_keys: int, delays: list[int], broken: set[str]) -> None:
    async def test() -> None:
        loop = asyncio.get_running_loop()
        started = 0

        def read_many(keys: Sequence[str]) -> "asyncio.Future[Mapping[str, int]]":
            nonlocal started
            assert len(keys) <= max_keys and len(set(keys)) == len(keys)
            started += 1
            future: asyncio.Future[Mapping[str, int]] = loop.create_future()

            async def answer_later() -> None:
                for _ in range(delays[started % len(delays)]):
                    await asyncio.sleep(0)
                if broken & set(keys):
                    future.set_exception(LookupError(f"cannot read {sorted(broken & set(keys))}"))
                else:
                    future.set_result({k: STORED[k] for k in keys if k in STORED})

            loop.create_task(answer_later())
            return future

        c = ReadCoalescer(read_many, max_sends=max_sends, max_keys=max_keys, patience=60.0)
        asked: list[tuple[str, asyncio.Future[int | None]]] = []
        most = 0
        for wave in waves:
            asked += [(key, c.get(key)) for key in wave]
            await asyncio.sleep(0)
            most = max(most, c._holding)  # noqa: SLF001 - the limit under test
        for key, answer in asked:
            if key in broken:
                with pytest.raises(LookupError, match=key):
                    await answer
            else:
                assert await answer == STORED.get(key)
            most = max(most, c._holding)  # noqa: SLF001
        assert most <= max_sends

    run(test)
