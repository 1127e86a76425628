"""Fixtures of the store conformance suite: every test runs once per backend.

``store`` is a fresh, empty store of the backend the test is parametrised with:

* ``sqlite``: ``SqliteStore`` in ``tmp_path``.
* ``cassandra``: ``CassandraStore`` in a keyspace no other running test uses
  (``numrep_test_<hex>``), emptied before the test; the keyspaces are pooled and
  dropped at the end of the session. It runs only when
  ``NUMREP_TEST_CASSANDRA`` names a node as ``host[,host...]:port`` (``make
  test`` starts one and sets it). Unset (or ``off``): the Cassandra half is
  skipped. Set: the Cassandra half must run, so a failing import or connection
  fails the test instead of skipping it, and CI cannot silently lose it.

Backend options (``feed_bucket_seconds``, ``feed_safety_lag_seconds``) reach the
store through the ``store_options`` fixture (override it in a module or class)
or through the ``make_store(**options)`` factory; SQLite ignores them.

A test that shows a bug of one backend only is marked
``@pytest.mark.store_bug("cassandra", reason="BUG: ...")``: that backend's
variant becomes a strict xfail, the other backends run normally.
"""

from __future__ import annotations

import os
import uuid
from typing import Any, Callable, Iterator

import pytest

from numrep.store.base import Store

from numrep_testkit import empty_keyspace

BACKENDS = ["sqlite", "cassandra"]
CASSANDRA_ENV = "NUMREP_TEST_CASSANDRA"
KEYSPACE_PREFIX = "numrep_test_"

MakeStore = Callable[..., Store]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "store_bug(backend, reason): a known bug of one store backend; that backend's variant is a strict xfail",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is None or "backend" not in callspec.params:
            continue
        for mark in item.iter_markers("store_bug"):
            if callspec.params["backend"] == mark.args[0]:
                item.add_marker(pytest.mark.xfail(reason=mark.kwargs["reason"], strict=True))


def cassandra_target() -> tuple[list[str], int] | None:
    """Contact points and port from ``NUMREP_TEST_CASSANDRA``; None when unset or ``off``."""
    raw = os.environ.get(CASSANDRA_ENV, "").strip()
    if raw in ("", "off"):
        return None
    hosts, sep, port = raw.rpartition(":")
    if not sep or not hosts or not port.isdigit():
        pytest.fail(f"{CASSANDRA_ENV}={raw!r} is not host[,host...]:port", pytrace=False)
    return [h.strip() for h in hosts.split(",") if h.strip()], int(port)


@pytest.fixture(params=[pytest.param(name, id=name, marks=[pytest.mark.cassandra] if name == "cassandra" else [])
                        for name in BACKENDS])
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


class CassandraAdmin:
    """Test keyspaces: a test leases one (a pooled keyspace, emptied, or a new
    name) and gives it back; they are all dropped at the end of the session.
    Creating a keyspace with every migration costs several seconds; emptying a
    used one, a fraction of that."""

    def __init__(self, session: Any) -> None:
        self.session = session
        self.pending: list[tuple[str, Any]] = []
        self.free: list[str] = []

    def lease(self) -> str:
        if self.free:
            keyspace = self.free.pop()
            empty_keyspace(self.session, keyspace)
            return keyspace
        return f"{KEYSPACE_PREFIX}{uuid.uuid4().hex[:16]}"

    def give_back(self, keyspace: str) -> None:
        self.free.append(keyspace)

    def drop(self, keyspace: str) -> None:
        self.pending.append((keyspace, self.session.execute_async(f"DROP KEYSPACE IF EXISTS {keyspace}", timeout=120)))


@pytest.fixture(scope="session")
def cassandra_admin() -> Iterator[CassandraAdmin]:
    """One driver session for dropping test keyspaces (drops run asynchronously
    and are awaited at the end of the session: a drop takes seconds)."""
    target = cassandra_target()
    assert target is not None
    try:
        from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
        from cassandra.policies import RoundRobinPolicy
    except ImportError as exc:
        pytest.fail(f"{CASSANDRA_ENV} is set but the Cassandra driver cannot be imported: {exc}", pytrace=False)
    hosts, port = target
    profile = ExecutionProfile(load_balancing_policy=RoundRobinPolicy(), request_timeout=120)
    cluster = Cluster(hosts, port=port, protocol_version=5, execution_profiles={EXEC_PROFILE_DEFAULT: profile})
    try:
        session = cluster.connect()
    except Exception as exc:
        cluster.shutdown()
        pytest.fail(f"{CASSANDRA_ENV}={os.environ[CASSANDRA_ENV]} but Cassandra does not answer: {exc!r}", pytrace=False)
    admin = CassandraAdmin(session)
    yield admin
    for keyspace in admin.free:
        admin.drop(keyspace)
    errors = []
    for keyspace, future in admin.pending:
        try:
            future.result()
        except Exception:  # try once more, synchronously; only this run's keyspaces
            try:
                session.execute(f"DROP KEYSPACE IF EXISTS {keyspace}", timeout=120)
            except Exception as exc:
                errors.append(f"{keyspace}: {exc!r}")
    cluster.shutdown()
    if errors:
        raise RuntimeError(f"could not drop test keyspaces: {errors}")


@pytest.fixture
def make_store(backend: str, tmp_path: Any, request: pytest.FixtureRequest) -> Iterator[MakeStore]:
    """``make_store(**options)``: a fresh empty store of ``backend``; closed (and
    for Cassandra its keyspace dropped) after the test. SQLite ignores options."""
    opened: list[tuple[Store, str, Any]] = []  # store, keyspace, admin session

    def make(**options: Any) -> Store:
        if backend == "sqlite":
            from numrep.store.sqlite import SqliteStore

            store: Store = SqliteStore(tmp_path / f"db{len(opened)}.sqlite3")
            opened.append((store, "", None))
            return store
        target = cassandra_target()
        if target is None:
            pytest.skip(f"{CASSANDRA_ENV} is not set (or is 'off'): no Cassandra node to test against (make test starts one and sets it)")
        try:
            from numrep.store.cassandra import CassandraStore
        except Exception as exc:  # ImportError, or anything else that breaks the import
            pytest.fail(f"{CASSANDRA_ENV} is set but numrep.store.cassandra cannot be imported: {exc!r}", pytrace=False)
        admin = request.getfixturevalue("cassandra_admin")
        hosts, port = target
        keyspace = admin.lease()
        try:
            store = CassandraStore.connect(hosts, port, keyspace, **options)
        except Exception as exc:
            admin.drop(keyspace)
            pytest.fail(f"{CASSANDRA_ENV}={os.environ[CASSANDRA_ENV]} but CassandraStore.connect failed: {exc!r}", pytrace=False)
        opened.append((store, keyspace, admin))
        return store

    yield make
    for store, keyspace, admin in reversed(opened):
        store.close()
        if keyspace:
            admin.give_back(keyspace)


@pytest.fixture
def store_options() -> dict[str, Any]:
    """Backend options for ``store``; override in a module or class to change them."""
    return {}


@pytest.fixture
def store(make_store: MakeStore, store_options: dict[str, Any]) -> Store:
    """A fresh, empty store of the parametrised backend."""
    return make_store(**store_options)
