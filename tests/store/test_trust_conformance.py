"""The store contract's learned-trust part: what a refit reads (every live label,
every flag, every number with a verdict), a number's individual flags, and the
trust snapshots each epoch leaves behind. Runs against every backend."""

from __future__ import annotations

from datetime import timedelta

from numrep.core.model import Action, FlagVote, LabelVote
from numrep.store.base import Store

from test_conformance import NOW, NUMBER, OTHER, flag, label, numbers, verdict


def test_a_numbers_flags_come_back_one_per_app_and_reporter(store: Store) -> None:
    early, late = NOW - timedelta(hours=2), NOW - timedelta(minutes=5)
    store.add_flags("app-a", "b1", [flag("r1", "fraud", early), flag("r2", "marketing", early, comment="loans")], NOW)
    store.add_flags("app-a", "b2", [flag("r1", "legitimate", late)], NOW)  # a reporter's newer flag replaces its older one
    store.add_flags("app-b", "b1", [flag("r1", "fraud", late, app="app-b"), flag("r9", "fraud", late, number=OTHER)], NOW)

    got = store.flags_of(NUMBER)

    assert [(f.app_id, f.reporter, f.category, f.time, f.comment) for f in got] == [
        ("app-a", "r1", "legitimate", late, ""),
        ("app-a", "r2", "marketing", early, "loans"),
        ("app-b", "r1", "fraud", late, ""),
    ]
    assert store.flags_of("+12025550000") == []


def test_a_label_scan_returns_every_live_labels_vote_once(store: Store) -> None:
    stored = [label(f"carrier-north/{i}", number=n, confidence=0.25 * (i % 4), issued_at=NOW - timedelta(hours=i))
              for i, n in enumerate(numbers(7))]
    store.add_labels(stored)
    store.retract_label("carrier-north/3", NOW)

    assert sorted(store.scan_label_votes()) == sorted(LabelVote.of(lb) for lb in stored if lb.id != "carrier-north/3")


def test_a_flag_scan_returns_every_flags_vote(store: Store) -> None:
    store.add_flags("app-a", "b1", [flag(f"r{i}", number=n) for i, n in enumerate(numbers(5))], NOW)
    store.add_flags("app-b", "b1", [flag("r0", "marketing", NOW - timedelta(minutes=3), app="app-b")], NOW)

    got = sorted(store.scan_flag_votes())

    assert got == sorted([FlagVote(n, "app-a", f"r{i}", "fraud", NOW.timestamp()) for i, n in enumerate(numbers(5))]
                         + [FlagVote(NUMBER, "app-b", "r0", "marketing", (NOW - timedelta(minutes=3)).timestamp())])


def test_scans_of_an_empty_store_are_empty(store: Store) -> None:
    assert list(store.scan_label_votes()) == []
    assert list(store.scan_flag_votes()) == []
    assert list(store.scan_verdict_numbers()) == []


def test_every_number_with_a_verdict_is_scanned_listed_or_not(store: Store) -> None:
    listed, allowed = numbers(4), numbers(3, start=500)
    store.put_verdicts([(verdict(n), ()) for n in listed])
    store.put_verdicts([(verdict(n, Action.ALLOW), ()) for n in allowed])

    assert sorted(store.scan_verdict_numbers()) == sorted(listed + allowed)


def test_a_trust_epoch_is_written_once_and_the_newest_is_read(store: Store) -> None:
    assert store.latest_trust_snapshot() is None
    assert store.latest_trust_epoch() is None

    assert store.put_trust_snapshot(1, '{"epoch": 1}', NOW) is True
    assert store.put_trust_snapshot(2, '{"epoch": 2}', NOW + timedelta(hours=1)) is True
    assert store.put_trust_snapshot(2, '{"epoch": 2, "other": "replica"}', NOW) is False

    assert store.latest_trust_snapshot() == (2, '{"epoch": 2}')
    assert store.latest_trust_epoch() == 2


def test_the_epochs_before_the_one_given_are_forgotten_and_the_rest_kept_whole(store: Store) -> None:
    for epoch in range(1, 6):
        store.put_trust_snapshot(epoch, f'{{"epoch": {epoch}}}', NOW + timedelta(hours=epoch))

    assert store.forget_trust_snapshots(4) == 3

    assert store.trust_epochs() == [5, 4]
    assert store.latest_trust_snapshot() == (5, '{"epoch": 5}')
    assert store.forget_trust_snapshots(4) == 0
    assert store.put_trust_snapshot(6, '{"epoch": 6}', NOW) is True
    assert store.trust_epochs() == [6, 5, 4]


def test_a_label_is_found_as_published_even_after_its_retraction(store: Store) -> None:
    published = label("carrier-north/7")
    store.add_labels([published])
    store.retract_label(published.id, NOW)

    assert store.get_label(published.id) is None
    assert store.label_as_published(published.id) == published
    assert store.label_as_published("carrier-north/unknown") is None


def test_a_snapshot_larger_than_one_cassandra_write_round_trips(store: Store) -> None:
    # A snapshot holds every app reporter's record: a national app's users make it tens of MB,
    # past what Cassandra takes in one write (half its 32 MiB commit log segment).
    reporters = ",".join(f'["blocker-app","{i:032x}",{i % 7}.25,0.5]' for i in range(300_000))
    body = f'{{"epoch": 1, "reporters": [{reporters}]}}'
    assert len(body) > 17 * 2**20

    assert store.put_trust_snapshot(1, body, NOW) is True

    assert store.latest_trust_snapshot() == (1, body)
