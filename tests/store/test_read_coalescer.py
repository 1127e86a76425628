"""Reads of single keys that arrive together go to the store as one read
(``numrep.store.read_coalescer``): a lone key at once, keys asked for while a
read is out together in the next, every caller its own answer, failures to
every caller of the read that failed, and a slow read holds nobody past its
patience. The store's side on a live node is in the conformance suite."""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable, Mapping, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from numrep.store.read_coalescer import ReadCoalescer

STORED = {"a": 1, "b": 2, "c": 3}


class Reads:
    """A store whose reads answer only when the test says so."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.sent: list[list[str]] = []
        self.pending: list[asyncio.Future[Mapping[str, int]]] = []

    def __call__(self, keys: Sequence[str]) -> "asyncio.Future[Mapping[str, int]]":
        assert len(set(keys)) == len(keys), "keys of one read are distinct"
        self.sent.append(list(keys))
        future: asyncio.Future[Mapping[str, int]] = self.loop.create_future()
        self.pending.append(future)
        return future

    def answer(self, index: int, stored: Mapping[str, int] = STORED) -> None:
        self.pending[index].set_result({k: stored[k] for k in self.sent[index] if k in stored})

    def fail(self, index: int, error: BaseException) -> None:
        self.pending[index].set_exception(error)


def run(test: Callable[[asyncio.AbstractEventLoop], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        return await test(asyncio.get_running_loop())

    return asyncio.run(main())


async def turn() -> None:
    for _ in range(3):
        await asyncio.sleep(0)


def coalescer(loop: asyncio.AbstractEventLoop, reads: Any, *, max_reads: int = 1, max_keys: int = 50,
              patience: float = 60.0) -> ReadCoalescer[str, int]:
    return ReadCoalescer(loop, reads, max_reads=max_reads, max_keys=max_keys, patience=patience)


def test_a_lone_key_is_read_alone_and_at_once() -> None:
    async def test(loop: asyncio.AbstractEventLoop) -> None:
        reads = Reads(loop)
        answer = coalescer(loop, reads).get("a")
        await turn()
        assert reads.sent == [["a"]]
        reads.answer(0)
        assert await answer == 1

    run(test)


def test_keys_asked_in_one_turn_go_in_one_read() -> None:
    async def test(loop: asyncio.AbstractEventLoop) -> None:
        reads = Reads(loop)
        c = coalescer(loop, reads)
        answers = [c.get(k) for k in ["a", "b", "x"]]
        await turn()
        assert reads.sent == [["a", "b", "x"]]
        reads.answer(0)
        assert [await a for a in answers] == [1, 2, None]

    run(test)


def test_keys_asked_while_a_read_is_out_wait_and_go_together_when_it_returns() -> None:
    async def test(loop: asyncio.AbstractEventLoop) -> None:
        reads = Reads(loop)
        c = coalescer(loop, reads)
        first = c.get("a")
        await turn()
        later = [c.get("b"), c.get("c"), c.get("x")]
        await turn()
        assert reads.sent == [["a"]], "nothing more is sent while the one read allowed is out"
        reads.answer(0)
        await turn()
        assert reads.sent == [["a"], ["b", "c", "x"]]
        reads.answer(1)
        assert await first == 1
        assert [await a for a in later] == [2, 3, None]
        assert (c.reads, c.asked) == (2, 4)

    run(test)


def test_max_reads_reads_may_be_out_at_once() -> None:
    async def test(loop: asyncio.AbstractEventLoop) -> None:
        reads = Reads(loop)
        c = coalescer(loop, reads, max_reads=2)
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

    run(test)


def test_a_key_asked_twice_in_one_read_is_read_once_and_answers_both() -> None:
    async def test(loop: asyncio.AbstractEventLoop) -> None:
        reads = Reads(loop)
        c = coalescer(loop, reads)
        answers = [c.get("a"), c.get("b"), c.get("a")]
        await turn()
        assert reads.sent == [["a", "b"]]
        reads.answer(0)
        assert [await a for a in answers] == [1, 2, 1]
        assert c.asked == 3

    run(test)


def test_more_keys_than_max_keys_go_in_several_reads() -> None:
    async def test(loop: asyncio.AbstractEventLoop) -> None:
        reads = Reads(loop)
        c = coalescer(loop, reads, max_reads=3, max_keys=2)
        answers = [c.get(k) for k in ["a", "b", "c", "x", "y"]]
        await turn()
        assert reads.sent == [["a", "b"], ["c", "x"], ["y"]]
        for index in range(3):
            reads.answer(index)
        assert [await a for a in answers] == [1, 2, 3, None, None]

    run(test)


def test_a_failed_read_fails_each_of_its_callers_and_the_next_read_still_goes() -> None:
    async def test(loop: asyncio.AbstractEventLoop) -> None:
        reads = Reads(loop)
        c = coalescer(loop, reads)
        failing = [c.get("a"), c.get("b")]
        await turn()
        after = c.get("c")
        reads.fail(0, TimeoutError("the node did not answer"))
        await turn()
        for answer in failing:
            with pytest.raises(TimeoutError, match="the node did not answer"):
                await answer
        assert reads.sent == [["a", "b"], ["c"]]
        reads.answer(1)
        assert await after == 3

    run(test)


def test_a_read_that_cannot_start_fails_its_callers_and_holds_nothing() -> None:
    async def test(loop: asyncio.AbstractEventLoop) -> None:
        reads = Reads(loop)
        broken = True

        def read_many(keys: Sequence[str]) -> "asyncio.Future[Mapping[str, int]]":
            if broken:
                raise ConnectionError("no host available")
            return reads(keys)

        c = coalescer(loop, read_many)
        with pytest.raises(ConnectionError, match="no host available"):
            await c.get("a")
        broken = False
        answer = c.get("b")
        await turn()
        assert reads.sent == [["b"]]
        reads.answer(0)
        assert await answer == 2

    run(test)


def test_a_caller_that_gives_up_cancels_no_one_else_and_is_not_read_if_still_waiting() -> None:
    async def test(loop: asyncio.AbstractEventLoop) -> None:
        reads = Reads(loop)
        c = coalescer(loop, reads)
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

    run(test)


def test_a_read_out_longer_than_its_patience_stops_holding_the_next_back() -> None:
    async def test(loop: asyncio.AbstractEventLoop) -> None:
        reads = Reads(loop)
        c = coalescer(loop, reads, patience=0.02)
        stuck = c.get("a")
        await turn()
        waiting = c.get("b")
        await turn()
        assert reads.sent == [["a"]]
        await asyncio.sleep(0.05)
        assert reads.sent == [["a"], ["b"]], "sent once the stuck read ran out of patience"
        reads.answer(1)
        assert await waiting == 2
        reads.answer(0)  # the stuck read returns at last: its caller is answered, nothing else moves
        assert await stuck == 1
        c.get("c")
        await turn()
        assert reads.sent[-1] == ["c"]

    run(test)


def test_nonsense_limits_are_refused() -> None:
    loop = asyncio.new_event_loop()
    try:
        for limits in [{"max_reads": 0}, {"max_keys": 0}, {"patience": 0.0}, {"patience": float("nan")}]:
            with pytest.raises(ValueError):
                coalescer(loop, Reads(loop), **limits)
    finally:
        loop.close()


@settings(max_examples=60, deadline=None)
@given(
    waves=st.lists(st.lists(st.sampled_from(["a", "b", "c", "x", "y"]), min_size=1, max_size=8), min_size=1, max_size=6),
    max_reads=st.integers(1, 3),
    max_keys=st.integers(1, 4),
    delays=st.lists(st.integers(0, 3), min_size=1, max_size=10),
)
def test_every_caller_gets_its_own_keys_value_and_no_more_reads_are_out_than_allowed(
        waves: list[list[str]], max_reads: int, max_keys: int, delays: list[int]) -> None:
    async def test(loop: asyncio.AbstractEventLoop) -> None:
        out = 0
        most = 0

        def read_many(keys: Sequence[str]) -> "asyncio.Future[Mapping[str, int]]":
            nonlocal out, most
            assert len(keys) <= max_keys and len(set(keys)) == len(keys)
            out += 1
            most = max(most, out)
            future: asyncio.Future[Mapping[str, int]] = loop.create_future()

            async def answer_later() -> None:
                nonlocal out
                for _ in range(delays[len(keys) % len(delays)]):
                    await asyncio.sleep(0)
                out -= 1
                future.set_result({k: STORED[k] for k in keys if k in STORED})

            loop.create_task(answer_later())
            return future

        c = ReadCoalescer(loop, read_many, max_reads=max_reads, max_keys=max_keys, patience=60.0)
        asked: list[tuple[str, asyncio.Future[int | None]]] = []
        for wave in waves:
            asked += [(key, c.get(key)) for key in wave]
            await asyncio.sleep(0)
        for key, answer in asked:
            assert await answer == STORED.get(key)
        assert most <= max_reads
        assert c.asked == len(asked)

    run(test)
