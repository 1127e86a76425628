"""AppFlagClient against a real exchange: pseudonymised reporters, de-duplication,
idempotent batches across retries and restarts, backoff, permanent errors."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
import pytest

from numrep.core.errors import RateLimited, StoreUnavailable
from numrep_client import AppFlagClient, FlagToSend, InvalidFlag, pseudonymize

from sdk_testkit import SPAM_NUMBER, SPAM_NUMBER_LOCAL

KEY = bytes(range(32))
USERS = ["alice@example.com", "bob@example.com", "carol@example.com"]


@pytest.fixture
def app(server, federation):
    clients = []

    def make(target: str | None = None, identity=None, **options):
        options.setdefault("sleep", lambda seconds: None)
        client = AppFlagClient(target or server.address, identity or federation.app, KEY, **options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def flag_count(connect, identity, number: str = SPAM_NUMBER) -> int:
    return connect(identity).lookup(number).flag_count


def store_down(call: int) -> None:
    raise StoreUnavailable("store is restarting")


def test_flags_reach_the_exchange_under_double_pseudonyms_only(app, federation, server, connect, store_evidence):
    client = app()
    queued = [client.flag(SPAM_NUMBER_LOCAL, "fraud.impersonation", user, comment="said he was the IRS") for user in USERS]
    assert {q.number for q in queued} == {SPAM_NUMBER}
    assert all(q.reporter_id == pseudonymize(KEY, user) for q, user in zip(queued, USERS))
    assert client.pending() == 3

    report = client.flush()
    assert (report.batches, report.sent, report.accepted, report.replayed, report.rejected) == (1, 3, 3, 0, {})
    assert report.ok and report.pending == 0 and client.pending() == 0
    assert flag_count(connect, federation.carrier) == 3

    stored = {reporter for reporter, _ in store_evidence.flag_rows(SPAM_NUMBER)}
    app_side = {pseudonymize(KEY, user) for user in USERS}
    assert len(stored) == 3
    assert stored.isdisjoint(USERS)  # never the raw id ...
    assert stored.isdisjoint(app_side)  # ... nor the app's pseudonym: the exchange hashed it again
    # The exchange received the app's pseudonyms: re-hashing them gives exactly what it stored.
    assert stored == {server.exchange.pseudonym("reporter", federation.app.participant_id, p) for p in app_side}
    # Nowhere in the exchange's files (SQLite database, WAL, ...) is a raw user id.
    for path in store_evidence.files():
        content = path.read_bytes()
        assert not any(user.encode() in content for user in USERS), path
    if store_evidence.backend == "sqlite":
        assert any(p.name.startswith("numrep.sqlite3") for p in store_evidence.files())


def test_duplicates_in_the_queue_keep_the_latest(app, store_evidence):
    client = app()
    early = datetime.now(timezone.utc) - timedelta(hours=2)
    late = early + timedelta(hours=1)
    client.flag(SPAM_NUMBER, "fraud.impersonation", "alice", comment="first", time=early)
    client.flag("(202) 555-0143", "fraud.impersonation", "alice", comment="second", time=late)
    client.flag(SPAM_NUMBER, "fraud.impersonation", "alice", comment="stale, arrived late", time=early)
    client.flag(SPAM_NUMBER, "marketing", "alice", comment="another category", time=late)
    assert client.pending() == 2

    report = client.flush()
    assert (report.sent, report.accepted, report.deduplicated) == (2, 2, 2)
    comments = {comment for _, comment in store_evidence.flag_rows(SPAM_NUMBER)}
    # one row per (app, reporter, number) on the exchange; the newest flag wins there too
    assert comments <= {"second", "another category"}
    assert "first" not in comments and "stale, arrived late" not in comments


def test_flag_refuses_bad_input_at_once(app):
    client = app()
    with pytest.raises(InvalidFlag) as caught:
        client.flag("12", "fraud", "alice")
    assert caught.value.reason == "invalid_number"
    with pytest.raises(InvalidFlag) as caught:
        client.flag(SPAM_NUMBER, "pizza", "alice")
    assert caught.value.reason == "unknown_category"
    with pytest.raises(InvalidFlag) as caught:
        client.flag(SPAM_NUMBER, "fraud", "")
    assert caught.value.reason == "bad_user_id"
    with pytest.raises(InvalidFlag) as caught:
        client.flag(SPAM_NUMBER, "fraud", "alice", comment="x" * 501)
    assert caught.value.reason == "comment_too_long"
    assert client.pending() == 0
    with pytest.raises(ValueError):
        AppFlagClient("127.0.0.1:1", client.identity, b"short")


def test_rejections_are_reported_per_reason(app):
    client = app()
    client.flag(SPAM_NUMBER, "fraud", "alice")
    client.flag(SPAM_NUMBER, "fraud", "bob", time=datetime.now(timezone.utc) - timedelta(days=400))
    client.flag(SPAM_NUMBER, "fraud", "carol", time=datetime.now(timezone.utc) + timedelta(hours=1))
    report = client.flush()
    assert report.accepted == 1
    assert report.rejected == {"too_old": 1, "time_in_future": 1}
    assert report.rejected_total == 2 and report.pending == 0


def test_flags_are_sent_in_batches_of_batch_size(app, federation, connect):
    client = app(batch_size=3)
    for i in range(7):
        client.flag(SPAM_NUMBER, "fraud", f"user-{i}")
    report = client.flush()
    assert report.batches == 3 and len(set(report.batch_ids)) == 3
    assert report.accepted == 7
    assert flag_count(connect, federation.carrier) == 7
    assert client.flush().batches == 0  # nothing left


def test_a_prolific_reporter_is_spread_over_batches(app, federation, connect):
    client = app(batch_size=100)
    numbers = [f"+1212555{1000 + i:04d}" for i in range(120)]
    for number in numbers:
        client.flag(number, "marketing.robocall", "power-user")
    for i in range(30):
        client.flag(SPAM_NUMBER, "fraud", f"user-{i}")
    report = client.flush()
    assert report.rejected == {} and report.accepted == 150
    assert report.batches == 3  # 120 flags of one reporter: at most 50 per batch
    assert connect(federation.carrier).lookup(numbers[-1]).flag_count == 1


# --- idempotency ------------------------------------------------------------------------------
def test_the_same_batch_id_twice_is_counted_once(federation, connect):
    app_client = connect(federation.app)
    flags = [FlagToSend(SPAM_NUMBER, "fraud", pseudonymize(KEY, user)) for user in USERS]
    first = app_client.submit_flags(flags, batch_id="batch-0001")
    assert (first.accepted, first.replayed_batch) == (3, False)
    count = flag_count(connect, federation.carrier)
    assert count == 3

    second = app_client.submit_flags(flags, batch_id="batch-0001")
    assert second.replayed_batch and second.accepted == 0
    assert {r.reason for r in second.results} == {"replayed_batch"}
    assert flag_count(connect, federation.carrier) == count


def test_a_retry_after_a_lost_answer_reuses_the_batch_id_and_counts_once(app, federation, connect, exchange_faults):
    # The first attempt is stored, but its answer is lost (the exchange answers
    # after the client's timeout); the retry must carry the same batch id.
    # (a timeout generous enough that the retry itself never times out on a loaded machine)
    exchange_faults.wrap("submit_flags", after=lambda n: time.sleep(3.0) if n == 1 else None)
    delays: list[float] = []
    client = app(timeout=1.5, sleep=delays.append, rng=lambda: 0.5, backoff_base=0.2)
    for user in USERS:
        client.flag(SPAM_NUMBER, "fraud.impersonation", user)
    report = client.flush()
    assert report.retries == 1 and len(delays) == 1
    assert (report.sent, report.accepted, report.replayed, report.replayed_batches) == (3, 0, 3, 1)
    assert report.delivered == 3 and report.pending == 0
    assert exchange_faults.calls["submit_flags"] == 2
    assert flag_count(connect, federation.carrier) == 3


def test_transient_errors_are_retried_with_exponential_backoff(app, federation, connect, exchange_faults):
    exchange_faults.wrap("submit_flags", before=lambda n: store_down(n) if n <= 3 else None)
    delays: list[float] = []
    client = app(max_retries=5, sleep=delays.append, rng=lambda: 0.0, backoff_base=0.1, backoff_max=10)
    client.flag(SPAM_NUMBER, "fraud", "alice")
    report = client.flush()
    assert report.accepted == 1 and report.retries == 3 and report.ok
    assert delays == pytest.approx([0.05, 0.1, 0.2])  # base * 2**n, times the jitter factor 0.5 + rng/2


def test_jitter_spreads_the_delays(app, exchange_faults):
    exchange_faults.wrap("submit_flags", before=lambda n: store_down(n) if n <= 2 else None)
    delays: list[float] = []
    values = iter([0.9, 0.1])
    client = app(sleep=delays.append, rng=lambda: next(values), backoff_base=1.0)
    client.flag(SPAM_NUMBER, "fraud", "alice")
    assert client.flush().ok
    assert delays == pytest.approx([0.95, 1.1])


def test_a_rate_limited_app_waits_as_long_as_the_exchange_asks(app, exchange_faults):
    def over_rate(call: int) -> None:
        if call == 1:
            raise RateLimited("blocker-app is over its rate of 5000 flags/s; retry in 0.750 s", 0.75)

    exchange_faults.wrap("submit_flags", before=over_rate)
    delays: list[float] = []
    client = app(sleep=delays.append, rng=lambda: 0.0, backoff_base=0.1)
    client.flag(SPAM_NUMBER, "fraud", "alice")
    report = client.flush()
    assert report.ok and report.retries == 1
    assert delays == pytest.approx([0.75])  # not the 0.05 s its own backoff would have chosen


def test_gives_up_after_max_retries_and_keeps_the_batch(app, dead_target):
    delays: list[float] = []
    client = app(dead_target, max_retries=2, sleep=delays.append)
    client.flag(SPAM_NUMBER, "fraud", "alice")
    report = client.flush()
    assert report.retries == 2 and len(delays) == 2
    assert report.error_code == "UNAVAILABLE" and report.pending == 1 and not report.ok
    [batch] = client.sealed_batches()
    assert batch.attempts == 3
    assert client.flush().batch_ids == []  # still failing; same batch kept
    assert client.sealed_batches()[0].batch_id == batch.batch_id


def test_permanent_errors_stop_the_flush_without_retrying(app, federation):
    client = app(identity=federation.carrier)  # a carrier may not submit flags
    client.flag(SPAM_NUMBER, "fraud", "alice")
    report = client.flush()
    assert report.error_code == "PERMISSION_DENIED" and report.retries == 0
    assert report.pending == 1
    [batch] = client.sealed_batches()
    assert client.discard(batch.batch_id) == 1 and client.pending() == 0


# --- the durable spool ------------------------------------------------------------------------
def test_queued_flags_survive_a_restart(app, federation, connect, tmp_path):
    spool = tmp_path / "app" / "flags.sqlite3"
    first = app(spool_path=spool)
    for user in USERS:
        first.flag(SPAM_NUMBER, "fraud", user)
    first.flag(SPAM_NUMBER, "fraud", USERS[0], comment="again")  # de-duplicated in the spool too
    first.close()

    second = app(spool_path=spool)
    assert second.pending() == 3
    report = second.flush()
    assert report.accepted == 3 and report.pending == 0
    assert flag_count(connect, federation.carrier) == 3
    assert app(spool_path=spool).pending() == 0


def test_a_batch_id_survives_a_restart_so_the_resend_counts_once(app, federation, connect, exchange_faults, tmp_path):
    spool = tmp_path / "app" / "flags.sqlite3"
    # The exchange stores the batch but the app never hears back (it answers UNAVAILABLE).
    exchange_faults.wrap("submit_flags", after=store_down)
    crashed = app(spool_path=spool, max_retries=1)
    for user in USERS:
        crashed.flag(SPAM_NUMBER, "fraud", user)
    report = crashed.flush()
    assert report.error_code == "UNAVAILABLE" and report.pending == 3
    [batch] = crashed.sealed_batches()
    crashed.close()
    assert flag_count(connect, federation.carrier) == 3  # stored by the lost attempts
    exchange_faults.restore("submit_flags")

    restarted = app(spool_path=spool)
    assert [b.batch_id for b in restarted.sealed_batches()] == [batch.batch_id]
    assert restarted.sealed_batches()[0].attempts == 2
    report = restarted.flush()
    assert report.batch_ids == [batch.batch_id]
    assert (report.accepted, report.replayed, report.replayed_batches) == (0, 3, 1)
    assert flag_count(connect, federation.carrier) == 3


def test_the_spool_holds_no_raw_user_ids_and_refuses_another_key(app, federation, tmp_path):
    spool = tmp_path / "app" / "flags.sqlite3"
    client = app(spool_path=spool)
    for user in USERS:
        client.flag(SPAM_NUMBER, "fraud", user)
    client.close()
    for path in spool.parent.glob("flags.sqlite3*"):
        assert not any(user.encode() in path.read_bytes() for user in USERS)
    with pytest.raises(ValueError, match="pseudonym key"):
        AppFlagClient("127.0.0.1:1", federation.app, b"another key of 32 bytes.........", spool_path=spool)
    with pytest.raises(ValueError, match="app identity"):
        AppFlagClient("127.0.0.1:1", federation.handset, KEY, spool_path=spool)
