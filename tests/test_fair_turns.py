"""FairTurns: the gate in front of flag ingestion. One batch at a time; waiting
batches take turns by app, so a flood from one app does not delay another app's
batch behind all of it."""

from __future__ import annotations

import asyncio

import pytest

from numrep.api.fair import FairTurns


async def _served_in_order(turns: FairTurns, requests: list[str]) -> list[str]:
    """The order in which ``requests`` (their owners, arriving in this order) are
    served; the first keeps its turn until every other one waits in line."""
    order: list[str] = []
    all_in_line = asyncio.Event()

    async def one(index: int, owner: str) -> None:
        async with turns.turn(owner):
            order.append(f"{owner}{index}")
            if index == 0:
                await all_in_line.wait()

    tasks = []
    for index, owner in enumerate(requests):
        tasks.append(asyncio.create_task(one(index, owner)))
        await asyncio.sleep(0)  # arrive in this order
    assert turns.waiting == len(requests) - 1
    all_in_line.set()
    await asyncio.gather(*tasks)
    return order


def test_one_apps_flood_does_not_hold_back_another_apps_batch() -> None:
    arrivals = ["flood"] * 5 + ["quiet"]

    order = asyncio.run(_served_in_order(FairTurns(1), arrivals))

    assert order == ["flood0", "flood1", "quiet5", "flood2", "flood3", "flood4"]


def test_waiting_apps_are_served_round_robin() -> None:
    arrivals = ["a", "a", "a", "b", "b", "c"]

    order = asyncio.run(_served_in_order(FairTurns(1), arrivals))

    assert order == ["a0", "a1", "b3", "c5", "a2", "b4"]


def test_never_more_holders_than_slots() -> None:
    turns = FairTurns(2)
    inside = peak = 0

    async def one(owner: str) -> None:
        nonlocal inside, peak
        async with turns.turn(owner):
            inside += 1
            peak = max(peak, inside)
            await asyncio.sleep(0.005)
            inside -= 1

    async def main() -> None:
        await asyncio.gather(*(one(owner) for owner in "aabbbcccc"))

    asyncio.run(main())
    assert peak == 2 and turns.waiting == 0


def test_a_caller_that_gives_up_while_waiting_leaves_the_line_and_the_turn_moves_on() -> None:
    async def main() -> list[str]:
        turns = FairTurns(1)
        served: list[str] = []
        first_done = asyncio.Event()

        async def one(owner: str) -> None:
            async with turns.turn(owner):
                served.append(owner)
                if owner == "a":
                    await first_done.wait()

        first = asyncio.create_task(one("a"))
        await asyncio.sleep(0)
        impatient = asyncio.create_task(one("b"))
        patient = asyncio.create_task(one("c"))
        await asyncio.sleep(0)
        assert turns.waiting == 2  # both in line behind "a"
        impatient.cancel()
        with pytest.raises(asyncio.CancelledError):
            await impatient
        assert turns.waiting == 1
        first_done.set()
        await asyncio.gather(first, patient)
        assert turns.waiting == 0
        async with turns.turn("d"):  # the slot was given back
            served.append("d")
        return served

    assert asyncio.run(main()) == ["a", "c", "d"]


def test_slots_must_be_positive() -> None:
    with pytest.raises(ValueError):
        FairTurns(0)
