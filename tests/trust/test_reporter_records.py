"""A snapshot's reporter records: each app reporter's (agree, disagree), held
compactly by every serving process (a national app's users are millions), read
as a mapping by the reconciler, and written to JSON by app."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, strategies as st

from numrep.trust import TrustSnapshot
from numrep.trust.reporters import ReporterRecords

RECORDS = {("app-b", "r2"): (1.5, 0.0), ("app-a", "r9"): (0.25, 2.0), ("app-a", "r10"): (3.0, 1.0)}


def test_records_read_as_the_mapping_they_were_made_from() -> None:
    records = ReporterRecords.of(RECORDS)

    assert records == RECORDS
    assert records[("app-a", "r9")] == (0.25, 2.0)
    assert records.get(("app-a", "r1"), (0.0, 0.0)) == (0.0, 0.0)
    assert records.get(("app-c", "r2")) is None
    assert list(records) == [("app-a", "r10"), ("app-a", "r9"), ("app-b", "r2")]  # by app, then reporter
    assert len(records) == 3
    with pytest.raises(KeyError):
        records[("app-b", "r9")]


def test_records_are_written_by_app_and_read_back() -> None:
    records = ReporterRecords.of(RECORDS)

    body = records.to_json_body()

    assert body == {"app-a": [["r10", "r9"], [3.0, 0.25], [1.0, 2.0]], "app-b": [["r2"], [1.5], [0.0]]}
    assert ReporterRecords(json.loads(json.dumps(body))) == RECORDS


def test_a_snapshot_stored_before_records_went_by_app_still_loads() -> None:
    body = json.loads(TrustSnapshot(epoch=3, fitted_at=None, base_probability=0.2, class_prior=0.2,
                                    reporters=ReporterRecords.of(RECORDS)).to_json())
    body["reporters"] = [[app, rep, a, d] for (app, rep), (a, d) in sorted(RECORDS.items())]  # the earlier layout

    assert TrustSnapshot.from_json(json.dumps(body)).reporters == RECORDS


keys = st.tuples(st.sampled_from(["app-a", "app-b", "app-a/x"]), st.text(min_size=1, max_size=6))
floats = st.floats(min_value=0, max_value=1e6, allow_nan=False)


@given(st.dictionaries(keys, st.tuples(floats, floats), max_size=30), keys)
def test_records_answer_every_key_as_a_dict_would(records: dict, probe: tuple[str, str]) -> None:
    compact = ReporterRecords.of(records)

    assert compact == records
    assert compact.get(probe) == records.get(probe)
    assert ReporterRecords(json.loads(json.dumps(compact.to_json_body()))) == records
