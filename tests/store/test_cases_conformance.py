"""The case store contract (``numrep.store.cases_base.CaseStore``) as
specifications every backend meets. Each test runs against every backend (see
``conftest.py``) on a fresh, empty store: the case store beside it."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from numrep.core.cases import Case, CaseConfig, CaseKind, CaseRecord, CaseStatus, Particulars, new_case, whole_millis
from numrep.core.errors import AlreadyExists, InvalidArgument
from numrep.store.base import Store
from numrep.store.cases_base import CaseStore
from numrep.store.factory import case_store_for

NUMBER = "+12025550143"
OTHER = "+12025550188"
NOW = whole_millis(datetime.now(timezone.utc))
CONFIG = CaseConfig()


@pytest.fixture
def store_options() -> dict:
    """A keyspace per test means a dozen schema changes per test, which a busy
    shared node can take longer than the driver's default 5 s to agree on."""
    return {"request_timeout": 30.0}


@pytest.fixture
def cases(store: Store) -> CaseStore:
    found = case_store_for(store)
    yield found
    found.close()


def complaint(filed_at: datetime = NOW, number: str = NUMBER, text: str = "they called at 3 am") -> CaseRecord:
    case = new_case(CaseKind.COMPLAINT, number, "fraud.impersonation", filed_at, CONFIG, occurred_at=filed_at - timedelta(hours=2))
    return CaseRecord(case, Particulars(text=text, filed_by="a1b2c3", filed_via="blocker-app"))


def dispute(label_ids: tuple[str, ...], filed_at: datetime = NOW, number: str = NUMBER) -> CaseRecord:
    case = new_case(CaseKind.DISPUTE, number, "", filed_at, CONFIG, label_ids=label_ids)
    return CaseRecord(case, Particulars(contact="owner@example.org", evidence="we are the town's clinic"))


def ids(records: list[CaseRecord]) -> list[str]:
    return [r.case_id for r in records]


def test_a_stored_case_reads_back_with_its_particulars(cases):
    record = complaint()
    cases.add_case(record)

    assert cases.get_case(record.case_id) == record


def test_a_dispute_reads_back_with_its_labels_in_order(cases):
    record = dispute(("carrier-north/b", "app-x/a", "carrier-north/a"))
    cases.add_case(record)

    assert cases.get_case(record.case_id) == record


def test_an_unknown_case_id_reads_as_none(cases):
    assert cases.get_case("no-such-case") is None


def test_adding_a_taken_case_id_is_already_exists_and_keeps_the_first(cases):
    first = complaint()
    cases.add_case(first)
    second = replace(first, particulars=Particulars(text="something else"))

    with pytest.raises(AlreadyExists):
        cases.add_case(second)

    assert cases.get_case(first.case_id) == first


def test_resolving_an_open_case_sets_status_time_and_outcome(cases):
    record = complaint()
    cases.add_case(record)
    at = NOW + timedelta(days=2)

    assert cases.resolve_case(record.case_id, CaseStatus.CONFIRMED, at, "Confirmed; the carrier was told.")

    stored = cases.get_case(record.case_id)
    assert stored.case == replace(record.case, status=CaseStatus.CONFIRMED, resolved_at=at, outcome="Confirmed; the carrier was told.")
    assert stored.particulars == record.particulars


def test_a_case_resolves_once(cases):
    record = complaint()
    cases.add_case(record)
    assert cases.resolve_case(record.case_id, CaseStatus.CONFIRMED, NOW, "yes")

    assert not cases.resolve_case(record.case_id, CaseStatus.REJECTED, NOW + timedelta(seconds=1), "no")

    stored = cases.get_case(record.case_id).case
    assert (stored.status, stored.outcome, stored.resolved_at) == (CaseStatus.CONFIRMED, "yes", NOW)


def test_resolving_an_unknown_case_changes_nothing(cases):
    assert not cases.resolve_case("no-such-case", CaseStatus.REJECTED, NOW, "no")
    assert cases.list_cases() == []


def test_two_concurrent_resolutions_of_one_case_have_one_winner(cases):
    record = dispute(("carrier-north/a",))
    cases.add_case(record)
    results: dict[CaseStatus, bool] = {}
    barrier = threading.Barrier(2)

    def resolve(status: CaseStatus) -> None:
        barrier.wait()
        results[status] = cases.resolve_case(record.case_id, status, NOW, status.value)

    threads = [threading.Thread(target=resolve, args=(s,)) for s in (CaseStatus.UPHELD, CaseStatus.REJECTED)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    [winner] = [s for s, won in results.items() if won]
    assert cases.get_case(record.case_id).case.status is winner
    assert ids(cases.list_cases(status=winner)) == [record.case_id]
    assert cases.list_cases(status=CaseStatus.OPEN) == []
    loser = ({CaseStatus.UPHELD, CaseStatus.REJECTED} - {winner}).pop()
    assert cases.list_cases(status=loser) == []


def test_open_cases_list_oldest_first_and_closed_cases_newest_first(cases):
    # Filed across three calendar months, so a bucketed backend walks its buckets.
    times = [NOW - timedelta(days=70), NOW - timedelta(days=35), NOW - timedelta(days=1), NOW]
    records = [complaint(t) for t in times]
    for r in records:
        cases.add_case(r)
    for r in records[:2]:
        cases.resolve_case(r.case_id, CaseStatus.REJECTED, NOW, "not substantiated")

    assert ids(cases.cases_with(CaseKind.COMPLAINT, CaseStatus.OPEN, None)) == ids(records[2:])
    assert ids(cases.cases_with(CaseKind.COMPLAINT, CaseStatus.REJECTED, None)) == ids(records[:2])[::-1]
    assert ids(cases.list_cases()) == [records[2].case_id, records[3].case_id, records[1].case_id, records[0].case_id]


def test_a_list_stops_at_its_limit(cases):
    records = [complaint(NOW - timedelta(minutes=i)) for i in range(5)]
    for r in records:
        cases.add_case(r)

    oldest_two = ids(cases.cases_with(CaseKind.COMPLAINT, CaseStatus.OPEN, 2))

    assert oldest_two == [records[4].case_id, records[3].case_id]
    assert ids(cases.list_cases(limit=3)) == [records[4].case_id, records[3].case_id, records[2].case_id]


def test_lists_filter_by_kind_and_status(cases):
    c_open, c_done, d_open, d_done = complaint(), complaint(), dispute(("carrier-north/a",)), dispute(("carrier-north/b",))
    for r in (c_open, c_done, d_open, d_done):
        cases.add_case(r)
    cases.resolve_case(c_done.case_id, CaseStatus.CONFIRMED, NOW, "confirmed")
    cases.resolve_case(d_done.case_id, CaseStatus.UPHELD, NOW, "upheld")

    assert set(ids(cases.list_cases(kind=CaseKind.COMPLAINT))) == {c_open.case_id, c_done.case_id}
    assert ids(cases.list_cases(kind=CaseKind.DISPUTE, status=CaseStatus.OPEN)) == [d_open.case_id]
    assert ids(cases.list_cases(status=CaseStatus.CONFIRMED)) == [c_done.case_id]
    assert ids(cases.list_cases(status=CaseStatus.UPHELD)) == [d_done.case_id]
    assert cases.list_cases(kind=CaseKind.COMPLAINT, status=CaseStatus.UPHELD) == []
    assert len(cases.list_cases()) == 4


@pytest.mark.parametrize("limit", [0, -1, 1001])
def test_a_list_limit_out_of_range_is_invalid(cases, limit):
    with pytest.raises(InvalidArgument):
        cases.list_cases(limit=limit)


def test_a_publisher_sees_only_disputes_linked_to_its_labels_newest_first(cases):
    older = dispute(("carrier-north/a", "blocker-app/x"), NOW - timedelta(hours=1))
    newer = dispute(("carrier-north/b",), NOW, OTHER)
    theirs = dispute(("carrier-south/c",))
    cases.add_case(complaint())
    for r in (older, newer, theirs):
        cases.add_case(r)

    assert ids(cases.disputes_for_publisher("carrier-north", 10)) == [newer.case_id, older.case_id]
    assert ids(cases.disputes_for_publisher("blocker-app", 10)) == [older.case_id]
    assert ids(cases.disputes_for_publisher("carrier-north", 1)) == [newer.case_id]
    assert cases.disputes_for_publisher("nobody", 10) == []


def test_a_resolved_dispute_still_shows_to_its_publishers_with_its_outcome(cases):
    record = dispute(("carrier-north/a",))
    cases.add_case(record)
    cases.resolve_case(record.case_id, CaseStatus.REJECTED, NOW, "labels stand")

    [seen] = cases.disputes_for_publisher("carrier-north", 10)

    assert (seen.case.status, seen.case.outcome) == (CaseStatus.REJECTED, "labels stand")


def test_case_values_are_not_shared_between_fresh_stores(make_store, store_options):
    first, second = case_store_for(make_store(**store_options)), case_store_for(make_store(**store_options))
    try:
        record = complaint()
        first.add_case(record)
        assert second.get_case(record.case_id) is None
    finally:
        first.close()
        second.close()


def test_a_case_keeps_an_absent_occurred_at_as_none(cases):
    case: Case = new_case(CaseKind.COMPLAINT, NUMBER, "marketing", NOW, CONFIG)
    record = CaseRecord(case, Particulars(text="robocall"))
    cases.add_case(record)

    assert cases.get_case(case.case_id).case.occurred_at is None
