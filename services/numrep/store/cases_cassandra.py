"""Cases in Cassandra (``infra/schema/v004_cases.cql``).

``cases_by_id`` is the truth; ``cases_by_status`` and ``disputes_by_publisher``
are index rows that only point to it. Writes are ordered so that readers never
see half a case: index rows are written first and the case row last (a crash in
between leaves index rows pointing at nothing, which readers skip), and a
resolution writes the new index row, then flips the case with a conditional
update (``IF status = 'open'``: one resolution wins), then removes the old index
row. Readers re-read every listed case by id and keep it only when its kind and
status match, so a stale index row is never shown.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Iterable, Iterator

from cassandra.cluster import Session
from cassandra.concurrent import execute_concurrent_with_args
from cassandra.query import BatchStatement, BatchType, PreparedStatement

from numrep.core.cases import Case, CaseKind, CaseRecord, CaseStatus, Particulars, publisher_of
from numrep.core.errors import AlreadyExists
from numrep.store.cases_base import CaseStore
from numrep.store.cassandra import CassandraStore, _mapped
from numrep.store.cassandra_rows import applied

BUCKET_SHARD = 0
CONCURRENCY = 32
PAGE = 200

_CASE_COLUMNS = ("case_id, kind, number, category, status, filed_at, deadline, resolved_at, outcome, occurred_at,"
                 " label_ids, complaint_text, contact, evidence, filed_by, filed_via")


class CassandraCaseStore(CaseStore):
    def __init__(self, session: Session, keyspace: str) -> None:
        """Uses ``session`` (owned by someone else: ``close`` leaves it open) and
        expects the v004 tables in ``keyspace`` (``numrep migrate``)."""
        self._session = session
        self.keyspace = keyspace
        self._prepare()

    @classmethod
    def beside(cls, store: CassandraStore) -> "CassandraCaseStore":
        """In the main store's keyspace, on its driver session."""
        return cls(store._session, store.keyspace)

    def _prepare(self) -> None:
        def prep(cql: str, idempotent: bool = True) -> PreparedStatement:
            statement = self._session.prepare(cql.replace("{ks}", self.keyspace))
            statement.is_idempotent = idempotent
            return statement

        self._case_insert = prep(
            f"INSERT INTO {{ks}}.cases_by_id ({_CASE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " IF NOT EXISTS", False)
        self._case_select = prep(f"SELECT {_CASE_COLUMNS} FROM {{ks}}.cases_by_id WHERE case_id = ?")
        self._case_resolve = prep(
            "UPDATE {ks}.cases_by_id SET status = ?, resolved_at = ?, outcome = ? WHERE case_id = ? IF status = 'open'", False)
        self._status_insert = prep(
            "INSERT INTO {ks}.cases_by_status (kind, status, bucket, filed_at, case_id) VALUES (?, ?, ?, ?, ?)")
        self._status_delete = prep(
            "DELETE FROM {ks}.cases_by_status WHERE kind = ? AND status = ? AND bucket = ? AND filed_at = ? AND case_id = ?")
        self._status_newest = prep(
            "SELECT case_id FROM {ks}.cases_by_status WHERE kind = ? AND status = ? AND bucket = ?")
        self._status_oldest = prep(
            "SELECT case_id FROM {ks}.cases_by_status WHERE kind = ? AND status = ? AND bucket = ?"
            " ORDER BY filed_at ASC, case_id ASC")
        self._bucket_insert = prep("INSERT INTO {ks}.case_buckets (shard, bucket) VALUES (?, ?)")
        self._buckets = prep("SELECT bucket FROM {ks}.case_buckets WHERE shard = ?")
        self._publisher_insert = prep("INSERT INTO {ks}.disputes_by_publisher (publisher, filed_at, case_id) VALUES (?, ?, ?)")
        self._publisher_select = prep("SELECT case_id FROM {ks}.disputes_by_publisher WHERE publisher = ?")

    # --- writes ----------------------------------------------------------------
    @_mapped
    def add_case(self, record: CaseRecord) -> None:
        case, private = record.case, record.particulars
        bucket = _bucket(case.filed_at)
        index = BatchStatement(batch_type=BatchType.LOGGED)  # all index rows, or none
        index.add(self._status_insert, (case.kind.value, case.status.value, bucket, case.filed_at, case.case_id))
        index.add(self._bucket_insert, (BUCKET_SHARD, bucket))
        for publisher in sorted({publisher_of(i) for i in case.label_ids}) if case.kind is CaseKind.DISPUTE else ():
            index.add(self._publisher_insert, (publisher, case.filed_at, case.case_id))
        self._session.execute(index)
        inserted = applied(self._session.execute(self._case_insert, (
            case.case_id, case.kind.value, case.number, case.category, case.status.value, case.filed_at, case.deadline,
            case.resolved_at, case.outcome, case.occurred_at, list(case.label_ids), private.text, private.contact,
            private.evidence, private.filed_by, private.filed_via,
        )))
        if not inserted:
            raise AlreadyExists(f"case {case.case_id} exists already")

    @_mapped
    def resolve_case(self, case_id: str, status: CaseStatus, resolved_at: datetime, outcome: str) -> bool:
        record = self.get_case(case_id)
        if record is None or not record.case.is_open:
            return False
        case = record.case
        key = (case.kind.value, status.value, _bucket(case.filed_at), case.filed_at, case.case_id)
        self._session.execute(self._status_insert, key)
        if applied(self._session.execute(self._case_resolve, (status.value, resolved_at, outcome, case_id))):
            self._session.execute(self._status_delete, (case.kind.value, CaseStatus.OPEN.value, *key[2:]))
            return True
        now = self.get_case(case_id)
        if now is None or now.case.status is not status:  # another resolution won: drop our speculative row
            self._session.execute(self._status_delete, key)
        return False

    # --- reads -----------------------------------------------------------------
    @_mapped
    def get_case(self, case_id: str) -> CaseRecord | None:
        row = self._session.execute(self._case_select, (case_id,)).one()
        return None if row is None else _record(row)

    @_mapped
    def cases_with(self, kind: CaseKind, status: CaseStatus, limit: int | None) -> list[CaseRecord]:
        buckets = [row.bucket for row in self._session.execute(self._buckets, (BUCKET_SHARD,))]  # newest first
        oldest_first = status is CaseStatus.OPEN
        statement = self._status_oldest if oldest_first else self._status_newest
        found: list[CaseRecord] = []
        for bucket in reversed(buckets) if oldest_first else buckets:
            ids = (row.case_id for row in self._paged(statement, (kind.value, status.value, bucket)))
            for record in self._by_ids(ids):
                if record.case.kind is kind and record.case.status is status:
                    found.append(record)
                    if limit is not None and len(found) >= limit:
                        return found
        return found

    @_mapped
    def disputes_for_publisher(self, publisher_id: str, limit: int) -> list[CaseRecord]:
        ids = (row.case_id for row in self._paged(self._publisher_select, (publisher_id,)))
        found = []
        for record in self._by_ids(ids):
            if record.case.kind is CaseKind.DISPUTE and publisher_id in {publisher_of(i) for i in record.case.label_ids}:
                found.append(record)
                if len(found) >= limit:
                    break
        return found

    def _paged(self, statement: PreparedStatement, values: tuple[Any, ...]) -> Iterator[Any]:
        bound = statement.bind(values)
        bound.fetch_size = PAGE
        yield from self._session.execute(bound)

    def _by_ids(self, ids: Iterable[str]) -> Iterator[CaseRecord]:
        """The cases behind index rows, read a page at a time in parallel, in the
        index's order; ids without a case row (a crashed write) are skipped."""
        seen: set[str] = set()
        page: list[str] = []
        for case_id in ids:
            if case_id in seen:
                continue
            seen.add(case_id)
            page.append(case_id)
            if len(page) >= PAGE:
                yield from self._fetch(page)
                page = []
        if page:
            yield from self._fetch(page)

    def _fetch(self, ids: list[str]) -> Iterator[CaseRecord]:
        results = execute_concurrent_with_args(self._session, self._case_select, [(i,) for i in ids],
                                               concurrency=CONCURRENCY, raise_on_first_error=True)
        for result in results:
            row = result.result_or_exc.one()
            if row is not None:
                yield _record(row)


def _bucket(when: datetime) -> int:
    return when.year * 12 + when.month - 1


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value


def _record(row: Any) -> CaseRecord:
    case = Case(row.case_id, CaseKind(row.kind), row.number, row.category or "", CaseStatus(row.status),
                _utc(row.filed_at), _utc(row.deadline), _utc(row.resolved_at), row.outcome or "",
                tuple(row.label_ids or ()), _utc(row.occurred_at))
    private = Particulars(row.complaint_text or "", row.contact or "", row.evidence or "", row.filed_by or "", row.filed_via or "")
    return CaseRecord(case, private)
