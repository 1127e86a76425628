"""The Cassandra store's event-loop read (``get_verdict_async``) settles the
driver's own future from the driver's thread, and maps driver failures to the
exchange's store errors exactly as the blocking reads do; numbers asked together
are one read; rows it cannot read fail their callers; a closed loop's reads are
let go. The driver is a stand-in session that answers from another thread, as
the driver's event loop does; the answers on a live node are in the conformance
suite (``test_get_verdict_async_*``)."""

from __future__ import annotations

import asyncio
import collections
import gc
import threading
import weakref
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

import pytest
from cassandra import OperationTimedOut
from cassandra.cluster import NoHostAvailable

from numrep.core.errors import StoreTimeout, StoreUnavailable
from numrep.core.model import Action, Verdict
from numrep.store.cassandra import CassandraStore
from numrep.store.codec import verdict_to_json
from numrep.store.read_coalescer import ReadCounts


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


_Row = collections.namedtuple("_Row", "number body")


class _TableSession:
    """Answers the verdict reads from ``table`` (number -> body), as the driver's rows."""

    def __init__(self, table: dict[str, str]) -> None:
        self.table = table
        self.asked: list[list[str]] = []

    def execute_async(self, statement: Any, parameters: Any, execution_profile: Any = None) -> _Answer:
        if " IN " in statement:
            numbers = list(parameters[0])
            rows: list[Any] = [_Row(n, self.table[n]) for n in numbers if n in self.table]
        else:
            numbers = [parameters[0]]
            rows = [_Row(numbers[0], self.table[numbers[0]])] if numbers[0] in self.table else []
        self.asked.append(numbers)
        return _Answer(rows)


def _store(outcome: Any, session: Any = None) -> CassandraStore:
    store = CassandraStore.__new__(CassandraStore)  # no node: only the read path is exercised
    store._session = session or _Session(outcome)  # type: ignore[assignment]
    store._verdict_select = "SELECT body FROM verdicts WHERE number = ?"  # type: ignore[assignment]
    store._verdicts_select = "SELECT number, body FROM verdicts WHERE number IN ?"  # type: ignore[assignment]
    store._verdict_reads = weakref.WeakKeyDictionary()  # type: ignore[assignment]
    store._verdict_read_counts = ReadCounts()
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


def _verdict(number: str) -> Verdict:
    at = datetime(2026, 12, 7, tzinfo=timezone.utc)
    return Verdict(number=number, action=Action.WARN, category="fraud", spam_probability=0.5, confidence=0.5, contributions=(),
                   computed_at=at, expires_at=at + timedelta(minutes=5), version=1, explanation="", label_count=1, flag_count=0)


def test_numbers_asked_together_are_one_read_each_answered_with_its_own_verdict() -> None:
    numbers = ["+12025550143", "+12025550188", "+12025550190"]
    session = _TableSession({n: verdict_to_json(_verdict(n)) for n in numbers[:2]})
    store = _store(None, session)

    async def together() -> list[Verdict | None]:
        return list(await asyncio.gather(*(store.get_verdict_async(n) for n in [*numbers, numbers[0]])))

    assert asyncio.run(together()) == [_verdict(numbers[0]), _verdict(numbers[1]), None, _verdict(numbers[0])]
    assert session.asked == [numbers]
    assert store.verdict_reads_sent() == (1, 3)  # one read, three distinct numbers in it, counted after its loop is gone


def test_rows_the_store_cannot_read_fail_their_callers_instead_of_leaving_them_waiting() -> None:
    store = _store([("not a verdict row",)])

    async def ask() -> Any:
        return await asyncio.wait_for(store.get_verdict_async("+12025550143"), timeout=5)

    with pytest.raises(AttributeError):
        asyncio.run(ask())


def test_the_reads_of_a_closed_event_loop_are_let_go() -> None:
    store = _store([])
    for _ in range(3):
        asyncio.run(store.get_verdict_async("+12025550143"))
    gc.collect()
    assert len(store._verdict_reads) == 0
