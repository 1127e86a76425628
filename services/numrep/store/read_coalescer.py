"""Single-key reads that arrive together, sent to the store as one read.

Each store read costs a process a request, a response and the hand-offs between
the driver's thread and the event loop, whatever the row's size; under load
those, not the rows, bound a server. So at most ``max_reads`` reads are out at
once, and the keys asked for meanwhile wait and go out together in the next
read (up to ``max_keys`` keys each) as soon as one returns. A quiet exchange
sends each key alone at once and waits no longer than before; a busy one sends
fewer, larger reads. A read out longer than ``patience`` seconds (a slow or hung
node) stops holding the next one back, so no key waits for it longer than that.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Callable, Generic, Hashable, Mapping, Sequence, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

# Reads the keys given (distinct), answering the value of each key found.
ReadMany = Callable[[Sequence[K]], "asyncio.Future[Mapping[K, V]]"]


class ReadCoalescer(Generic[K, V]):
    """``get(key)`` on one event loop. A key asked for twice in one read is read once;
    each caller has a future of its own, so one that gives up cancels no other's read."""

    def __init__(self, loop: asyncio.AbstractEventLoop, read_many: ReadMany[K, V], *, max_reads: int, max_keys: int,
                 patience: float) -> None:
        if max_reads < 1 or max_keys < 1 or not patience > 0:
            raise ValueError("max_reads and max_keys must be at least 1, patience more than 0")
        self.loop = loop
        self._read_many = read_many
        self._max_reads = max_reads
        self._max_keys = max_keys
        self._patience = patience
        self._waiting: deque[tuple[K, asyncio.Future[V | None]]] = deque()
        self._holding = 0  # reads out that hold the next one back (out, and for less than patience)
        self._scheduled = False
        self.reads = 0  # store reads sent
        self.asked = 0  # keys asked for by callers

    def get(self, key: K) -> "asyncio.Future[V | None]":
        answer: asyncio.Future[V | None] = self.loop.create_future()
        self._waiting.append((key, answer))
        self._schedule()
        return answer

    def _schedule(self) -> None:
        # At the end of this turn of the loop, so that keys asked for in the same turn go together.
        if self._waiting and not self._scheduled and self._holding < self._max_reads:
            self._scheduled = True
            self.loop.call_soon(self._send)

    def _send(self) -> None:
        self._scheduled = False
        waiting = self._waiting
        while waiting and self._holding < self._max_reads:
            callers: dict[K, list[asyncio.Future[V | None]]] = {}
            while waiting and len(callers) < self._max_keys:
                key, answer = waiting.popleft()
                self.asked += 1
                if not answer.done():  # else its caller gave up while it waited
                    callers.setdefault(key, []).append(answer)
            if callers:
                self._start(callers)

    def _start(self, callers: dict[K, list["asyncio.Future[V | None]"]]) -> None:
        self.reads += 1
        try:
            read = self._read_many(list(callers))
        except Exception as exc:  # noqa: BLE001 - the callers get it, as they would from the read
            _settle(callers, {}, exc)
            return
        hold = _Hold(self)
        hold.timer = self.loop.call_later(self._patience, hold.release)
        read.add_done_callback(lambda done: self._returned(done, callers, hold))

    def _returned(self, read: "asyncio.Future[Mapping[K, V]]", callers: Mapping[K, list["asyncio.Future[V | None]"]],
                  hold: "_Hold") -> None:
        hold.release()
        if read.cancelled():
            for answers in callers.values():
                for answer in answers:
                    answer.cancel()
            return
        error = read.exception()
        _settle(callers, {} if error is not None else read.result(), error)


class _Hold:
    """One read's place among the ``max_reads``, given up when it returns or runs out of patience."""

    __slots__ = ("_owner", "timer")

    def __init__(self, owner: ReadCoalescer) -> None:
        self._owner: ReadCoalescer | None = owner
        self.timer: asyncio.TimerHandle | None = None
        owner._holding += 1  # noqa: SLF001 - the coalescer's own bookkeeping

    def release(self) -> None:
        owner, self._owner = self._owner, None
        if owner is None:
            return
        if self.timer is not None:
            self.timer.cancel()
        owner._holding -= 1  # noqa: SLF001
        owner._schedule()  # noqa: SLF001


def _settle(callers: Mapping[K, list["asyncio.Future[V | None]"]], found: Mapping[K, V], error: BaseException | None) -> None:
    for key, answers in callers.items():
        for answer in answers:
            if answer.done():  # the caller gave up (its RPC was cancelled)
                continue
            if error is not None:
                answer.set_exception(error)
            else:
                answer.set_result(found.get(key))
