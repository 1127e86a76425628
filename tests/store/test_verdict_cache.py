"""The verdict cache behind BatchLookup: answers from memory, never older than the
store. Two ``SqliteStore`` objects on one file stand for two exchange processes
sharing a data directory."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Sequence

import pytest

from numrep.core.model import Action, Verdict
from numrep.store.cassandra import CassandraStore
from numrep.store.sqlite import SqliteStore
from numrep.store.verdict_cache import FEED_PAGE, VerdictCache

AT = datetime(2026, 11, 29, 12, 0, tzinfo=timezone.utc)


def numbers(count: int) -> list[str]:
    return [f"+1212555{1000 + i:04d}" for i in range(count)]


def verdict(number: str, action: Action = Action.WARN, version: int = 1) -> Verdict:
    return Verdict(number=number, action=action, category="marketing.robocall" if action is not Action.ALLOW else "",
                   spam_probability=0.8 if action is not Action.ALLOW else 0.1, confidence=0.7, contributions=(),
                   computed_at=AT, expires_at=AT + timedelta(minutes=5), version=version,
                   explanation=f"{action.value} v{version}")


class CountingStore(SqliteStore):
    """A real SQLite store that counts the verdicts it is asked to read."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.verdicts_read = 0

    def get_verdicts(self, numbers: Sequence[str]) -> dict[str, Verdict]:
        self.verdicts_read += len(numbers)
        return super().get_verdicts(numbers)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


def open_store(data_dir: Path, kind: type[SqliteStore] = SqliteStore) -> SqliteStore:
    data_dir.mkdir(parents=True, exist_ok=True)
    return kind.in_directory(data_dir)


def test_a_number_asked_again_is_answered_from_memory(data_dir: Path) -> None:
    store = open_store(data_dir, CountingStore)
    asked = numbers(3)
    store.put_verdicts([(verdict(n), ()) for n in asked])
    cache = VerdictCache(store, capacity=100)

    first = cache.get_verdicts(asked)
    again = cache.get_verdicts(asked)

    assert again == first == {n: verdict(n) for n in asked}
    assert store.verdicts_read == 3
    assert (cache.hits, cache.misses) == (3, 3)


def test_a_verdict_another_process_rewrites_is_never_answered_stale(data_dir: Path) -> None:
    ours, theirs = open_store(data_dir), open_store(data_dir)
    asked = numbers(2)
    ours.put_verdicts([(verdict(n), ()) for n in asked])
    cache = VerdictCache(ours, capacity=100)
    cache.get_verdicts(asked)

    theirs.put_verdict(verdict(asked[0], Action.BLOCK, version=2))

    assert cache.get_verdicts(asked) == {asked[0]: verdict(asked[0], Action.BLOCK, version=2), asked[1]: verdict(asked[1])}


def test_an_unknown_number_is_not_remembered_as_unknown(data_dir: Path) -> None:
    ours, theirs = open_store(data_dir), open_store(data_dir)
    cache = VerdictCache(ours, capacity=100)
    assert cache.get_verdicts(numbers(1)) == {}

    theirs.put_verdict(verdict(numbers(1)[0]))

    assert cache.get_verdicts(numbers(1)) == {numbers(1)[0]: verdict(numbers(1)[0])}


def test_it_holds_at_most_its_capacity_dropping_the_least_recently_asked(data_dir: Path) -> None:
    store = open_store(data_dir, CountingStore)
    asked = numbers(5)
    store.put_verdicts([(verdict(n), ()) for n in asked])
    cache = VerdictCache(store, capacity=3)

    cache.get_verdicts(asked[:3])
    cache.get_verdicts(asked[:1])      # asked[0] is now the most recent
    cache.get_verdicts(asked[3:5])     # room for two: asked[1] and asked[2] go
    store.verdicts_read = 0
    cache.get_verdicts([asked[0], asked[3], asked[4]])

    assert len(cache) == 3
    assert store.verdicts_read == 0


def test_more_changes_than_it_holds_empties_it_and_it_stays_exact(data_dir: Path) -> None:
    ours, theirs = open_store(data_dir), open_store(data_dir)
    asked = numbers(FEED_PAGE + 20)
    ours.put_verdicts([(verdict(n), ()) for n in asked])
    cache = VerdictCache(ours, capacity=10)
    cache.get_verdicts(asked[:10])

    theirs.put_verdicts([(verdict(n, Action.BLOCK, version=2), ()) for n in asked])

    assert cache.get_verdicts(asked[:10]) == {n: verdict(n, Action.BLOCK, version=2) for n in asked[:10]}
    assert len(cache) == 10


class PausingStore(SqliteStore):
    """A real SQLite store whose next ``get_verdicts`` stops after reading, until released."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.pause_next = False
        self.read_done = threading.Event()
        self.release = threading.Event()

    def get_verdicts(self, numbers: Sequence[str]) -> dict[str, Verdict]:
        found = super().get_verdicts(numbers)
        if self.pause_next:
            self.pause_next = False
            self.read_done.set()
            assert self.release.wait(10)
        return found


def test_a_read_overtaken_by_a_newer_write_is_not_kept(data_dir: Path) -> None:
    """Batch A reads a number, a writer changes it, batch B follows the feed past
    that change before A stores what it read: A's old state must not be kept."""
    store, writer = open_store(data_dir, PausingStore), open_store(data_dir)
    number, other = numbers(2)
    writer.put_verdicts([(verdict(number), ()), (verdict(other), ())])
    cache = VerdictCache(store, capacity=100)
    store.pause_next = True
    answers: dict[str, Verdict] = {}
    batch_a = threading.Thread(target=lambda: answers.update(cache.get_verdicts([number])))
    batch_a.start()
    assert store.read_done.wait(10)

    writer.put_verdict(verdict(number, Action.BLOCK, version=2))
    cache.get_verdicts([other])                       # batch B: follows the feed past the write
    store.release.set()
    batch_a.join(10)

    assert answers[number] == verdict(number)         # what A read was the truth when A started
    assert cache.get_verdicts([number]) == {number: verdict(number, Action.BLOCK, version=2)}


def test_only_a_store_whose_feed_shows_writes_at_once_can_be_cached() -> None:
    assert SqliteStore.prompt_feed
    assert not CassandraStore.prompt_feed  # its feed is read a safety lag behind the clock
