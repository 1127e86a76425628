"""Fixtures of the complaints-and-disputes tests: the case desk of the running
exchange (SQLite or Cassandra, as the ``server`` fixture is parametrised), and
the federation's members as the exchange knows them."""

from __future__ import annotations

from typing import Callable

import pytest

from numrep.cases import CaseDesk
from numrep.core.model import Participant
from numrep.server import RunningServer
from numrep.signing.labels import sign_label
from numrep.v1 import publish_pb2

from numrep_testkit import NUMBER


@pytest.fixture
def desk(server: RunningServer) -> CaseDesk:
    return CaseDesk.of(server.exchange)


@pytest.fixture
def member(server: RunningServer, federation) -> Callable[[str], Participant]:
    """``member("regulator")``: that federation member as a registered Participant."""

    def get(role: str) -> Participant:
        return server.exchange.get_participant(getattr(federation, role).participant_id)

    return get


@pytest.fixture
def labelled(federation, connect) -> Callable[..., list[str]]:
    """``labelled(identity, number, *categories)``: publish one label per category
    signed by ``identity``; returns their ids."""

    def publish(identity, number: str = NUMBER, *categories: str) -> list[str]:
        client = connect(identity)
        results = client.publish([sign_label(identity, number, c, 1.0) for c in categories or ("fraud.impersonation",)])
        assert all(r.status == publish_pb2.ITEM_STATUS_ACCEPTED for r in results), results
        return [r.id for r in results]

    return publish
