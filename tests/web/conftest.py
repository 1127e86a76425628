"""Fixtures for the web page: a real exchange (grpc.aio server, SQLite or
Cassandra store, case desk) started by ``numrep.server.start_server`` with its HTTP side-port,
a federation that has published signed labels over gRPC, and the page's
access log as the test can read it."""

from __future__ import annotations

import logging
import os
import uuid
from pathlib import Path
from typing import Any, Iterator

import pytest

from numrep.config import ServerConfig
from numrep.cases import CaseDesk
from numrep.server import build_exchange, start_server

from web_kit import AccessLog, Site, seed_federation


@pytest.fixture(scope="module")
def access_log() -> Iterator[AccessLog]:
    """Every line the page writes to the ``numrep.web`` loggers."""
    handler = AccessLog()
    logger = logging.getLogger("numrep.web")
    old_level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(old_level)


@pytest.fixture(scope="module", params=["sqlite", pytest.param("cassandra", marks=pytest.mark.cassandra)])
def site(request: pytest.FixtureRequest, loop_thread, tmp_path_factory: pytest.TempPathFactory,
         access_log: AccessLog) -> Iterator[Site]:
    """The exchange with its web page on a free port, seeded with signed labels:
    on SQLite, and on the real Cassandra node when NUMREP_TEST_CASSANDRA names it."""
    data_dir: Path = tmp_path_factory.mktemp("web-exchange")
    config = ServerConfig(listen="127.0.0.1:0", data_dir=data_dir, http_listen="127.0.0.1:0")
    if request.param == "sqlite":
        running = loop_thread.run(start_server(config))
        try:
            assert running.web is not None
            yield seed_federation(running)
        finally:
            loop_thread.run(running.stop(0))
        return
    store = _cassandra_store()
    exchange = build_exchange(config, store=store)
    running = loop_thread.run(start_server(config, exchange))
    try:
        yield seed_federation(running)
    finally:
        loop_thread.run(running.stop(0))
        CaseDesk.release(exchange)
        store._session.execute(f"DROP KEYSPACE IF EXISTS {store.keyspace}", timeout=120)
        store.close()


def _cassandra_store() -> Any:
    raw = os.environ.get("NUMREP_TEST_CASSANDRA", "").strip()
    if raw in ("", "off"):
        pytest.skip("NUMREP_TEST_CASSANDRA is not set: the web page's Cassandra run needs a node (make test starts one)")
    from numrep.store.cassandra import CassandraStore

    hosts, _, port = raw.rpartition(":")
    return CassandraStore.connect([h for h in hosts.split(",") if h], int(port),
                                  keyspace=f"numrep_web_{uuid.uuid4().hex[:12]}", feed_safety_lag_seconds=0,
                                  request_timeout=30.0)  # schema changes on a shared, busy node
