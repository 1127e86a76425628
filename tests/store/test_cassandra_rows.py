"""Rows from the Cassandra driver: the same rows as the driver's default factory,
without a new class per response."""

from __future__ import annotations

from hypothesis import given, strategies as st
from cassandra.query import named_tuple_factory

from numrep.store.cassandra_rows import named_rows

column_names = st.lists(st.one_of(st.sampled_from(["[applied]", "body", "count(*)", "number", "class", "_x", "1st"]),
                                  st.text(min_size=1, max_size=12)), min_size=1, max_size=6)


@given(column_names, st.integers(min_value=0, max_value=3))
def test_rows_are_the_drivers_named_tuples(names: list[str], count: int) -> None:
    rows = [tuple(f"{r}-{c}" for c in range(len(names))) for r in range(count)]
    ours, theirs = named_rows(names, rows), named_tuple_factory(names, rows)
    assert ours == theirs
    for mine, driver in zip(ours, theirs):
        assert mine._fields == driver._fields
        assert [getattr(mine, f) for f in mine._fields] == [getattr(driver, f) for f in driver._fields]


def test_one_class_serves_every_response_with_the_same_columns() -> None:
    first = named_rows(["[applied]", "number"], [(True, "+12025550143")])
    second = named_rows(["[applied]", "number"], [(False, "+12025550144")])
    assert type(first[0]) is type(second[0])
    assert (first[0].applied, second[0].applied) == (True, False)
    assert named_rows(["body"], []) == []
