"""Single-key reads that arrive together, sent to the store as one read.

Each store read costs a process a request, a response and the hand-offs between
the driver's thread and the event loop, whatever the row's size; under load
those, not the rows, bound a server. So at most ``max_sends`` sends are out at
once, and the keys asked for meanwhile wait and all go out at the next send (in
reads of up to ``max_keys`` keys) as soon as one returns. A quiet exchange sends
each key alone at once; a busy one sends fewer, larger reads. A send out longer
than ``patience`` seconds (a slow or hung node) stops holding the next one back,
so no key waits for a send before its own longer than that.

A read of several keys that fails is tried again key by key, so that a failure
reaches only the callers whose own key fails (on Cassandra, a number whose
replicas are down), not every caller that happened to share its read.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Callable, Generic, Hashable, Mapping, Sequence, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

# Reads the keys given (distinct), answering the value of each key found, as a
# future of the running event loop.
ReadMany = Callable[[Sequence[K]], "asyncio.Future[Mapping[K, V]]"]
Callers = dict[K, list["asyncio.Future[V | None]"]]


@dataclass
class ReadCounts:
    """Store reads started and the keys in them; one may be shared by several coalescers."""

    reads: int = 0
    keys: int = 0


class ReadCoalescer(Generic[K, V]):
    """``get(key)``, on one event loop. A key asked for twice in one send is read once;
    each caller has a future of its own, so one that gives up cancels no other's read."""

    def __init__(self, read_many: ReadMany[K, V], *, max_sends: int, max_keys: int, patience: float,
                 counts: ReadCounts | None = None) -> None:
        if max_sends < 1 or max_keys < 1 or not patience > 0:
            raise ValueError("max_sends and max_keys must be at least 1, patience more than 0")
        self._read_many = read_many
        self._max_sends = max_sends
        self._max_keys = max_keys
        self._patience = patience
        self._waiting: list[tuple[K, asyncio.Future[V | None]]] = []
        self._holding = 0  # sends out for less than their patience
        self._scheduled = False
        self.counts = counts or ReadCounts()

    def get(self, key: K) -> "asyncio.Future[V | None]":
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[V | None] = loop.create_future()
        self._waiting.append((key, answer))
        self._schedule(loop)
        return answer

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        # At the end of this turn of the loop, so that keys asked for in the same turn go together.
        if self._waiting and not self._scheduled and self._holding < self._max_sends:
            self._scheduled = True
            loop.call_soon(self._send)

    def _send(self) -> None:
        self._scheduled = False
        waiting, self._waiting = self._waiting, []
        callers: Callers[K, V] = {}
        for key, answer in waiting:
            if not answer.done():  # else its caller gave up while it waited
                callers.setdefault(key, []).append(answer)
        if not callers:
            return
        keys = list(callers)
        chunks = [keys[low:low + self._max_keys] for low in range(0, len(keys), self._max_keys)]
        loop = asyncio.get_running_loop()
        place = _Place(self._release, len(chunks))
        place.timer = loop.call_later(self._patience, place.give_up)
        self._holding += 1
        for chunk in chunks:
            self._start({key: callers[key] for key in chunk}, place)

    def _release(self) -> None:
        self._holding -= 1
        self._schedule(asyncio.get_running_loop())

    def _start(self, callers: Callers[K, V], place: _Place | None) -> None:
        self.counts.reads += 1
        self.counts.keys += len(callers)
        try:
            read = self._read_many(list(callers))
        except Exception as exc:  # noqa: BLE001 - the callers get it, as they would from the read
            if place is not None:
                place.read_returned()
            self._failed(callers, exc)
            return
        read.add_done_callback(lambda done: self._returned(done, callers, place))

    def _returned(self, read: "asyncio.Future[Mapping[K, V]]", callers: Callers[K, V], place: _Place | None) -> None:
        if place is not None:
            place.read_returned()
        if read.cancelled():
            for answers in callers.values():
                for answer in answers:
                    answer.cancel()
            return
        error = read.exception()
        if error is not None:
            self._failed(callers, error)
            return
        found = read.result()
        for key, answers in callers.items():
            _answer_each(answers, found.get(key), None)

    def _failed(self, callers: Callers[K, V], error: BaseException) -> None:
        if len(callers) == 1:
            for answers in callers.values():
                _answer_each(answers, None, error)
            return
        for key, answers in callers.items():  # each alone, outside the sends' places
            if not all(answer.done() for answer in answers):
                self._start({key: answers}, None)


class _Place:
    """A send's place among the ``max_sends``: given up when its last read returns or
    when its patience runs out, whichever comes first."""

    __slots__ = ("_release", "_reads_out", "timer")

    def __init__(self, release: Callable[[], None], reads: int) -> None:
        self._release: Callable[[], None] | None = release
        self._reads_out = reads
        self.timer: asyncio.TimerHandle | None = None

    def read_returned(self) -> None:
        self._reads_out -= 1
        if self._reads_out == 0:
            self.give_up()

    def give_up(self) -> None:
        release, self._release = self._release, None
        if release is None:
            return
        if self.timer is not None:
            self.timer.cancel()
        release()


def _answer_each(answers: list["asyncio.Future[V | None]"], value: V | None, error: BaseException | None) -> None:
    for answer in answers:
        settle(answer, value, error)


def settle(future: "asyncio.Future[Any]", value: Any, error: BaseException | None) -> None:
    """``future`` given ``error`` or else ``value``, unless its waiter has given up (it is done)."""
    if future.done():  # the caller gave up (its RPC was cancelled)
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(value)
