"""The default calling window is configurable (``NUMREP_CALLING_HOURS`` /
``ServerConfig.calling_hours``) and defaults to 08:00-21:00 every day."""

from __future__ import annotations

from pathlib import Path

import pytest

from consent_testkit import CALLEE, CALLER, NEW_YORK, SATURDAY, WEDNESDAY, at_local
from numrep.config import ServerConfig
from numrep.core.errors import InvalidArgument
from numrep.server import build_exchange


@pytest.fixture
def open_ledger():
    """``open_ledger(config)``: the consent ledger the exchange builds from ``config``; closed after the test."""
    opened = []

    def make(config: ServerConfig):
        exchange = build_exchange(config)
        opened.append(exchange)
        return exchange.consent

    yield make
    for exchange in opened:
        exchange.consent.store.close()
        exchange.store.close()


def test_without_configuration_the_default_window_is_eight_to_nine_every_day(tmp_path: Path, open_ledger):
    ledger = open_ledger(ServerConfig(data_dir=tmp_path))

    assert ledger.state_for(CALLER, CALLEE, at_local(NEW_YORK, SATURDAY, 8)).within_allowed_hours
    assert not ledger.state_for(CALLER, CALLEE, at_local(NEW_YORK, SATURDAY, 21)).within_allowed_hours


def test_the_environment_sets_another_default_window(tmp_path: Path, monkeypatch, open_ledger):
    monkeypatch.setenv("NUMREP_CALLING_HOURS", "mon-fri 10:00-16:00")
    ledger = open_ledger(ServerConfig.from_env(data_dir=tmp_path))

    assert ledger.policy.default_hours.describe() == "mon-fri 10:00-16:00"
    assert not ledger.state_for(CALLER, CALLEE, at_local(NEW_YORK, WEDNESDAY, 9)).within_allowed_hours
    assert ledger.state_for(CALLER, CALLEE, at_local(NEW_YORK, WEDNESDAY, 10)).within_allowed_hours
    assert not ledger.state_for(CALLER, CALLEE, at_local(NEW_YORK, SATURDAY, 12)).within_allowed_hours


def test_a_window_that_cannot_be_read_stops_the_exchange_from_starting(tmp_path):
    with pytest.raises(InvalidArgument) as refused:
        build_exchange(ServerConfig(data_dir=tmp_path, calling_hours="always"))

    assert refused.value.reason == "bad_hours"
