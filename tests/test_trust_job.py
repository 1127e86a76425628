"""A serving exchange refits its learned trust in a process of its own
(``numrep.trust_job``): the fit and the recompute of every stored verdict hold
the GIL for seconds to minutes, which on the serving process's threads would
stand in every call's way. The server then serves the epoch the job stored."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import grpc
import pytest

from numrep.config import ServerConfig
from numrep.core.errors import StoreUnavailable
from numrep.core.model import Role
from numrep.exchange import Exchange
from numrep.server import RunningServer, build_exchange, start_server
from numrep.signing.keys import Identity, generate_identity
from numrep.signing.labels import sign_label
from numrep.store.sqlite import DB_FILE
from numrep.trust_job import RefitJob

from numrep_client import ExchangeClient, ExchangeError
from numrep_testkit import ROLE_PB, empty_keyspace, numbers, public_jwk_text

SPAM = numbers(20, start=100)


@pytest.fixture
def never_in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """A refit run by the serving process (this one) fails the test; the job is a process of its own."""
    def refit_here(self: Exchange) -> Any:
        raise AssertionError("the serving process ran the refit itself")

    monkeypatch.setattr(Exchange, "refit_trust", refit_here)


@pytest.fixture
def never_rewritten_here(monkeypatch: pytest.MonkeyPatch) -> None:
    """A verdict rewritten by the serving process (this one) fails the test: on SQLite the job rewrites them."""
    def rewrite_here(self: Exchange, numbers: Any) -> int:
        raise AssertionError("the serving process rewrote verdicts the job listed")

    monkeypatch.setattr(Exchange, "rewrite_stale", rewrite_here)


def serve(loop_thread: Any, config: ServerConfig) -> RunningServer:
    return loop_thread.run(start_server(config))


def with_history(running: RunningServer) -> tuple[ExchangeClient, Identity]:
    """The regulator confirmed 20 fraud numbers, which a carrier labelled too; the regulator's client."""
    regulator = generate_identity("ftc", Role.REGULATOR, "EdDSA")
    carrier = generate_identity("carrier-north", Role.CARRIER, "EdDSA")
    running.exchange.register_participant("ftc", Role.REGULATOR, "Regulator", [public_jwk_text(regulator)])
    client = ExchangeClient(running.address, regulator, timeout=120)
    client.register_participant("carrier-north", ROLE_PB[Role.CARRIER], [public_jwk_text(carrier)], "North")
    client.publish([sign_label(regulator, n, "fraud") for n in SPAM])
    with ExchangeClient(running.address, carrier) as north:
        north.publish([sign_label(carrier, n, "fraud", 0.9) for n in SPAM])
    return client, carrier


@pytest.fixture
def sqlite_server(loop_thread: Any, tmp_path: Path) -> Iterator[RunningServer]:
    running = serve(loop_thread, ServerConfig(listen="127.0.0.1:0", data_dir=tmp_path / "exchange", trust_refit_seconds=0))
    yield running
    loop_thread.run(running.stop(0))


def test_a_refit_asked_for_runs_beside_the_server_which_then_serves_its_epoch(sqlite_server, never_in_process, never_rewritten_here):
    regulator, carrier = with_history(sqlite_server)

    report = regulator.refit_trust()

    assert (report.epoch, report.verdicts_changed) == (1, len(SPAM))
    assert sqlite_server.exchange.trust_snapshot().epoch == 1
    assert {sqlite_server.exchange.store.get_verdict(n).trust_epoch for n in SPAM} == {1}  # rewritten by the job
    with ExchangeClient(sqlite_server.address, carrier) as north:
        assert north.lookup(SPAM[0]).trust_epoch == 1
    regulator.close()


def test_a_scheduled_refit_runs_beside_the_server_too(loop_thread, tmp_path, never_in_process):
    config = ServerConfig(listen="127.0.0.1:0", data_dir=tmp_path / "exchange", trust_refit_seconds=0.5, trust_reload_seconds=0.2)
    running = serve(loop_thread, config)
    try:
        regulator, _ = with_history(running)
        deadline = time.monotonic() + 60
        while running.exchange.trust_snapshot().labels < 2 * len(SPAM) and time.monotonic() < deadline:
            time.sleep(0.2)  # an epoch fitted before the last label came is followed by another
        assert running.exchange.trust_snapshot().labels == 2 * len(SPAM)
        regulator.close()
    finally:
        loop_thread.run(running.stop(0))


def test_a_job_that_fails_is_an_error_with_its_reason_and_the_epoch_served_stays(sqlite_server, monkeypatch):
    regulator, _ = with_history(sqlite_server)
    monkeypatch.setenv("NUMREP_PSEUDONYM_SECRET", "not hex")  # the job cannot build its exchange

    with pytest.raises(ExchangeError) as refused:
        regulator.refit_trust()

    assert refused.value.code == grpc.StatusCode.INTERNAL
    assert "trust refit process ended with exit status 1" in refused.value.details
    assert sqlite_server.exchange.trust_snapshot().epoch == 0
    monkeypatch.delenv("NUMREP_PSEUDONYM_SECRET")
    assert regulator.refit_trust().epoch == 1
    regulator.close()


def test_a_job_that_cannot_open_its_store_raises_the_stores_error(loop_thread, sqlite_server, tmp_path):
    blocked = tmp_path / "job"
    (blocked / DB_FILE).mkdir(parents=True)  # a directory where the store's file should be
    job = RefitJob(ServerConfig(data_dir=blocked), sqlite_server.exchange)

    with pytest.raises(StoreUnavailable, match="cannot open the store"):
        loop_thread.run(job.refit())

    assert sqlite_server.exchange.trust_snapshot().epoch == 0


def test_a_scheduled_refit_that_fails_is_tried_again_after_a_pause_not_at_once(loop_thread, tmp_path, monkeypatch, caplog):
    async def failing(self: RefitJob) -> Any:  # at once, so the pause between attempts is all the server's
        raise StoreUnavailable("the store is down", "store_down")

    monkeypatch.setattr(RefitJob, "_one", failing)
    running = serve(loop_thread, ServerConfig(listen="127.0.0.1:0", data_dir=tmp_path / "exchange", trust_refit_seconds=1.0))
    try:
        with caplog.at_level(logging.WARNING, logger="numrep.trust_job"):
            deadline = time.monotonic() + 60
            while len(_failed_refits(caplog)) < 3 and time.monotonic() < deadline:
                time.sleep(0.1)
    finally:
        loop_thread.run(running.stop(0))

    attempts = _failed_refits(caplog)
    assert len(attempts) >= 3
    gaps = [later.created - earlier.created for earlier, later in zip(attempts, attempts[1:])]
    assert min(gaps) >= 0.9, gaps  # the refit interval (1 s) apart, not a loop tick (0.05 s)
    assert running.exchange.trust_snapshot().epoch == 0


def _failed_refits(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "numrep.trust_job" and "refit failed" in r.getMessage()]


def test_a_job_whose_epoch_the_server_cannot_serve_is_ended_not_left_waiting(loop_thread, sqlite_server, monkeypatch):
    regulator, _ = with_history(sqlite_server)

    def unavailable(self: Exchange) -> None:
        raise StoreUnavailable("the store went away", "store_down")

    monkeypatch.setattr(Exchange, "serve_latest_trust", unavailable)
    with pytest.raises(ExchangeError) as refused:
        regulator.refit_trust()

    assert refused.value.code == grpc.StatusCode.UNAVAILABLE
    assert _refit_jobs_of_this_process() == []
    regulator.close()


def _refit_jobs_of_this_process() -> list[int]:
    jobs = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            command = (stat.parent / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue  # ended meanwhile
        if parent == os.getpid() and b"numrep.trust_job" in command:
            jobs.append(int(stat.parent.name))
    return jobs


def test_refits_asked_while_one_runs_share_the_next_job(loop_thread, sqlite_server):
    with_history(sqlite_server)[0].close()
    jobs = sqlite_server._refits

    async def ask() -> list[int]:
        first = asyncio.ensure_future(jobs.refit())
        while jobs._running is None and not first.done():
            await asyncio.sleep(0.01)  # until the first job has begun
        later = [asyncio.ensure_future(jobs.refit()) for _ in range(3)]
        return [snapshot.epoch for snapshot, _ in await asyncio.gather(first, *later)]

    assert loop_thread.run(ask(), timeout=300) == [1, 2, 2, 2]
    assert sqlite_server.exchange.trust_snapshot().epoch == 2


def test_a_stopping_server_starts_no_new_refit(loop_thread, sqlite_server):
    sqlite_server._refits.stop()

    with pytest.raises(StoreUnavailable, match="stopping"):
        loop_thread.run(sqlite_server._refits.refit())


def test_the_job_lists_stale_verdicts_and_the_server_rewrites_them_from_the_evidence_it_has_then(tmp_path):
    # The job reads every verdict's evidence long before the server rewrites what it listed. A label
    # retracted in between (a redress, say) must stay out of the verdict.
    exchange = build_exchange(ServerConfig(data_dir=tmp_path / "exchange"))
    regulator = generate_identity("ftc", Role.REGULATOR, "EdDSA")
    carrier = generate_identity("carrier-north", Role.CARRIER, "EdDSA")
    exchange.register_participant("ftc", Role.REGULATOR, "Regulator", [public_jwk_text(regulator)])
    exchange.register_participant("carrier-north", Role.CARRIER, "North", [public_jwk_text(carrier)])
    exchange.publish(exchange.participant("ftc"), [sign_label(regulator, n, "fraud") for n in SPAM[1:]])
    exchange.publish(exchange.participant("carrier-north"), [sign_label(carrier, n, "fraud", 0.9, jti=f"x{i}") for i, n in enumerate(SPAM)])
    before = {n: exchange.store.get_verdict(n) for n in SPAM}
    exchange.fit_trust()

    stale = [n for batch in exchange.stale_verdicts(batch=7) for n in batch]

    assert sorted(stale) == sorted(SPAM)
    assert {n: exchange.store.get_verdict(n) for n in SPAM} == before  # listing writes nothing
    exchange.retract(exchange.participant("carrier-north"), ["carrier-north/x0"])

    assert exchange.rewrite_stale(stale) == len(SPAM) - 1  # the retraction's own recompute already used the new epoch
    assert exchange.store.get_verdict(SPAM[0]).contributions == ()
    assert all(exchange.store.get_verdict(n).trust_epoch == 1 for n in SPAM)
    exchange.store.close()


def test_the_job_looks_at_verdicts_only_once_the_server_serves_its_epoch(tmp_path):
    # Until the server serves the new epoch its own writes use the old one: a verdict the job
    # found current before then could be overwritten by one of the old epoch and stay so.
    exchange = build_exchange(ServerConfig(data_dir=tmp_path / "exchange"))
    regulator = generate_identity("ftc", Role.REGULATOR, "EdDSA")
    exchange.register_participant("ftc", Role.REGULATOR, "Regulator", [public_jwk_text(regulator)])
    exchange.publish(exchange.participant("ftc"), [sign_label(regulator, n, "fraud") for n in SPAM])
    exchange.store.close()
    job = [sys.executable, "-m", "numrep.trust_job", "--data-dir", str(tmp_path / "exchange")]

    unanswered = subprocess.run(job, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
    answered = subprocess.run(job, input="served\n", capture_output=True, text=True, timeout=120)

    assert unanswered.returncode == 3 and [json.loads(line) for line in unanswered.stdout.splitlines()] == [{"stored": 1}]
    said = [json.loads(line) for line in answered.stdout.splitlines()]
    assert answered.returncode == 0, answered.stderr
    assert said[0] == {"stored": 2} and said[-1] == {"epoch": 2, "stale": len(SPAM)}
    assert sum(s["rewrote"] for s in said[1:-1]) == len(SPAM)  # SQLite: rewritten by the job itself
    store = build_exchange(ServerConfig(data_dir=tmp_path / "exchange")).store
    assert {store.get_verdict(n).trust_epoch for n in SPAM} == {2}
    store.close()


def test_the_server_says_it_serves_an_epoch_only_once_its_writes_from_the_older_one_have_landed(tmp_path):
    # A verdict reconciled with the old epoch and stored after the job began to look would stay so.
    exchange, job = (build_exchange(ServerConfig(data_dir=tmp_path / "exchange")) for _ in range(2))
    job.fit_trust()  # epoch 1, stored
    job.store.close()
    landed: list[str] = []
    reconciling, release = threading.Event(), threading.Event()

    def old_epoch_rewrite(stored: Any, evidence: Any) -> list:
        reconciling.set()
        release.wait(30)
        return []

    writer = threading.Thread(target=lambda: (exchange.store.rewrite_verdicts(SPAM[:1], old_epoch_rewrite), landed.append("write")))
    writer.start()
    reconciling.wait(30)
    server = threading.Thread(target=lambda: (exchange.serve_latest_trust(), landed.append("served")))
    server.start()
    server.join(1.0)
    release.set()
    writer.join(30)
    server.join(30)

    assert landed == ["write", "served"]
    assert exchange.trust_snapshot().epoch == 1
    exchange.store.close()


@pytest.mark.cassandra
def test_a_server_on_cassandra_refits_beside_itself_on_the_same_keyspace(loop_thread, tmp_path, e2e_cassandra, never_in_process):
    empty_keyspace(e2e_cassandra._session, e2e_cassandra.keyspace)
    store = f"cassandra://{os.environ['NUMREP_TEST_CASSANDRA']}/{e2e_cassandra.keyspace}?lag=0"
    running = serve(loop_thread, ServerConfig(listen="127.0.0.1:0", data_dir=tmp_path / "exchange", store=store, trust_refit_seconds=0))
    try:
        regulator, _ = with_history(running)

        report = regulator.refit_trust()

        assert (report.epoch, report.verdicts_changed) == (1, len(SPAM))
        assert e2e_cassandra.latest_trust_epoch() == 1
        assert running.exchange.trust_snapshot().epoch == 1
        regulator.close()
    finally:
        loop_thread.run(running.stop(0))
