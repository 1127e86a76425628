"""The consent ledger in Cassandra (tables in ``infra/schema/v003_consent.cql``),
sharing the main store's driver session.

A record id is claimed once in ``consent_by_id`` with a lightweight
transaction; only then are its ``consent_by_pair`` rows written (one per named
caller), rebuilt from the *stored* body, so a retried registration after a
crash completes the rows and a reused id can never overwrite another record's
rows. The per-call read is one partition per (caller, callee hash), plus the
callee's refusals of every caller.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any, Sequence

from cassandra.cluster import EXEC_PROFILE_DEFAULT, Session
from cassandra.concurrent import execute_concurrent_with_args
from cassandra.query import PreparedStatement

from numrep.core.consent import ANY_CALLER, ConsentRecord
from numrep.store.consent_base import ConsentStore, RecordOutcome, partition_callers, record_from_json, record_to_json
from numrep.store.cassandra import CALL_PATH
from numrep.store.cassandra_rows import applied

CONCURRENCY = 32
EXPIRED_GRACE = timedelta(days=30)  # an expired consent is still reported as expired this long


class CassandraConsentStore(ConsentStore):
    def __init__(self, session: Session, keyspace: str) -> None:
        self._session = session
        self.keyspace = keyspace

        def prep(cql: str, idempotent: bool = True) -> PreparedStatement:
            statement = session.prepare(cql.replace("{ks}", keyspace))
            statement.is_idempotent = idempotent
            return statement

        self._claim = prep("INSERT INTO {ks}.consent_by_id (record_id, kind, token_digest, body) VALUES (?, ?, ?, ?)"
                           " IF NOT EXISTS USING TTL ?", False)
        self._by_id = prep("SELECT record_id, token_digest, body, revoked_at FROM {ks}.consent_by_id WHERE record_id = ?")
        self._pair_upsert = prep("INSERT INTO {ks}.consent_by_pair (caller, callee_hash, record_id, kind, body, revoked_at)"
                                 " VALUES (?, ?, ?, ?, ?, ?) USING TTL ?")
        self._pair_select = prep("SELECT body, revoked_at FROM {ks}.consent_by_pair WHERE caller = ? AND callee_hash = ?")
        self._revoke = prep("UPDATE {ks}.consent_by_id USING TTL ? SET revoked_at = ? WHERE record_id = ? IF revoked_at = null", False)
        self._pair_revoke = prep("UPDATE {ks}.consent_by_pair USING TTL ? SET revoked_at = ?"
                                 " WHERE caller = ? AND callee_hash = ? AND record_id = ?")

    @classmethod
    def sharing(cls, store: Any) -> "CassandraConsentStore":
        """The ledger beside a ``CassandraStore``, on its session and keyspace."""
        return cls(store._session, store.keyspace)

    def _mapped(self) -> Any:
        from numrep.store.cassandra import _driver_errors  # driver failures as StoreUnavailable / StoreTimeout

        return _driver_errors()

    def add_records(self, records: Sequence[ConsentRecord]) -> list[RecordOutcome]:
        if not records:
            return []
        now = datetime.now(timezone.utc)
        with self._mapped():
            claims = self._concurrently(self._claim, [
                (r.id, r.kind.value, r.token_digest, record_to_json(r), _ttl(r, now)) for r in records])
            outcomes, rows = [], []
            for record, claim in zip(records, claims):
                if claim.applied:
                    outcomes.append(RecordOutcome.ADDED)
                    stored = record
                elif claim.revoked_at is not None:
                    outcomes.append(RecordOutcome.REVOKED)
                    continue
                elif claim.token_digest != record.token_digest:
                    outcomes.append(RecordOutcome.CONFLICT)
                    continue
                else:
                    outcomes.append(RecordOutcome.DUPLICATE)
                    stored = record_from_json(claim.body)  # repair a half-written earlier attempt from what was claimed
                body = record_to_json(stored)
                rows += [(caller, stored.callee_hash, stored.id, stored.kind.value, body, None, _ttl(stored, now))
                         for caller in partition_callers(stored)]
            self._concurrently(self._pair_upsert, rows)
        return outcomes

    def records_for(self, caller: str, callee_hash: str) -> list[ConsentRecord]:
        # A call with a callee waits on these two reads (a pair's records: a handful of rows).
        with self._mapped():
            rows = self._concurrently_all(self._pair_select, [(caller, callee_hash), (ANY_CALLER, callee_hash)], CALL_PATH)
        found = {}
        for row in rows:
            if row.body is not None:  # a revocation cell that outlived its row's TTL
                record = record_from_json(row.body, _utc(row.revoked_at))
                found[record.id] = record
        return [found[key] for key in sorted(found)]

    def get_record(self, record_id: str) -> ConsentRecord | None:
        with self._mapped():
            row = self._session.execute(self._by_id, (record_id,)).one()
        return None if row is None or row.body is None else record_from_json(row.body, _utc(row.revoked_at))

    def revoke_record(self, record_id: str, at: datetime) -> bool:
        now = datetime.now(timezone.utc)
        with self._mapped():
            row = self._session.execute(self._by_id, (record_id,)).one()
            if row is None or row.body is None:
                return False
            record = record_from_json(row.body)
            revoked = row.revoked_at is None and applied(self._session.execute(self._revoke, (_ttl(record, now), at, record_id)))
            # Applied or not, write the first revocation time to the pair rows: repairs a half-done revocation.
            first = self._session.execute(self._by_id, (record_id,)).one().revoked_at if not revoked else at
            self._concurrently(self._pair_revoke, [(_ttl(record, now), first, caller, record.callee_hash, record_id)
                                                   for caller in partition_callers(record)])
        return revoked

    def _concurrently(self, statement: PreparedStatement, rows: Sequence[Sequence[Any]]) -> list[Any]:
        """Run ``statement`` for each row in parallel; the first row of each result, in order."""
        if not rows:
            return []
        results = execute_concurrent_with_args(self._session, statement, rows, concurrency=CONCURRENCY, raise_on_first_error=True)
        return [result.result_or_exc.one() for result in results]

    def _concurrently_all(self, statement: PreparedStatement, rows: Sequence[Sequence[Any]],
                          profile: Any = EXEC_PROFILE_DEFAULT) -> list[Any]:
        results = execute_concurrent_with_args(self._session, statement, rows, concurrency=CONCURRENCY, raise_on_first_error=True,
                                               execution_profile=profile)
        return [row for result in results for row in result.result_or_exc]


def _ttl(record: ConsentRecord, now: datetime) -> int:
    """Seconds to keep a record's rows: until its expiry plus a grace period; 0 (no TTL) without expiry."""
    if record.expires_at is None:
        return 0
    return max(1, int((record.expires_at + EXPIRED_GRACE - now).total_seconds()))


def _utc(value: datetime | None) -> datetime | None:
    return None if value is None else value.replace(tzinfo=timezone.utc)
