"""The store for scale: Apache Cassandra through the DataStax Python driver.

Prepared statements, token-aware and DC-aware routing, protocol v5,
LOCAL_QUORUM by default. Statements that may safely run twice are marked
idempotent so the driver can retry them. The reads a carrier's call waits on
(its verdict, the caller's registry entry, a label's key, the consent ledger's
records of a caller and callee, the health ping) run under the ``CALL_PATH``
profile: one its node has not answered within ``speculate_after`` goes to another
replica as well (a hung node keeps its connections open, so nothing else takes it
out of the query plan). Conditional writes (LWT) claim label ids, flag batches
and participant ids exactly once. Driver failures become ``StoreUnavailable`` or
``StoreTimeout`` (gRPC UNAVAILABLE / DEADLINE_EXCEEDED).
See ``infra/schema/`` for the tables and why each exists.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import time
import uuid
import weakref
import zlib
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterable, Iterator, Sequence, TypeVar
from urllib.parse import parse_qs, urlparse

from cassandra import ConsistencyLevel, OperationTimedOut, ReadTimeout, Unavailable, WriteTimeout
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile, NoHostAvailable, Session
from cassandra.concurrent import execute_concurrent, execute_concurrent_with_args
from cassandra.policies import ConstantSpeculativeExecutionPolicy, DCAwareRoundRobinPolicy, ExponentialReconnectionPolicy, TokenAwarePolicy
from cassandra.query import BatchStatement, BatchType, PreparedStatement, SimpleStatement
from cassandra.util import max_uuid_from_time, uuid_from_time

from numrep.core.errors import AlreadyExists, InvalidArgument, NotFound, StoreTimeout, StoreUnavailable
from numrep.core.model import Evidence, Flag, FlagTally, FlagVote, Label, LabelVote, Listing, Participant, PublicKeyRecord, Role, Verdict
from numrep.core.privacy import hash32
from numrep.store.base import AddOutcome, Change, Store
from numrep.store.cassandra_rows import applied, named_rows
from numrep.store.cassandra_schema import SCHEMA_TIMEOUT, migrate
from numrep.store.codec import listing_of, verdict_from_json, verdict_to_json
from numrep.store.read_coalescer import ReadCoalescer, ReadCounts, settle

DEFAULT_PORT = 9042
DEFAULT_DC = "datacenter1"
LISTED_BUCKETS = 64
FEED_SHARD = 0
CONCURRENCY = 64
# The verdict reads of calls (ReadCoalescer): one send out at a time, and the numbers asked
# for meanwhile go in the next, 50 to a read; a send out 10 ms (ordinary reads take 1-3) no
# longer holds the next back. Against a read per call: 1.4-1.7x the Lookups/s (medians, same run).
# A speculative execution (SPECULATE_AFTER_SECONDS) sends such a read again whole.
VERDICT_SENDS_OUT = 1
VERDICTS_PER_READ = 50
VERDICT_READ_PATIENCE_SECONDS = 0.010
RECONNECT_BASE_SECONDS = 0.5
RECONNECT_MAX_SECONDS = 2.0
# A carrier asks inside call set-up (a budget of about 250 ms): a call-path read its
# coordinator has not answered in this long goes to the next replica too, at most twice.
# Ordinary reads answer in a few ms, so only a slow or hung node's share is sent again. A
# call may wait on three such reads in turn (its caller's keys, a label's key, the verdict):
# three waits must still fit the budget.
# Only reads of a row or a small partition, far below a page (SCAN_PAGE): the driver (3.30)
# would take a late page of a losing copy for the next page of a paged read; and no writes,
# which sent again would load a cluster that is slow already.
SPECULATE_AFTER_SECONDS = 0.05
SPECULATIVE_ATTEMPTS = 2
CALL_PATH = "numrep-call-path"  # the execution profile of the reads a call waits on
# Change ids are taken when a write starts; one that lands later than a newer one
# must still be seen by a reader that already passed it. Readers therefore stop
# this far behind the clock (the write timeout plus margin).
DEFAULT_FEED_SAFETY_LAG_SECONDS = 6.0
SCAN_PAGE = 5000  # rows per page of a full-table scan
# A trust snapshot's body goes in parts (schema v006): Cassandra refuses one CQL message over
# 16 MiB, and a snapshot, which holds every app reporter's record, outgrows that.
TRUST_PART_CHARS = 1 << 20  # 1 MiB of JSON (ASCII), 4 MiB at most whatever the text
TRUST_PARTS_PAGE = 4  # parts per page read: a page is one message too
TRUST_PARTS_IN_FLIGHT = 4
# Any node's answer will do: idempotent and on the call path, so one hung node cannot fail the
# health check the reads it stands for would pass (they go to another replica in time).
_PING = SimpleStatement("SELECT release_version FROM system.local", is_idempotent=True)
T = TypeVar("T")


def execution_profile(local_dc: str, consistency: int, request_timeout: float, speculate_after: float = 0.0) -> ExecutionProfile:
    """How statements run: token-aware, DC-aware, ``consistency``; with ``speculate_after``
    (seconds, > 0), an idempotent one unanswered by then also goes to the next replica."""
    return ExecutionProfile(
        load_balancing_policy=TokenAwarePolicy(DCAwareRoundRobinPolicy(local_dc=local_dc)),
        consistency_level=consistency,
        serial_consistency_level=ConsistencyLevel.LOCAL_SERIAL,
        request_timeout=request_timeout,
        row_factory=named_rows,
        speculative_execution_policy=(ConstantSpeculativeExecutionPolicy(speculate_after, SPECULATIVE_ATTEMPTS)
                                      if speculate_after > 0 else None),
    )


def _mapped(method: Callable[..., T]) -> Callable[..., T]:
    """Driver failures as the exchange's store errors, so callers never see INTERNAL."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        with _driver_errors():
            return method(*args, **kwargs)

    return wrapper


@contextlib.contextmanager
def _driver_errors() -> Iterator[None]:
    try:
        yield
    except (OperationTimedOut, ReadTimeout, WriteTimeout) as exc:
        raise StoreTimeout(f"Cassandra did not answer in time: {type(exc).__name__}") from exc
    except (NoHostAvailable, Unavailable) as exc:
        raise StoreUnavailable(f"Cassandra is unavailable: {type(exc).__name__}") from exc


def _settle_from_driver(loop: asyncio.AbstractEventLoop, future: "asyncio.Future[Any]", result: Any,
                        error: BaseException | None) -> None:
    """Called on the driver's thread: hand the answer to the loop that waits for it."""
    try:
        loop.call_soon_threadsafe(settle, future, result, error)
    except RuntimeError:  # that loop has closed (the server stopped): nobody waits any more
        pass


def _bodies_from_driver(loop: asyncio.AbstractEventLoop, answer: "asyncio.Future[dict[str, str]]", numbers: Sequence[str],
                        rows: Any) -> None:
    """Called on the driver's thread with the rows of ``_verdict_bodies``' read. A failure
    here goes to the waiting callers too: the driver would only log it, and they would wait."""
    try:
        if len(numbers) == 1:
            found = {numbers[0]: rows[0].body} if rows else {}
        else:
            found = {row.number: row.body for row in rows}
    except Exception as exc:  # noqa: BLE001
        _settle_from_driver(loop, answer, None, exc)
    else:
        _settle_from_driver(loop, answer, found, None)


class CassandraStore(Store):
    def __init__(
        self,
        cluster: Cluster,
        session: Session,
        keyspace: str,
        *,
        feed_bucket_seconds: int = 3600,
        feed_safety_lag_seconds: float = 0.0,
    ) -> None:
        self._cluster = cluster
        self._session = session
        self.keyspace = keyspace
        self.feed_bucket_seconds = feed_bucket_seconds
        self.feed_safety_lag = timedelta(seconds=feed_safety_lag_seconds)
        self._verdict_reads: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, ReadCoalescer[str, str]] = weakref.WeakKeyDictionary()
        self._verdict_read_counts = ReadCounts()  # over every event loop's reads, also those since gone
        self._prepare()

    # --- construction ----------------------------------------------------------
    @classmethod
    def connect(
        cls,
        contact_points: list[str],
        port: int = DEFAULT_PORT,
        keyspace: str = "numrep",
        *,
        local_dc: str = DEFAULT_DC,
        consistency: str = "LOCAL_QUORUM",
        replication: str = "SimpleStrategy:1",
        request_timeout: float = 5.0,
        speculate_after: float = SPECULATE_AFTER_SECONDS,
        run_migrations: bool = True,
        feed_bucket_seconds: int = 3600,
        feed_safety_lag_seconds: float = 0.0,
    ) -> "CassandraStore":
        level = getattr(ConsistencyLevel, consistency.upper(), None)
        if level is None:
            raise InvalidArgument(f"unknown consistency level {consistency!r}")
        cluster = Cluster(
            contact_points,
            port=port,
            protocol_version=5,
            execution_profiles={EXEC_PROFILE_DEFAULT: execution_profile(local_dc, level, request_timeout),
                                CALL_PATH: execution_profile(local_dc, level, request_timeout, speculate_after)},
            connect_timeout=request_timeout,
            # The driver's default backs off to 10 minutes between attempts on a down node;
            # capped, a restarted node (or a whole cluster back from an outage) is used again
            # within seconds, without restarting the exchange.
            reconnection_policy=ExponentialReconnectionPolicy(RECONNECT_BASE_SECONDS, RECONNECT_MAX_SECONDS),
            # A migration's next statement may read what its last one created: wait for every node to
            # agree on the schema first (the driver's default, 10 s, is short of a node just back from
            # a hang, which then fails the read with INCOMPATIBLE_SCHEMA).
            max_schema_agreement_wait=int(SCHEMA_TIMEOUT),
        )
        try:
            session = cluster.connect()
            if run_migrations:
                migrate(session, keyspace, replication)
        except (NoHostAvailable, OperationTimedOut) as exc:
            cluster.shutdown()
            raise StoreUnavailable(f"cannot reach Cassandra at {','.join(contact_points)}:{port}: {exc}") from exc
        return cls(cluster, session, keyspace, feed_bucket_seconds=feed_bucket_seconds,
                   feed_safety_lag_seconds=feed_safety_lag_seconds)

    @classmethod
    def from_url(cls, url: str, **overrides: Any) -> "CassandraStore":
        """``cassandra://host[:port][,host...]/keyspace?dc=&consistency=&replication=&bucket_seconds=&timeout=&speculate=``
        (``speculate``: seconds before an unanswered call-path read also goes to another replica; 0: never)"""
        options = cls.parse_url(url)
        options.update(overrides)
        return cls.connect(**options)

    @staticmethod
    def parse_url(url: str) -> dict[str, Any]:
        parsed = urlparse(url)
        if parsed.scheme != "cassandra" or not parsed.netloc:
            raise InvalidArgument(f"bad Cassandra URL {url!r}; expected cassandra://HOST[:PORT][,HOST...]/KEYSPACE")
        hosts, port = [], DEFAULT_PORT
        for item in parsed.netloc.split(","):
            host, _, port_text = item.partition(":")
            hosts.append(host)
            if port_text:
                port = int(port_text)
        query = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
        options: dict[str, Any] = {"contact_points": hosts, "port": port, "keyspace": parsed.path.strip("/") or "numrep",
                                   "feed_safety_lag_seconds": DEFAULT_FEED_SAFETY_LAG_SECONDS}
        for key, name, kind in [("dc", "local_dc", str), ("consistency", "consistency", str), ("replication", "replication", str),
                                ("bucket_seconds", "feed_bucket_seconds", int), ("timeout", "request_timeout", float),
                                ("lag", "feed_safety_lag_seconds", float), ("speculate", "speculate_after", float)]:
            if key in query:
                options[name] = kind(query[key])
        speculate = options.get("speculate_after", 0.0)
        if not 0.0 <= speculate < float("inf"):  # NaN too
            raise InvalidArgument(f"bad Cassandra URL {url!r}: speculate must be 0 (never) or a number of seconds")
        return options

    def _prepare(self) -> None:
        ks = self.keyspace

        def prep(cql: str, idempotent: bool = True) -> PreparedStatement:
            statement = self._session.prepare(cql.replace("{ks}", ks))
            statement.is_idempotent = idempotent
            return statement

        self._participant_insert = prep("INSERT INTO {ks}.participants (id, role, display_name) VALUES (?, ?, ?) IF NOT EXISTS", False)
        self._key_insert = prep("INSERT INTO {ks}.participants (id, kid, jwk, added_at, revoked_at) VALUES (?, ?, ?, ?, ?)")
        self._key_insert_new = prep("INSERT INTO {ks}.participants (id, kid, jwk, added_at) VALUES (?, ?, ?, ?) IF NOT EXISTS", False)
        self._participant_select = prep("SELECT id, kid, role, display_name, jwk, added_at, revoked_at FROM {ks}.participants WHERE id = ?")
        self._participants_all = prep("SELECT id, kid, role, display_name, jwk, added_at, revoked_at FROM {ks}.participants")
        self._key_revoke = prep("UPDATE {ks}.participants SET revoked_at = ? WHERE id = ? AND kid = ? IF revoked_at = null", False)

        cols = "number, issuer, category, confidence, issued_at, expires_at, jws, evidence"
        self._label_claim = prep(f"INSERT INTO {{ks}}.labels_by_id (label_id, {cols}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) IF NOT EXISTS USING TTL ?", False)
        self._label_by_id = prep(f"SELECT label_id, {cols}, retracted_at FROM {{ks}}.labels_by_id WHERE label_id = ?")
        self._label_number_upsert = prep(
            f"INSERT INTO {{ks}}.labels_by_number (label_id, {cols}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) USING TTL ? AND TIMESTAMP ?")
        self._labels_of_number = prep(f"SELECT label_id, {cols} FROM {{ks}}.labels_by_number WHERE number = ?")
        self._tokens_of_number = prep("SELECT jws FROM {ks}.labels_by_number WHERE number = ?")  # label_id order
        self._label_retract = prep("UPDATE {ks}.labels_by_id SET retracted_at = ? WHERE label_id = ? IF retracted_at = null", False)
        self._label_number_delete = prep("DELETE FROM {ks}.labels_by_number WHERE number = ? AND label_id = ?")

        self._batch_claim = prep("INSERT INTO {ks}.flag_batches (app_id, batch_id, state, received_at) VALUES (?, ?, 'pending', ?) IF NOT EXISTS", False)
        self._batch_done = prep("UPDATE {ks}.flag_batches SET state = 'done' WHERE app_id = ? AND batch_id = ?")
        self._flag_upsert = prep("INSERT INTO {ks}.flags_by_number (number, app_id, reporter, category, time, comment) VALUES (?, ?, ?, ?, ?, ?) USING TIMESTAMP ?")
        self._flags_of_number = prep("SELECT app_id, category, time FROM {ks}.flags_by_number WHERE number = ?")
        self._flag_rows_of_number = prep("SELECT number, app_id, reporter, category, time, comment FROM {ks}.flags_by_number WHERE number = ?")
        self._flag_votes = prep("SELECT number, app_id, reporter, category, time FROM {ks}.flags_by_number")
        self._label_votes = prep("SELECT number, issuer, category, confidence, issued_at FROM {ks}.labels_by_number")
        self._all_verdict_numbers = prep("SELECT number FROM {ks}.verdict_by_number")
        self._trust_insert = prep(
            "INSERT INTO {ks}.trust_snapshots (shard, epoch, fitted_at, body_id, parts, digest) VALUES (0, ?, ?, ?, ?, ?) IF NOT EXISTS", False)
        self._trust_latest = prep("SELECT epoch, body, body_id, parts, digest FROM {ks}.trust_snapshots WHERE shard = 0 LIMIT 1")
        self._trust_latest_epoch = prep("SELECT epoch FROM {ks}.trust_snapshots WHERE shard = 0 LIMIT 1")
        self._trust_part_insert = prep("INSERT INTO {ks}.trust_snapshot_parts (epoch, body_id, part, text) VALUES (?, ?, ?, ?)")
        self._trust_parts = prep("SELECT text FROM {ks}.trust_snapshot_parts WHERE epoch = ? AND body_id = ?")
        self._trust_parts_delete = prep("DELETE FROM {ks}.trust_snapshot_parts WHERE epoch = ? AND body_id = ?")
        self._trust_write_insert = prep("INSERT INTO {ks}.trust_snapshot_writes (shard, epoch, body_id) VALUES (0, ?, ?)")
        self._trust_write_delete = prep("DELETE FROM {ks}.trust_snapshot_writes WHERE shard = 0 AND epoch = ? AND body_id = ?")
        self._trust_writes_before = prep("SELECT epoch, body_id FROM {ks}.trust_snapshot_writes WHERE shard = 0 AND epoch < ?")
        self._trust_epochs = prep("SELECT epoch FROM {ks}.trust_snapshots WHERE shard = 0")
        self._trust_rows_before = prep("SELECT epoch, body_id FROM {ks}.trust_snapshots WHERE shard = 0 AND epoch < ?")
        self._trust_rows_delete = prep("DELETE FROM {ks}.trust_snapshots WHERE shard = 0 AND epoch < ?")

        self._verdict_select = prep("SELECT body FROM {ks}.verdict_by_number WHERE number = ?")
        self._verdicts_select = prep("SELECT number, body FROM {ks}.verdict_by_number WHERE number IN ?")
        self._verdict_upsert = prep("INSERT INTO {ks}.verdict_by_number (number, listed, body) VALUES (?, ?, ?)")
        self._listed_insert = prep("INSERT INTO {ks}.listed_by_bucket (bucket, number) VALUES (?, ?)")
        self._listed_delete = prep("DELETE FROM {ks}.listed_by_bucket WHERE bucket = ? AND number = ?")
        self._listed_page = prep("SELECT number FROM {ks}.listed_by_bucket WHERE bucket = ? AND number > ? LIMIT ?")
        self._hash_insert = prep("INSERT INTO {ks}.listed_by_hash (prefix8, hash32, number) VALUES (?, ?, ?)")
        self._hash_delete = prep("DELETE FROM {ks}.listed_by_hash WHERE prefix8 = ? AND hash32 = ? AND number = ?")
        self._hash_range = prep("SELECT number FROM {ks}.listed_by_hash WHERE prefix8 = ? AND hash32 >= ? AND hash32 <= ? LIMIT ?")
        self._change_insert = prep("INSERT INTO {ks}.changes_by_bucket (bucket, change_id, number, removed_label_id) VALUES (?, ?, ?, ?)")
        self._feed_bucket_insert = prep("INSERT INTO {ks}.feed_buckets (shard, bucket) VALUES (?, ?)")
        self._feed_buckets_from = prep("SELECT bucket FROM {ks}.feed_buckets WHERE shard = ? AND bucket >= ? AND bucket <= ?")
        self._changes_page = prep(
            "SELECT change_id, number, removed_label_id FROM {ks}.changes_by_bucket"
            " WHERE bucket = ? AND change_id > ? AND change_id <= ? LIMIT ?"
        )

    @_mapped
    def ping(self) -> None:
        self._session.execute(_PING, execution_profile=CALL_PATH)

    def close(self) -> None:
        self._cluster.shutdown()

    # --- registry --------------------------------------------------------------
    @_mapped
    def add_participant(self, participant: Participant) -> None:
        batch = BatchStatement(batch_type=BatchType.LOGGED)  # one partition: conditional batch
        batch.add(self._participant_insert, (participant.id, participant.role.value, participant.display_name))
        for key in participant.keys:
            batch.add(self._key_insert, (participant.id, key.kid, key.jwk, key.added_at, key.revoked_at))
        if not applied(self._session.execute(batch)):
            raise AlreadyExists(f"participant {participant.id!r} exists already")

    @_mapped
    def get_participant(self, participant_id: str) -> Participant | None:
        # One participant's keys: a handful of rows (a call's authentication waits on this read).
        found = _participants(self._session.execute(self._participant_select, (participant_id,), execution_profile=CALL_PATH))
        return found[0] if found else None

    @_mapped
    def list_participants(self) -> list[Participant]:
        return _participants(self._session.execute(self._participants_all))

    @_mapped
    def add_key(self, participant_id: str, key: PublicKeyRecord) -> None:
        if self.get_participant(participant_id) is None:
            raise NotFound(f"participant {participant_id!r} is not registered")
        if not applied(self._session.execute(self._key_insert_new, (participant_id, key.kid, key.jwk, key.added_at))):
            raise AlreadyExists(f"key {key.kid!r} is registered already")

    @_mapped
    def revoke_key(self, participant_id: str, kid: str, at: datetime) -> None:
        participant = self.get_participant(participant_id)
        if participant is None or participant.key(kid) is None:
            raise NotFound(f"participant {participant_id!r} has no key {kid!r}")
        self._session.execute(self._key_revoke, (at, participant_id, kid))  # not applied: already revoked, keep the first time

    # --- labels ----------------------------------------------------------------
    @_mapped
    def add_labels(self, labels: Sequence[Label]) -> list[AddOutcome]:
        claims = self._concurrently(self._label_claim, [(lb.id, *_label_values(lb), _ttl(lb.expires_at)) for lb in labels])
        outcomes, evidence_rows = [], []
        for label, claim in zip(labels, claims):
            if claim.applied:
                outcomes.append(AddOutcome.ADDED)
                stored = label
            elif claim.retracted_at is not None:
                outcomes.append(AddOutcome.RETRACTED)
                continue
            else:
                # Rewrite the *stored* label (never the re-sent one): a crash after the claim
                # must not leave it out of the evidence.
                outcomes.append(AddOutcome.DUPLICATE)
                stored = _label(claim, claim.label_id)
            evidence_rows.append((stored.id, *_label_values(stored), _ttl(stored.expires_at), _write_time(stored)))
        self._concurrently(self._label_number_upsert, evidence_rows)
        return outcomes

    def _concurrently(self, statement: Any, rows: Sequence[Sequence[Any]], profile: Any = EXEC_PROFILE_DEFAULT) -> list[Any]:
        """Execute ``statement`` for each row in parallel; the first row of each result, in order."""
        return [found[0] if found else None for found in self._concurrently_all(statement, rows, profile)]

    def _concurrently_all(self, statement: Any, rows: Sequence[Sequence[Any]], profile: Any = EXEC_PROFILE_DEFAULT) -> list[list[Any]]:
        """Execute ``statement`` for each row in parallel; every row of each result, in order."""
        if not rows:
            return []
        results = execute_concurrent_with_args(self._session, statement, rows, concurrency=CONCURRENCY, raise_on_first_error=True,
                                               execution_profile=profile)
        return [list(result.result_or_exc) for result in results]

    @_mapped
    def get_label(self, label_id: str) -> Label | None:
        row = self._session.execute(self._label_by_id, (label_id,), execution_profile=CALL_PATH).one()
        if row is None or row.retracted_at is not None:
            return None
        return _label(row)

    @_mapped
    def was_retracted(self, label_id: str) -> bool:
        row = self._session.execute(self._label_by_id, (label_id,)).one()
        return row is not None and row.retracted_at is not None

    @_mapped
    def retract_label(self, label_id: str, at: datetime) -> bool:
        row = self._session.execute(self._label_by_id, (label_id,)).one()
        if row is None:
            return False
        retracted = row.retracted_at is None and applied(self._session.execute(self._label_retract, (at, label_id)))
        self._session.execute(self._label_number_delete, (row.number, label_id))  # idempotent; repairs a half-done retraction
        return retracted

    # --- flags -----------------------------------------------------------------
    @_mapped
    def add_flags(self, app_id: str, batch_id: str, flags: Iterable[Flag], at: datetime) -> bool:
        claim = self._session.execute(self._batch_claim, (app_id, batch_id, at)).one()
        if not claim.applied and claim.state == "done":
            return False
        rows = [
            (f.number, app_id, f.reporter, f.category, f.time, f.comment, int(f.time.timestamp() * 1_000_000))
            for f in flags
        ]
        execute_concurrent_with_args(self._session, self._flag_upsert, rows, concurrency=CONCURRENCY, raise_on_first_error=True)
        self._session.execute(self._batch_done, (app_id, batch_id))
        return True

    @_mapped
    def evidence(self, number: str) -> Evidence:
        return _evidence(number, self._session.execute(self._labels_of_number, (number,)),
                         self._session.execute(self._flags_of_number, (number,)))

    @_mapped
    def evidence_many(self, numbers: Sequence[str]) -> dict[str, Evidence]:
        # Every number's two single-partition reads in flight together.
        wanted = list(dict.fromkeys(numbers))
        keys = [(number,) for number in wanted]
        label_rows = self._concurrently_all(self._labels_of_number, keys)
        flag_rows = self._concurrently_all(self._flags_of_number, keys)
        return {number: _evidence(number, labels, flags) for number, labels, flags in zip(wanted, label_rows, flag_rows)}

    # --- verdicts and the change feed --------------------------------------------
    @_mapped
    def get_verdict(self, number: str) -> Verdict | None:
        row = self._session.execute(self._verdict_select, (number,), execution_profile=CALL_PATH).one()
        return None if row is None else verdict_from_json(row.body)

    async def get_verdict_async(self, number: str) -> Verdict | None:
        # The driver's own future, settled on the event loop: no worker thread per read; and
        # the numbers asked for while a send is out go together in the next (ReadCoalescer).
        loop = asyncio.get_running_loop()
        reads = self._verdict_reads.get(loop)
        if reads is None:
            reads = self._verdict_reads[loop] = ReadCoalescer(
                self._verdict_bodies, max_sends=VERDICT_SENDS_OUT, max_keys=VERDICTS_PER_READ, patience=VERDICT_READ_PATIENCE_SECONDS,
                counts=self._verdict_read_counts)
        with _driver_errors():
            body = await reads.get(number)
        return None if body is None else verdict_from_json(body)

    def verdict_reads_sent(self) -> tuple[int, int]:
        """The reads ``get_verdict_async`` has sent, and the numbers they carried (more
        numbers than reads: lookups that waited together went in one)."""
        return self._verdict_read_counts.reads, self._verdict_read_counts.keys

    def _verdict_bodies(self, numbers: Sequence[str]) -> "asyncio.Future[dict[str, str]]":
        """The stored verdicts (JSON) of distinct ``numbers``, as a future on the running loop.
        One number is a token-aware single-partition read; several are one ``IN`` read, whose
        coordinator asks their replicas (on more nodes than the replication factor, not all
        itself), answering when the slowest of them has."""
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[dict[str, str]] = loop.create_future()
        if len(numbers) == 1:
            response = self._session.execute_async(self._verdict_select, (numbers[0],), execution_profile=CALL_PATH)
        else:
            response = self._session.execute_async(self._verdicts_select, (list(numbers),), execution_profile=CALL_PATH)
        response.add_callbacks(functools.partial(_bodies_from_driver, loop, answer, numbers),
                               lambda exc: _settle_from_driver(loop, answer, None, exc))
        return answer

    @_mapped
    def get_verdicts(self, numbers: Sequence[str]) -> dict[str, Verdict]:
        # One single-partition read per number, all in flight together: token-aware
        # routing sends each to its replica, which an "IN" over partitions would not.
        wanted = list(dict.fromkeys(numbers))
        rows = self._concurrently(self._verdict_select, [(number,) for number in wanted], CALL_PATH)
        return {number: verdict_from_json(row.body) for number, row in zip(wanted, rows) if row is not None}

    @_mapped
    def put_verdicts(self, updates: Sequence[tuple[Verdict, Sequence[str]]]) -> None:
        batches = []
        for verdict, removed in updates:
            # A logged batch: the verdict, its listing and its change-feed rows land together or not at all.
            batch = BatchStatement(batch_type=BatchType.LOGGED)
            batch.add(self._verdict_upsert, (verdict.number, verdict.is_listed, verdict_to_json(verdict)))
            listed = self._listed_insert if verdict.is_listed else self._listed_delete
            batch.add(listed, (_listed_bucket(verdict.number), verdict.number))
            prefix = hash32(verdict.number)
            batch.add(self._hash_insert if verdict.is_listed else self._hash_delete, (prefix >> 24, prefix, verdict.number))
            buckets = set()
            for label_id in list(removed) or [""]:
                change_id = uuid.uuid1()
                bucket = self._feed_bucket(_uuid_time(change_id))
                buckets.add(bucket)
                batch.add(self._change_insert, (bucket, change_id, verdict.number, label_id))
            for bucket in buckets:
                batch.add(self._feed_bucket_insert, (FEED_SHARD, bucket))
            batches.append((batch, ()))
        if batches:
            execute_concurrent(self._session, batches, concurrency=CONCURRENCY, raise_on_first_error=True)

    def _feed_bucket(self, when: float) -> int:
        return int(when // self.feed_bucket_seconds)

    def _cutoff(self) -> float:
        return time.time() - self.feed_safety_lag.total_seconds()

    @_mapped
    def feed_head(self) -> str:
        cutoff = self._cutoff()
        return f"{self._feed_bucket(cutoff)}:{max_uuid_from_time(cutoff)}"

    @_mapped
    def changes_after(self, position: str, limit: int) -> list[Change]:
        cutoff = self._cutoff()
        bucket, after = _parse_position(position)
        upper = max_uuid_from_time(cutoff)
        buckets = [r.bucket for r in self._session.execute(self._feed_buckets_from, (FEED_SHARD, bucket, self._feed_bucket(cutoff)))]
        changes: list[Change] = []
        for b in buckets:
            start = after if b == bucket else _MIN_UUID
            rows = self._session.execute(self._changes_page, (b, start, upper, limit - len(changes)))
            changes += [Change(f"{b}:{r.change_id}", r.number, r.removed_label_id or "") for r in rows]
            if len(changes) >= limit:
                break
        return changes

    @_mapped
    def listed_page(self, after: str, limit: int) -> tuple[list[Listing], str]:
        bucket, last = (0, "") if not after else (int(after.split(":", 1)[0]), after.split(":", 1)[1])
        numbers: list[tuple[int, str]] = []
        while bucket < LISTED_BUCKETS and len(numbers) < limit:
            rows = self._session.execute(self._listed_page, (bucket, last, limit - len(numbers)))
            numbers += [(bucket, r.number) for r in rows]
            if len(numbers) < limit:
                bucket, last = bucket + 1, ""
        # The page's verdicts and label tokens: single-partition reads, all in flight together.
        wanted = [(number,) for _, number in numbers]
        verdicts = self._concurrently(self._verdict_select, wanted)
        tokens = self._concurrently_all(self._tokens_of_number, wanted)
        page = []
        for row, jws in zip(verdicts, tokens):
            verdict = None if row is None else verdict_from_json(row.body)
            if verdict is not None and verdict.is_listed:
                page.append(listing_of(verdict, tuple(r.jws for r in jws)))
        if len(numbers) < limit:
            return page, ""
        last_bucket, last_number = numbers[-1]
        return page, f"{last_bucket}:{last_number}"

    @_mapped
    def listed_in_hash_range(self, low: int, high: int, limit: int) -> list[Verdict]:
        numbers: list[str] = []
        for partition in range(low >> 24, (high >> 24) + 1):
            rows = self._session.execute(self._hash_range, (partition, low, high, limit - len(numbers)))
            numbers += [r.number for r in rows]
            if len(numbers) >= limit:
                break
        verdicts = [self.get_verdict(n) for n in numbers]
        return [v for v in verdicts if v is not None and v.is_listed]

    # --- learned trust -----------------------------------------------------------
    @_mapped
    def flags_of(self, number: str) -> list[Flag]:
        return sorted((_flag(row) for row in self._session.execute(self._flag_rows_of_number, (number,))),
                      key=lambda f: (f.app_id, f.reporter))

    @_mapped
    def label_as_published(self, label_id: str) -> Label | None:
        row = self._session.execute(self._label_by_id, (label_id,)).one()
        return None if row is None else _label(row)

    def scan_label_votes(self) -> Iterator[LabelVote]:
        return (LabelVote(row.number, row.issuer, row.category, row.confidence, _utc(row.issued_at).timestamp())
                for row in self._scan(self._label_votes))

    def scan_flag_votes(self) -> Iterator[FlagVote]:
        return (FlagVote(row.number, row.app_id, row.reporter, row.category, _utc(row.time).timestamp())
                for row in self._scan(self._flag_votes))

    def scan_verdict_numbers(self) -> Iterator[str]:
        return (row.number for row in self._scan(self._all_verdict_numbers))

    def _scan(self, statement: PreparedStatement) -> Iterator[Any]:
        """A full-table read, paged by the driver (a batch job's read, never on the call path)."""
        bound = statement.bind(())
        bound.fetch_size = SCAN_PAGE
        with _driver_errors():
            yield from self._session.execute(bound, timeout=60)

    @_mapped
    def put_trust_snapshot(self, epoch: int, body: str, at: datetime) -> bool:
        # The parts first, under this write's own id: once the epoch's row is visible, so is
        # every part it names, and a replica that loses the race removes only its own parts.
        body_id = uuid.uuid4().hex
        parts = [body[i:i + TRUST_PART_CHARS] for i in range(0, len(body), TRUST_PART_CHARS)] or [""]
        self._session.execute(self._trust_write_insert, (epoch, body_id))  # first: parts are never written unnoted
        execute_concurrent_with_args(self._session, self._trust_part_insert,
                                     [(epoch, body_id, i, text) for i, text in enumerate(parts)],
                                     concurrency=TRUST_PARTS_IN_FLIGHT, raise_on_first_error=True)
        if applied(self._session.execute(self._trust_insert, (epoch, at, body_id, len(parts), _digest(body)))):
            return True
        self._session.execute(self._trust_parts_delete, (epoch, body_id))
        self._session.execute(self._trust_write_delete, (epoch, body_id))
        return False

    @_mapped
    def trust_epochs(self) -> list[int]:
        return [row.epoch for row in self._session.execute(self._trust_epochs, timeout=60)]

    @_mapped
    def forget_trust_snapshots(self, before_epoch: int) -> int:
        # The rows first: a row never names parts already gone. Parts are found from the writes
        # noted (schema v007: also those of writes that died before their row) and from the rows
        # themselves (parts written before v007); the notes go last, so a failure midway leaves
        # every part still to remove noted for the next time.
        writes = [(row.epoch, row.body_id) for row in self._session.execute(self._trust_writes_before, (before_epoch,), timeout=60)]
        rows = list(self._session.execute(self._trust_rows_before, (before_epoch,), timeout=60))
        self._session.execute(self._trust_rows_delete, (before_epoch,))
        parts = sorted(set(writes) | {(row.epoch, row.body_id) for row in rows if row.body_id})
        execute_concurrent_with_args(self._session, self._trust_parts_delete, parts,
                                     concurrency=TRUST_PARTS_IN_FLIGHT, raise_on_first_error=True)
        execute_concurrent_with_args(self._session, self._trust_write_delete, writes,
                                     concurrency=TRUST_PARTS_IN_FLIGHT, raise_on_first_error=True)
        return len(rows)

    @_mapped
    def latest_trust_epoch(self) -> int | None:
        row = self._session.execute(self._trust_latest_epoch).one()
        return None if row is None else row.epoch

    @_mapped
    def latest_trust_snapshot(self) -> tuple[int, str] | None:
        row = self._session.execute(self._trust_latest).one()
        if row is None:
            return None
        if row.body is not None:  # written before the body went in parts (schema version 6)
            return row.epoch, row.body
        bound = self._trust_parts.bind((row.epoch, row.body_id))
        bound.fetch_size = TRUST_PARTS_PAGE
        texts = [part.text for part in self._session.execute(bound, timeout=60)]
        body = "".join(texts)
        if len(texts) != row.parts or _digest(body) != row.digest:
            raise StoreUnavailable(f"trust epoch {row.epoch}'s snapshot reads back incomplete: "
                                   f"{len(texts)} of {row.parts} parts, digest {'matches' if _digest(body) == row.digest else 'differs'}")
        return row.epoch, body


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MIN_UUID = uuid_from_time(0, node=0, clock_seq=0)
_LABEL_GRACE = timedelta(days=1)
_EVIDENCE_WRITE_OFFSET = timedelta(minutes=10)


def _digest(body: str) -> str:
    return hashlib.sha256(body.encode()).hexdigest()


def _parse_position(position: str) -> tuple[int, uuid.UUID]:
    if not position:
        return 0, _MIN_UUID
    bucket, _, change_id = position.partition(":")
    try:
        return int(bucket), uuid.UUID(change_id)
    except ValueError:
        raise InvalidArgument(f"cursor holds a bad change-feed position {position!r}; start again with an empty cursor", "bad_cursor") from None


def _uuid_time(value: uuid.UUID) -> float:
    return (value.time - 0x01B21DD213814000) / 1e7


def _listed_bucket(number: str) -> int:
    return zlib.crc32(number.encode()) % LISTED_BUCKETS


def _ttl(expires_at: datetime) -> int:
    remaining = (expires_at + _LABEL_GRACE - datetime.now(timezone.utc)).total_seconds()
    return max(1, min(int(remaining), 630_720_000))  # Cassandra's maximum TTL is 20 years


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value


def _label_values(label: Label) -> tuple[Any, ...]:
    return (label.number, label.issuer, label.category, label.confidence, label.issued_at, label.expires_at, label.token, label.evidence)


def _write_time(label: Label) -> int:
    """Evidence rows are written with a timestamp before any possible retraction
    (issued-at less twice the allowed clock skew), so a retraction's delete always
    wins over a late or repeated write of the same label."""
    return int((label.issued_at - _EVIDENCE_WRITE_OFFSET).timestamp() * 1_000_000)


def _label(row: Any, label_id: str | None = None) -> Label:
    return Label(label_id or row.label_id, row.issuer, row.number, row.category, row.confidence, _utc(row.issued_at),
                 _utc(row.expires_at), row.jws, row.evidence or "")


def _flag(row: Any) -> Flag:
    return Flag(row.number, row.app_id, row.reporter, row.category, _utc(row.time), row.comment or "")


def _participants(rows: Iterable[Any]) -> list[Participant]:
    grouped: dict[str, tuple[Any, list[PublicKeyRecord]]] = {}
    for row in rows:
        head, keys = grouped.setdefault(row.id, (row, []))
        if row.kid is not None:
            keys.append(PublicKeyRecord(row.kid, row.jwk, _utc(row.added_at), _utc(row.revoked_at) if row.revoked_at else None))
    return [
        Participant(pid, Role(head.role), head.display_name or "", tuple(sorted(keys, key=lambda k: (k.added_at, k.kid))))
        for pid, (head, keys) in sorted(grouped.items())
        if head.role is not None
    ]


def _evidence(number: str, label_rows: Iterable[Any], flag_rows: Iterable[Any]) -> Evidence:
    labels = tuple(sorted((_label(r) for r in label_rows), key=lambda lb: lb.id))
    tallies: dict[str, tuple[dict[str, int], datetime]] = {}
    for row in flag_rows:
        by_category, latest = tallies.get(row.app_id, ({}, _EPOCH))
        by_category[row.category] = by_category.get(row.category, 0) + 1
        tallies[row.app_id] = (by_category, max(latest, _utc(row.time)))
    flags = tuple(
        FlagTally(app, tuple(sorted(by_category.items())), latest) for app, (by_category, latest) in sorted(tallies.items())
    )
    return Evidence(number, labels, flags)
