"""Fault tests marked ``faults`` stop and kill their own Cassandra nodes and take
minutes: they run with ``make test-faults`` (``infra/faults.sh``), with
``NUMREP_TEST_FAULTS=1``, or when ``-m`` selects them, and are left out of the
normal run so that ``make test`` stays fast."""

from __future__ import annotations

import os
from typing import Iterator

import pytest

from faults_kit import CLUSTER, SINGLE, CassandraNodes


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("NUMREP_TEST_FAULTS") == "1" or "faults" in (config.getoption("markexpr") or ""):
        return
    left_out = [item for item in items if item.get_closest_marker("faults") is not None]
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = [item for item in items if item.get_closest_marker("faults") is None]


def _nodes(nodes: CassandraNodes) -> Iterator[CassandraNodes]:
    """The set running (started here if needed, then stopped again); every node up."""
    started_here = nodes.running() < nodes.nodes
    if started_here:
        nodes.start()
    try:
        yield nodes
    finally:
        if started_here:
            nodes.stop()


@pytest.fixture(scope="module")
def single_node() -> Iterator[CassandraNodes]:
    """A dedicated single Cassandra node (127.0.2.1) that a test may stop."""
    yield from _nodes(SINGLE)


@pytest.fixture(scope="module")
def cluster() -> Iterator[CassandraNodes]:
    """The dedicated 3-node cluster (127.0.1.1-3) that a test may kill a node of."""
    yield from _nodes(CLUSTER)
