"""How rows come back from the Cassandra driver.

The driver's default row factory (``named_tuple_factory``) builds a new named
tuple class for every response: about 70 us of CPU here, on every single-row
read of the lookup path. ``named_rows`` gives the same rows (the driver's own
column-name cleaning, attribute and index access) from one class per column
list. The driver's ``ResultSet.was_applied`` refuses any row factory but its
own three, so conditional writes read their outcome with ``applied``.
"""

from __future__ import annotations

import functools
from typing import Any, Sequence

from cassandra.cluster import ResultSet
from cassandra.query import named_tuple_factory


@functools.lru_cache(maxsize=512)
def _row_type(column_names: tuple[str, ...]) -> type:
    # The driver's factory given one row of Nones returns a row of its class: named exactly as the driver names it.
    return type(named_tuple_factory(list(column_names), [(None,) * len(column_names)])[0])


def named_rows(column_names: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[Any]:
    """A row factory: ``named_tuple_factory``'s rows, with the class made once per column list."""
    make = _row_type(tuple(column_names))._make
    return [make(row) for row in rows]


def applied(result: ResultSet) -> bool:
    """Whether a conditional write (``IF ...``, also in a batch) took effect: its
    first row's first column, ``[applied]``, as ``ResultSet.was_applied`` reads it."""
    row = result.one()
    if row is None:
        raise RuntimeError("not a conditional write: Cassandra answered no [applied] row")
    return bool(row[0])
