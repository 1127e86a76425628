"""The Cassandra store's event-loop read (``get_verdict_async``) settles the
driver's own future from the driver's thread, and maps driver failures to the
exchange's store errors exactly as the blocking reads do. The failures are made
by a stand-in for the driver session that answers from another thread, as the
driver's event loop does; the answers on a live node are in the conformance
suite (``test_get_verdict_async_answers_what_get_verdict_answers``)."""

from __future__ import annotations

import asyncio
import threading
import weakref
from typing import Any, Callable

import pytest
from cassandra import OperationTimedOut
from cassandra.cluster import NoHostAvailable

from numrep.core.errors import StoreTimeout, StoreUnavailable
from numrep.store.cassandra import CassandraStore


class _Answer:
    def __init__(self, outcome: Any) -> None:
        self._outcome = outcome

    def add_callbacks(self, callback: Callable[[Any], None], errback: Callable[[BaseException], None]) -> None:
        deliver = (lambda: errback(self._outcome)) if isinstance(self._outcome, BaseException) else (lambda: callback(self._outcome))
        threading.Timer(0.01, deliver).start()


class _Session:
    def __init__(self, outcome: Any) -> None:
        self.outcome = outcome

    def execute_async(self, statement: Any, parameters: Any, execution_profile: Any = None) -> _Answer:
        return _Answer(self.outcome)


def _store(outcome: Any) -> CassandraStore:
    store = CassandraStore.__new__(CassandraStore)  # no node: only the read path is exercised
    store._session = _Session(outcome)  # type: ignore[assignment]
    store._verdict_select = "SELECT body FROM verdicts WHERE number = ?"  # type: ignore[assignment]
    store._verdicts_select = "SELECT number, body FROM verdicts WHERE number IN ?"  # type: ignore[assignment]
    store._verdict_reads = weakref.WeakKeyDictionary()  # type: ignore[assignment]
    return store


def test_no_row_is_no_verdict() -> None:
    assert asyncio.run(_store([]).get_verdict_async("+12025550143")) is None


@pytest.mark.parametrize(("failure", "error", "message"), [
    (NoHostAvailable("no host", {}), StoreUnavailable, "Cassandra is unavailable: NoHostAvailable"),
    (OperationTimedOut("timed out"), StoreTimeout, "Cassandra did not answer in time: OperationTimedOut"),
])
def test_driver_failures_become_store_errors(failure: BaseException, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        asyncio.run(_store(failure).get_verdict_async("+12025550143"))


def test_an_answer_after_the_caller_gave_up_is_dropped() -> None:
    async def give_up() -> None:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(_store([]).get_verdict_async("+12025550143"), timeout=0.001)
        await asyncio.sleep(0.05)  # the driver answers now; settling a cancelled future must not raise

    asyncio.run(give_up())


def test_an_answer_after_the_loop_closed_is_dropped_quietly() -> None:
    async def leave() -> None:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(_store([]).get_verdict_async("+12025550143"), timeout=0.001)

    failures: list[Any] = []
    previous = threading.excepthook
    threading.excepthook = failures.append
    try:
        asyncio.run(leave())  # the loop closes before the driver answers
        threading.Event().wait(0.05)
    finally:
        threading.excepthook = previous
    assert failures == []
