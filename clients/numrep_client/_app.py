"""The app vendor's flag client: queue end users' flags, send them in batches.

:class:`AppFlagClient` does four things an app would otherwise get wrong:

* **Pseudonymous reporters.** ``flag(number, category, user_id)`` replaces the
  raw ``user_id`` by ``HMAC-SHA256(pseudonym_key, user_id)`` (hex) before the
  flag is queued, spooled or sent. The key stays in the app; keep it secret
  and stable (a new key turns every user into a new reporter, whose flags
  would count again). The exchange hashes the pseudonym once more with its own
  key before storing it, so neither side alone can link a stored reporter to
  a user.
* **De-duplication.** Queued flags are keyed by (reporter, number, category):
  a second flag for the same key replaces the first (the later ``time`` wins;
  with equal times the later call wins). Numbers are normalised to E.164
  first, so ``"(202) 555-0143"`` and ``"+12025550143"`` are the same number.
* **Idempotent batches.** ``flush()`` seals the queue into batches of at most
  ``batch_size`` flags, each with a ``batch_id`` fixed *before* the first
  attempt and reused on every retry, so a batch whose answer was lost is
  counted once (the exchange answers the retry with ``replayed_batch``).
  A sealed batch never changes; flags queued after sealing go to a later batch.
* **Retries.** ``UNAVAILABLE``, ``DEADLINE_EXCEEDED`` and ``RESOURCE_EXHAUSTED``
  are retried up to ``max_retries`` times with exponential backoff and
  jitter; when the exchange's rate limiter says how long to wait, the client
  waits at least that long. Any other error is permanent: the flush stops, the batch stays
  queued (flags are never dropped silently) and :attr:`FlushReport.error`
  says why; :meth:`AppFlagClient.discard` drops a batch you have given up on.

With ``spool_path`` the queue and the sealed batches (with their ids) live in
a SQLite file (WAL, ``synchronous=NORMAL``: they survive an app crash or
restart; a power cut may lose the last few flags), so a restarted app resends
exactly the same batches under the same ids. The spool holds pseudonyms only,
never raw user ids, and remembers which app identity and pseudonym key wrote
it: reopening it with another key or identity raises ``ValueError``.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import random
import re
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Sequence

import grpc

from numrep.core.categories import category as parse_category
from numrep.core.errors import InvalidArgument, InvalidNumber
from numrep.core.numbers import DEFAULT_REGION, normalize
from numrep.signing.keys import Identity
from numrep.signing.tokens import DEFAULT_AUDIENCE
from numrep.v1 import flags_pb2, publish_pb2

from numrep_client._client import ExchangeClient, ExchangeError, FlagToSend, TlsFiles

log = logging.getLogger("numrep_client.app")

RETRYABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.RESOURCE_EXHAUSTED})
MAX_BATCH_SIZE = 10_000  # the exchange's default per-batch maximum
MAX_COMMENT = 500
PSEUDONYM_CONTEXT = b"numrep-reporter-v1\x1f"
MAX_RETRY_AFTER = 60.0  # the longest server-requested pause honoured between attempts
_RETRY_IN = re.compile(r"retry in ([0-9]+(?:\.[0-9]+)?) ?s\b")


class InvalidFlag(ValueError):
    """``flag()`` refused its input; ``reason`` is machine-readable
    (``invalid_number``, ``unknown_category``, ``bad_user_id``, ``comment_too_long``)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class QueuedFlag:
    """A flag as queued: number in E.164, reporter already pseudonymised, time in UTC."""

    number: str
    category: str
    reporter_id: str
    time: datetime
    comment: str = ""

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.reporter_id, self.number, self.category)


@dataclass(frozen=True)
class SealedBatch:
    """A batch whose id and content are fixed; it is resent as is until the exchange answers."""

    batch_id: str
    flags: tuple[QueuedFlag, ...]
    attempts: int = 0


@dataclass
class FlushReport:
    """What one ``flush()`` did.

    ``sent`` counts flags in batches the exchange answered; of those,
    ``accepted`` were stored now, ``replayed`` had been stored by an earlier
    attempt of the same batch (a lost answer; they count once) and
    ``rejected`` maps reason → count (e.g. ``invalid_number``, ``too_old``).
    ``retries`` counts repeated attempts. ``deduplicated`` counts flags that a
    later flag replaced in the queue since the previous flush. ``pending`` is
    what is still queued afterwards; ``error`` says why the flush stopped
    early (empty when everything was answered).
    """

    batches: int = 0
    sent: int = 0
    accepted: int = 0
    replayed: int = 0
    replayed_batches: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    retries: int = 0
    deduplicated: int = 0
    pending: int = 0
    error: str = ""
    error_code: str = ""
    batch_ids: list[str] = field(default_factory=list)
    elapsed: float = 0.0

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())

    @property
    def delivered(self) -> int:
        """Flags the exchange holds from this flush (stored now or by an earlier attempt)."""
        return self.accepted + self.replayed

    @property
    def ok(self) -> bool:
        return not self.error and self.pending == 0


def pseudonymize(pseudonym_key: bytes, user_id: str) -> str:
    """The reporter id sent for ``user_id``: HMAC-SHA256 under the app's key, hex."""
    return hmac.new(pseudonym_key, PSEUDONYM_CONTEXT + user_id.encode("utf-8"), hashlib.sha256).hexdigest()


class AppFlagClient:
    """Queues end users' flags and sends them to the exchange in idempotent batches.

    ``target``/``identity``: the exchange and the app's own identity (role
    ``app_vendor``). ``pseudonym_key``: at least 16 secret bytes that never leave
    the app. Options: ``batch_size`` (flags per batch, default 500),
    ``max_retries`` (per batch and flush, default 5), ``spool_path`` (SQLite
    file for a durable queue; None keeps it in memory), ``max_per_reporter``
    (flags of one reporter per batch, default 50: the exchange rejects more as
    ``reporter_over_limit``, so a prolific reporter's flags are spread over
    several batches), ``timeout`` (seconds per
    attempt), ``backoff_base``/``backoff_max`` (seconds; the n-th retry waits
    ``min(backoff_max, backoff_base * 2**(n-1))`` scaled by a random factor in
    [0.5, 1)), ``default_region`` (for numbers without ``+``), ``tls``
    (:class:`~numrep_client.TlsFiles` for an exchange serving TLS), and
    ``sleep``/``rng`` (injectable for tests). ``client`` lets several helpers share one
    :class:`ExchangeClient` (it is then not closed by :meth:`close`).

    ``flag`` and ``flush`` may be called from different threads; flushes run
    one at a time.
    """

    def __init__(
        self,
        target: str,
        identity: Identity,
        pseudonym_key: bytes,
        *,
        batch_size: int = 500,
        max_retries: int = 5,
        spool_path: str | Path | None = None,
        max_per_reporter: int = 50,
        timeout: float = 10.0,
        backoff_base: float = 0.2,
        backoff_max: float = 10.0,
        default_region: str = DEFAULT_REGION,
        audience: str = DEFAULT_AUDIENCE,
        sleep: Callable[[float], None] = time.sleep,
        rng: Callable[[], float] = random.random,
        tls: TlsFiles | None = None,
        client: ExchangeClient | None = None,
    ) -> None:
        if not isinstance(pseudonym_key, (bytes, bytearray, memoryview)) or len(pseudonym_key) < 16:
            raise ValueError("pseudonym_key must be at least 16 bytes")
        pseudonym_key = bytes(pseudonym_key)
        if not 1 <= batch_size <= MAX_BATCH_SIZE:
            raise ValueError(f"batch_size must be between 1 and {MAX_BATCH_SIZE}")
        if max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        if max_per_reporter < 1:
            raise ValueError("max_per_reporter must be >= 1")
        self.max_per_reporter = max_per_reporter
        self.identity = identity
        self.batch_size = batch_size
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.default_region = default_region
        self._key = pseudonym_key
        self._sleep = sleep
        self._rng = rng
        self._owns_client = client is None
        self._client = client or ExchangeClient(target, identity, audience=audience, timeout=timeout, tls=tls)
        self._lock = threading.RLock()
        self._flush_lock = threading.Lock()
        self._queue: dict[tuple[str, str, str], tuple[int, QueuedFlag]] = {}
        self._sealed: list[SealedBatch] = []
        self._seq = 0
        self._deduplicated = 0
        self._spool = _Spool(Path(spool_path), identity.participant_id, _key_fingerprint(pseudonym_key)) if spool_path else None
        if self._spool is not None:
            self._seq, queued, self._sealed = self._spool.load()
            self._queue = {flag.key: (seq, flag) for seq, flag in queued}

    # --- queueing -----------------------------------------------------------------------
    def flag(self, number: str, category: str, user_id: str, comment: str = "", time: datetime | None = None) -> QueuedFlag:
        """Queue one end user's flag; returns it as queued (pseudonymised).

        ``time`` is when the user flagged (default: now; a naive datetime is
        read as UTC). Raises :class:`InvalidFlag` for an invalid number,
        unknown category, empty user id or a comment over 500 characters, so the
        app can tell its user at once.
        """
        if not isinstance(user_id, str) or not user_id:
            raise InvalidFlag("bad_user_id", "user_id must be a non-empty string")
        try:
            e164 = normalize(number, self.default_region)
        except InvalidNumber as exc:
            raise InvalidFlag("invalid_number", exc.message) from None
        try:
            parse_category(category)
        except InvalidArgument as exc:
            raise InvalidFlag("unknown_category", exc.message) from None
        if len(comment) > MAX_COMMENT:
            raise InvalidFlag("comment_too_long", f"comment longer than {MAX_COMMENT} characters")
        when = time or datetime.now(timezone.utc)
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        queued = QueuedFlag(e164, category, pseudonymize(self._key, user_id), when.astimezone(timezone.utc), comment)
        with self._lock:
            previous = self._queue.get(queued.key)
            if previous is not None:
                self._deduplicated += 1
                if previous[1].time > queued.time:
                    return previous[1]  # an older flag arrived late: keep the newer one
            self._seq += 1
            self._queue[queued.key] = (self._seq, queued)
            if self._spool is not None:
                self._spool.put(self._seq, queued)
        return queued

    def pending(self) -> int:
        """Flags not yet answered by the exchange (queued or in sealed batches)."""
        with self._lock:
            return len(self._queue) + sum(len(b.flags) for b in self._sealed)

    def sealed_batches(self) -> list[SealedBatch]:
        """Batches with fixed ids waiting to be (re)sent, oldest first."""
        with self._lock:
            return list(self._sealed)

    def discard(self, batch_id: str) -> int:
        """Drop a sealed batch (e.g. one the exchange refuses permanently); returns its size."""
        with self._lock:
            for index, batch in enumerate(self._sealed):
                if batch.batch_id == batch_id:
                    del self._sealed[index]
                    if self._spool is not None:
                        self._spool.remove_batch(batch_id)
                    return len(batch.flags)
        return 0

    # --- sending ------------------------------------------------------------------------
    def flush(self) -> FlushReport:
        """Send everything queued; see the module docstring for retries and errors.
        Blocks for at most about ``max_retries`` backoffs per batch; returns a
        :class:`FlushReport` and does not raise for exchange errors."""
        started = time.perf_counter()
        report = FlushReport()
        with self._flush_lock:
            with self._lock:
                self._seal()
                report.deduplicated, self._deduplicated = self._deduplicated, 0
                batches = list(self._sealed)
            for batch in batches:
                if not self._send(batch, report):
                    break
                with self._lock:
                    self._sealed = [b for b in self._sealed if b.batch_id != batch.batch_id]
                    if self._spool is not None:
                        self._spool.remove_batch(batch.batch_id)
        report.pending = self.pending()
        report.elapsed = time.perf_counter() - started
        return report

    def _seal(self) -> None:
        """Lock held: cut the queue into batches with fixed ids, oldest flags first,
        at most ``batch_size`` flags per batch and ``max_per_reporter`` per reporter
        per batch (a prolific reporter's further flags go to later batches)."""
        if not self._queue:
            return
        ordered = [flag for _, flag in sorted(self._queue.values(), key=lambda item: item[0])]
        new = [SealedBatch(uuid.uuid4().hex, tuple(flags)) for flags in _pack(ordered, self.batch_size, self.max_per_reporter)]
        if self._spool is not None:
            self._spool.seal(new)
        self._sealed.extend(new)
        self._queue.clear()

    def _send(self, batch: SealedBatch, report: FlushReport) -> bool:
        """One batch, with retries. True when the exchange answered it."""
        flags = [FlagToSend(f.number, f.category, f.reporter_id, f.time, f.comment) for f in batch.flags]
        retries = 0
        while True:
            self._attempted(batch)
            try:
                result = self._client.submit_flags(flags, batch_id=batch.batch_id)
            except ExchangeError as exc:
                if exc.code in RETRYABLE and retries < self.max_retries:
                    retries += 1
                    report.retries += 1
                    delay = min(self.backoff_max, self.backoff_base * 2 ** (retries - 1)) * (0.5 + self._rng() / 2)
                    hint = _retry_hint(exc)  # an app over its flag rate is told when to come back
                    if hint is not None:
                        delay = max(delay, min(hint, MAX_RETRY_AFTER))
                    log.info("flag batch %s: %s, retry %d in %.2f s", batch.batch_id, exc.code.name, retries, delay)
                    self._sleep(delay)
                    continue
                report.error = f"{exc.code.name}: {exc.details}"
                report.error_code = exc.code.name
                if exc.code in RETRYABLE:
                    log.warning("flag batch %s still failing after %d retries; kept for the next flush", batch.batch_id, retries)
                else:
                    log.error("flag batch %s refused (%s); flush stopped, batch kept", batch.batch_id, exc.code.name)
                return False
            _account(result, len(batch.flags), report)
            report.batch_ids.append(batch.batch_id)
            return True

    def _attempted(self, batch: SealedBatch) -> None:
        with self._lock:
            if self._spool is not None:
                self._spool.attempted(batch.batch_id)
            self._sealed = [SealedBatch(b.batch_id, b.flags, b.attempts + 1) if b.batch_id == batch.batch_id else b
                            for b in self._sealed]

    # --- lifecycle ----------------------------------------------------------------------
    def close(self) -> None:
        """Close the connection and the spool. Queued flags stay in the spool (if
        any) for the next run; without a spool, unflushed flags are lost."""
        if self._owns_client:
            self._client.close()
        if self._spool is not None:
            self._spool.close()

    def __enter__(self) -> "AppFlagClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _pack(flags: Sequence[QueuedFlag], size: int, per_reporter: int) -> list[list[QueuedFlag]]:
    """First fit: each flag goes to the earliest batch with room for it and for
    one more flag of its reporter."""
    batches: list[list[QueuedFlag]] = []
    counts: list[dict[str, int]] = []
    first_open = 0  # batches before this one are full
    next_for: dict[str, int] = {}  # reporter -> first batch that may still take its flags
    for flag in flags:
        index = max(first_open, next_for.get(flag.reporter_id, 0))
        while index < len(batches) and (len(batches[index]) >= size or counts[index].get(flag.reporter_id, 0) >= per_reporter):
            index += 1
        if index == len(batches):
            batches.append([])
            counts.append({})
        batches[index].append(flag)
        counts[index][flag.reporter_id] = counts[index].get(flag.reporter_id, 0) + 1
        if counts[index][flag.reporter_id] >= per_reporter:
            next_for[flag.reporter_id] = index + 1
        while first_open < len(batches) and len(batches[first_open]) >= size:
            first_open += 1
    return batches


def _account(result: flags_pb2.FlagBatchResult, size: int, report: FlushReport) -> None:
    report.batches += 1
    report.sent += size
    if result.replayed_batch:
        report.replayed_batches += 1
    for item in result.results:
        if item.status == publish_pb2.ITEM_STATUS_ACCEPTED:
            report.accepted += 1
        elif item.status == publish_pb2.ITEM_STATUS_DUPLICATE:
            report.replayed += 1
        elif item.status == publish_pb2.ITEM_STATUS_REJECTED:
            reason = item.reason or "rejected"
            report.rejected[reason] = report.rejected.get(reason, 0) + 1


def _retry_hint(exc: ExchangeError) -> float | None:
    """Seconds the exchange asked us to wait before retrying (RESOURCE_EXHAUSTED
    from its rate limiter): ``exc.retry_after`` when the error carries it, else the
    "retry in N s" of its message."""
    if exc.code != grpc.StatusCode.RESOURCE_EXHAUSTED:
        return None
    carried = getattr(exc, "retry_after", None)
    if isinstance(carried, (int, float)):
        return max(0.0, float(carried))
    found = _RETRY_IN.search(exc.details or "")
    return float(found.group(1)) if found else None


def _key_fingerprint(key: bytes) -> str:
    return hmac.new(key, b"numrep-spool-fingerprint", hashlib.sha256).hexdigest()[:16]


def _ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


def _from_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, timezone.utc)


_SPOOL_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS queued (
    reporter TEXT NOT NULL, number TEXT NOT NULL, category TEXT NOT NULL,
    time_ms INTEGER NOT NULL, comment TEXT NOT NULL, seq INTEGER NOT NULL,
    PRIMARY KEY (reporter, number, category));
CREATE TABLE IF NOT EXISTS batches (
    batch_id TEXT PRIMARY KEY, seq INTEGER NOT NULL, attempts INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS batch_flags (
    batch_id TEXT NOT NULL, idx INTEGER NOT NULL, reporter TEXT NOT NULL, number TEXT NOT NULL,
    category TEXT NOT NULL, time_ms INTEGER NOT NULL, comment TEXT NOT NULL,
    PRIMARY KEY (batch_id, idx));
"""


class _Spool:
    """The durable queue: SQLite, one connection guarded by the client's lock."""

    def __init__(self, path: Path, participant_id: str, fingerprint: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600, exist_ok=True)  # pseudonyms are still personal data: owner-only
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SPOOL_SCHEMA)
        for key, value in (("participant_id", participant_id), ("key_fingerprint", fingerprint)):
            self._db.execute("INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)", (key, value))
            stored = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()[0]
            if stored != value:
                self._db.close()
                what = "app identity" if key == "participant_id" else "pseudonym key"
                raise ValueError(f"spool {path} was written with another {what}; use the original or a new spool file")

    def load(self) -> tuple[int, list[tuple[int, QueuedFlag]], list[SealedBatch]]:
        queued = [
            (seq, QueuedFlag(number, category, reporter, _from_ms(time_ms), comment))
            for reporter, number, category, time_ms, comment, seq in self._db.execute(
                "SELECT reporter, number, category, time_ms, comment, seq FROM queued ORDER BY seq")
        ]
        sealed = []
        for batch_id, attempts in self._db.execute("SELECT batch_id, attempts FROM batches ORDER BY seq").fetchall():
            flags = tuple(
                QueuedFlag(number, category, reporter, _from_ms(time_ms), comment)
                for reporter, number, category, time_ms, comment in self._db.execute(
                    "SELECT reporter, number, category, time_ms, comment FROM batch_flags WHERE batch_id = ? ORDER BY idx",
                    (batch_id,))
            )
            sealed.append(SealedBatch(batch_id, flags, attempts))
        top = self._db.execute("SELECT MAX(seq) FROM (SELECT seq FROM queued UNION ALL SELECT seq FROM batches)").fetchone()[0]
        return int(top or 0), queued, sealed

    def put(self, seq: int, flag: QueuedFlag) -> None:
        self._db.execute(
            "INSERT INTO queued (reporter, number, category, time_ms, comment, seq) VALUES (?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (reporter, number, category) DO UPDATE SET"
            " time_ms = excluded.time_ms, comment = excluded.comment, seq = excluded.seq",
            (flag.reporter_id, flag.number, flag.category, _ms(flag.time), flag.comment, seq),
        )

    def seal(self, batches: Sequence[SealedBatch]) -> None:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            top = db.execute("SELECT COALESCE(MAX(seq), 0) FROM batches").fetchone()[0]
            for offset, batch in enumerate(batches, start=1):
                db.execute("INSERT INTO batches (batch_id, seq, attempts) VALUES (?, ?, 0)", (batch.batch_id, top + offset))
                db.executemany(
                    "INSERT INTO batch_flags (batch_id, idx, reporter, number, category, time_ms, comment)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [(batch.batch_id, i, f.reporter_id, f.number, f.category, _ms(f.time), f.comment)
                     for i, f in enumerate(batch.flags)],
                )
            db.execute("DELETE FROM queued")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def attempted(self, batch_id: str) -> None:
        self._db.execute("UPDATE batches SET attempts = attempts + 1 WHERE batch_id = ?", (batch_id,))

    def remove_batch(self, batch_id: str) -> None:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("DELETE FROM batch_flags WHERE batch_id = ?", (batch_id,))
            db.execute("DELETE FROM batches WHERE batch_id = ?", (batch_id,))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def close(self) -> None:
        self._db.close()
