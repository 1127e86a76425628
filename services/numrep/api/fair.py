"""Turns at a scarce resource, shared fairly between owners."""

from __future__ import annotations

import asyncio
from collections import OrderedDict, deque
from contextlib import asynccontextmanager
from typing import AsyncIterator


class FairTurns:
    """At most ``slots`` holders at a time. Waiters are served round-robin by
    owner: an owner with ten queued requests gets one turn, then every other
    waiting owner gets one, and so on, so one participant's flood cannot make
    another wait behind all of it. Waiting holds no thread."""

    def __init__(self, slots: int = 1) -> None:
        if slots < 1:
            raise ValueError("slots must be at least 1")
        self._free = slots
        self._waiting: OrderedDict[str, deque[asyncio.Future[None]]] = OrderedDict()

    @property
    def waiting(self) -> int:
        return sum(len(queue) for queue in self._waiting.values())

    @asynccontextmanager
    async def turn(self, owner: str) -> AsyncIterator[None]:
        if self._free and not self._waiting:
            self._free -= 1
        else:
            granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiting.setdefault(owner, deque()).append(granted)
            try:
                await granted
            except asyncio.CancelledError:
                if granted.done() and not granted.cancelled():
                    self._pass_on()  # the turn came as the caller gave up: hand it on
                else:
                    self._forget(owner, granted)
                raise
        try:
            yield
        finally:
            self._pass_on()

    def _pass_on(self) -> None:
        """Give the freed turn to the next owner in line, or free the slot."""
        while self._waiting:
            owner, queue = next(iter(self._waiting.items()))
            granted = queue.popleft()
            if queue:
                self._waiting.move_to_end(owner)  # its next request waits for everyone else's turn
            else:
                del self._waiting[owner]
            if not granted.done():
                granted.set_result(None)
                return
        self._free += 1

    def _forget(self, owner: str, granted: asyncio.Future[None]) -> None:
        queue = self._waiting.get(owner)
        if queue is not None and granted in queue:
            queue.remove(granted)
            if not queue:
                del self._waiting[owner]
