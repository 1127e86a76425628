"""Stored verdicts held in memory, kept exact by the store's change feed.

Every write of a verdict appends its number to the change feed. Before each read
the cache follows the feed from where it last stopped and drops the numbers
named there, so a read never returns a verdict older than what the store holds
at the start of that read, whichever process wrote it. That is exact only over a
store whose feed shows a write the moment it commits (``Store.prompt_feed``):
SQLite. A Cassandra feed is read a safety lag behind the clock, so over it the
exchange reads the store instead.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Sequence

from numrep.core.model import Verdict
from numrep.store.base import Store

FEED_PAGE = 1_000
DEFAULT_ENTRIES = 32_768  # about 60 MiB when full (1.9 KB per verdict, measured)


class VerdictCache:
    """``Store.get_verdicts`` answered from memory where it can. At most
    ``capacity`` verdicts are held; the least recently asked go first."""

    def __init__(self, store: Store, capacity: int) -> None:
        if not store.prompt_feed:
            raise ValueError("a verdict cache needs a store whose change feed shows every write at once")
        self._store = store
        self._capacity = capacity
        self._held: OrderedDict[str, Verdict] = OrderedDict()
        self._position = store.feed_head()
        self._lock = threading.Lock()  # batches run in worker threads
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._held)

    def get_verdicts(self, numbers: Sequence[str]) -> dict[str, Verdict]:
        with self._lock:
            self._catch_up()
            position = self._position
            found: dict[str, Verdict] = {}
            missing: list[str] = []
            held = self._held
            for number in numbers:
                verdict = held.get(number)
                if verdict is None:
                    missing.append(number)
                else:
                    found[number] = verdict
                    held.move_to_end(number)
            self.hits += len(found)
            self.misses += len(missing)
        if not missing:
            return found
        read = self._store.get_verdicts(missing)  # outside the lock: other batches go on meanwhile
        found.update(read)
        with self._lock:
            # Another batch moved past ``position`` while this one read: it may have dropped a
            # number this read had already fetched in its older state. Keep nothing from it then.
            if self._position == position:
                self._hold(read)
        return found

    def _catch_up(self) -> None:
        """Drop every number the feed names after the last position seen."""
        followed = 0
        while True:
            changes = self._store.changes_after(self._position, FEED_PAGE)
            followed += len(changes)
            if followed > self._capacity:  # more changed than we could hold: start again empty
                self._held.clear()
                self._position = self._store.feed_head()
                return
            for change in changes:
                self._held.pop(change.number, None)
            if changes:
                self._position = changes[-1].position
            if len(changes) < FEED_PAGE:
                return

    def _hold(self, verdicts: dict[str, Verdict]) -> None:
        held = self._held
        held.update(verdicts)
        while len(held) > self._capacity:
            held.popitem(last=False)
