"""The consent ledger tests run against a real exchange on both stores (the
``server`` fixture of ``tests/conftest.py``) with a registered federation."""

from __future__ import annotations

from typing import Any

import pytest

from consent_testkit import Ledger
from numrep.server import RunningServer


@pytest.fixture
def ledger(server: RunningServer, federation: Any, connect: Any) -> Ledger:
    return Ledger(server, federation, connect)
