"""The carrier's per-call client: one reputation check inside call set-up.

A carrier asks about the calling number while the call is being set up, so the
answer has a hard time budget (``deadline``, 50 ms by default) and the client
must never hold a call up. :class:`CarrierClient` (blocking, thread-safe) and
:class:`AsyncCarrierClient` (asyncio, ``grpc.aio``) share these rules:

* **Always an answer within the deadline.** :meth:`CarrierClient.check`
  returns a :class:`CallDecision`; it does not raise for network trouble. When
  the exchange is slow (``DEADLINE_EXCEEDED``), down (``UNAVAILABLE``,
  connection refused), overloaded (``RESOURCE_EXHAUSTED``) or broken
  (``INTERNAL``/``UNKNOWN``), the decision *fails open*: ``action="unknown"``,
  ``source="fail_open"`` and ``reason`` says why (``"timeout"``,
  ``"unavailable"``, ``"overloaded"``, ``"server_error"``, ``"circuit_open"``,
  ...). Treat ``"unknown"`` as allow: a reputation outage must not block calls.
* **Invalid numbers are reported, not hidden.** A calling number that is not a
  valid phone number (checked locally with the exchange's own
  ``numrep.core.numbers.normalize``, or refused by the exchange with
  ``INVALID_ARGUMENT``) gives ``source="invalid"``, ``reason="invalid_number"``
  and ``action="unknown"``; it is counted under ``stats().invalid``, not under
  fail-opens. Pass ``raise_on_invalid=True`` to get :class:`InvalidNumberError`
  instead. Withheld or garbage caller ids are common on real networks, so the
  default keeps call set-up code free of exception handling.
* **Rate limits.** A participant over its rate gets ``RESOURCE_EXHAUSTED``
  (``reason="overloaded"``) with a ``retry-after-ms`` trailer; until that
  time has passed, checks fail open at once as ``"rate_limited"`` without
  sending anything (cache hits are still answered).
* **Circuit breaker.** After ``failure_threshold`` consecutive transport
  failures the breaker opens and ``check`` answers ``reason="circuit_open"``
  at once, without touching the network, until a cool-down has passed and one
  trial call succeeds (see :mod:`numrep_client._breaker`).
* **Local cache.** Verdicts are kept, keyed by the E.164 number, until the
  verdict's own ``expires_at`` (never longer than ``max_ttl``), in an LRU of at
  most ``cache_size`` entries. ``"(202) 555-0143"`` and ``"+12025550143"``
  share an entry. Fail-open answers are never cached.
* **Authentication.** Every RPC carries a fresh single-use bearer JWT signed
  with the carrier's key. Signing happens inside the deadline; it costs about
  0.07 ms (EdDSA) to 0.1 ms (ES256) and is recorded in ``stats().token_mint``.
  Over mutual TLS with a certificate bound to the carrier
  (``TlsFiles(..., cert_identity=True)``) the connection authenticates it and
  RPCs carry no token: nothing is signed per call.

The decision's ``verdict`` is the exchange's ``numrep.v1.Verdict`` message
(shared with the cache: read it, do not modify it).

Logging goes to ``numrep_client.carrier`` and ``numrep_client.breaker``
(breaker transitions, refusals such as ``UNAUTHENTICATED``; at most one line
per kind of problem a minute). Phone numbers are never logged.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
import weakref
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

import grpc
import phonenumbers

from numrep.core.errors import InvalidNumber
from numrep.core.numbers import DEFAULT_REGION, normalize
from numrep.signing.jws import JwsRejected, header_type
from numrep.signing.keys import Identity
from numrep.signing.sessions import CALL_TOKEN_TYPE, session_expiry
from numrep.signing.tokens import DEFAULT_AUDIENCE, bearer_token, mint_token
from numrep.v1 import common_pb2, lookup_pb2, lookup_pb2_grpc, registry_pb2_grpc

from numrep_client._breaker import BreakerSnapshot, CircuitBreaker
from numrep_client._client import TlsFiles, open_channel, sends_tokens
from numrep_client._renewal import CONNECT_TIMEOUT, RECHECK_SECONDS, RETIRE_AFTER, CertificateRenewals, Stamp, checked_recheck
from numrep_client._sessions import SessionKeeper
from numrep_client._stream import (DEFAULT_ROTATE_AFTER, DEFAULT_WRITE_INTERVAL, LookupStreamClient, ThreadedLookupStream,
                                   checked_write_interval)

log = logging.getLogger("numrep_client.carrier")
# A library logs, the application decides where to: without a configured handler
# nothing is printed (configure "numrep_client" to see breaker and refusal warnings).
logging.getLogger("numrep_client").addHandler(logging.NullHandler())

DEFAULT_DEADLINE = 0.050
DEFAULT_CACHE_SIZE = 100_000
DEFAULT_MAX_TTL = 3600.0
MAX_BATCH_LOOKUP = 1000  # the exchange's default per-request maximum
SESSION_RPC_TIMEOUT = 5.0  # opening a call session: in the background, off every call's path

# Sources of a decision.
SOURCE_EXCHANGE = "exchange"
SOURCE_CACHE = "cache"
SOURCE_FAIL_OPEN = "fail_open"
SOURCE_INVALID = "invalid"

ACTION_NAMES = {
    common_pb2.ACTION_UNKNOWN: "unknown",
    common_pb2.ACTION_ALLOW: "allow",
    common_pb2.ACTION_WARN: "warn",
    common_pb2.ACTION_BLOCK: "block",
}

# gRPC status -> fail-open reason. The codes in _UNHEALTHY count as breaker failures.
_REASONS = {
    grpc.StatusCode.DEADLINE_EXCEEDED: "timeout",
    grpc.StatusCode.UNAVAILABLE: "unavailable",
    grpc.StatusCode.RESOURCE_EXHAUSTED: "overloaded",
    grpc.StatusCode.INTERNAL: "server_error",
    grpc.StatusCode.UNKNOWN: "server_error",
    grpc.StatusCode.DATA_LOSS: "server_error",
    grpc.StatusCode.CANCELLED: "cancelled",
    grpc.StatusCode.UNAUTHENTICATED: "unauthenticated",
    grpc.StatusCode.PERMISSION_DENIED: "permission_denied",
    grpc.StatusCode.UNIMPLEMENTED: "unimplemented",
}
_UNHEALTHY = frozenset(
    {
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.DATA_LOSS,
        grpc.StatusCode.CANCELLED,
    }
)
_CODE_BY_NUMBER = {code.value[0]: code for code in grpc.StatusCode}

# A carrier's connection that goes silent without closing is found within 10 s
# (numrep_client._client.KEEPALIVE_OPTIONS says why), also between two checks: a
# ping goes out after 5 s without hearing anything, whether a call is open or not,
# and the connection closes if it goes 5 s unanswered. Until then every check on it
# fails open at its deadline. The answers on a carrier's connection are small: a
# ping's answer waits 5 s behind them only on a link that is failing anyway. The
# exchange allows such pings (numrep.server.keepalive_options).
CARRIER_KEEPALIVE: tuple[tuple[str, int], ...] = (
    ("grpc.keepalive_time_ms", 5000),
    ("grpc.keepalive_timeout_ms", 5000),
    ("grpc.http2.ping_timeout_ms", 5000),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.keepalive_permit_without_calls", 1),
)

# Fast reconnection after an outage: without this a channel may wait up to two
# minutes (gRPC's default maximum backoff) before it tries the exchange again,
# and every half-open trial in that time would fail at once.
DEFAULT_CHANNEL_OPTIONS: tuple[tuple[str, int], ...] = (
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
    *CARRIER_KEEPALIVE,
)


class InvalidNumberError(ValueError):
    """The number is not a valid phone number (raised only with ``raise_on_invalid=True``)."""

    def __init__(self, number: str, message: str) -> None:
        super().__init__(message)
        self.number = number
        self.message = message


@dataclass(frozen=True, slots=True)
class CallDecision:
    """What to do with one incoming call.

    ``number`` is the E.164 form when the input could be normalised, else the
    input as given. ``action`` is ``"allow"``, ``"warn"``, ``"block"`` or
    ``"unknown"`` (no evidence, or no answer in time: treat as allow).
    ``source`` is ``"exchange"`` (answered by an RPC), ``"cache"``,
    ``"fail_open"`` (no usable answer; see ``reason``) or ``"invalid"`` (the
    number is not a valid phone number; ``reason="invalid_number"``).
    ``detail`` is a human-readable message for fail-open and invalid answers.
    ``latency`` is the seconds the check took (for :meth:`CarrierClient.check_many`:
    the whole batch).
    """

    number: str
    action: str
    category: str
    spam_probability: float
    source: str
    reason: str = ""
    verdict: common_pb2.Verdict | None = field(default=None, repr=False)
    latency: float = 0.0
    detail: str = ""

    @property
    def failed_open(self) -> bool:
        return self.source == SOURCE_FAIL_OPEN

    @property
    def invalid(self) -> bool:
        return self.source == SOURCE_INVALID

    @property
    def should_block(self) -> bool:
        return self.action == "block"

    @property
    def should_warn(self) -> bool:
        return self.action == "warn"


# --- latency and counters -------------------------------------------------------------
@dataclass(frozen=True)
class LatencySummary:
    """Percentiles (seconds) over the most recent samples (up to the recorder's capacity)."""

    count: int
    p50: float
    p90: float
    p99: float
    max: float

    @classmethod
    def of(cls, samples: Sequence[float]) -> "LatencySummary":
        if not samples:
            return cls(0, 0.0, 0.0, 0.0, 0.0)
        ordered = sorted(samples)
        return cls(len(ordered), _percentile(ordered, 50), _percentile(ordered, 90), _percentile(ordered, 99), ordered[-1])


def _percentile(ordered: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile of an ascending sequence."""
    rank = max(1, -(-len(ordered) * pct // 100))  # ceil
    return ordered[int(rank) - 1]


class LatencyRecorder:
    """A ring buffer of the last ``capacity`` samples; percentiles are computed
    on demand (sorting a copy), so recording costs one list store."""

    def __init__(self, capacity: int = 8192) -> None:
        self._samples: list[float] = []
        self._capacity = capacity
        self._next = 0
        self.total = 0

    def add(self, seconds: float) -> None:
        if len(self._samples) < self._capacity:
            self._samples.append(seconds)
        else:
            self._samples[self._next] = seconds
            self._next = (self._next + 1) % self._capacity
        self.total += 1

    def summary(self) -> LatencySummary:
        return LatencySummary.of(list(self._samples))

    def clear(self) -> None:
        self._samples.clear()
        self._next = 0
        self.total = 0


@dataclass(frozen=True)
class CarrierStats:
    """Counters since the client was created (or since ``reset_stats``).

    ``checks`` counts numbers answered (a ``check_many`` of 10 numbers counts
    10). ``hits``/``misses`` are cache lookups of valid numbers; a miss is
    answered by the exchange or fails open. ``fail_opens`` maps reason →
    count; ``errors`` counts RPCs that ended in a non-OK status (by status
    name in ``errors_by_code``). ``latency`` covers every ``check()``;
    ``latency_by_source`` splits it by decision source; ``batch_latency``
    covers ``check_many`` calls; ``token_mint`` is the time spent signing
    bearer tokens.
    """

    checks: int
    hits: int
    misses: int
    fail_opens: dict[str, int]
    errors: int
    errors_by_code: dict[str, int]
    invalid: int
    rpcs: int
    cache_entries: int
    latency: LatencySummary
    latency_by_source: dict[str, LatencySummary]
    batch_latency: LatencySummary
    token_mint: LatencySummary
    breaker: BreakerSnapshot

    @property
    def fail_open_total(self) -> int:
        return sum(self.fail_opens.values())

    @property
    def hit_ratio(self) -> float:
        looked = self.hits + self.misses
        return self.hits / looked if looked else 0.0


# --- cache ------------------------------------------------------------------------------
class VerdictCache:
    """An LRU of verdicts keyed by E.164 number, each kept until its
    ``expires_at`` (capped at ``max_ttl`` seconds from insertion).

    ``clock`` returns wall-clock seconds since the epoch (like ``time.time``);
    inject a fake one to test expiry. ``max_entries=0`` disables caching.
    """

    def __init__(self, max_entries: int = DEFAULT_CACHE_SIZE, *, clock: Callable[[], float] = time.time,
                 max_ttl: float = DEFAULT_MAX_TTL) -> None:
        if max_entries < 0:
            raise ValueError("max_entries must be >= 0")
        self.max_entries = max_entries
        self.max_ttl = max_ttl
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, common_pb2.Verdict]] = OrderedDict()
        self._lock = threading.Lock()
        self.evictions = 0
        self.expirations = 0

    def get(self, number: str) -> common_pb2.Verdict | None:
        with self._lock:
            found = self._entries.get(number)
            if found is None:
                return None
            until, verdict = found
            if self._clock() >= until:
                del self._entries[number]
                self.expirations += 1
                return None
            self._entries.move_to_end(number)
            return verdict

    def put(self, verdict: common_pb2.Verdict) -> bool:
        """Keep ``verdict`` until its expiry; False when it is already expired,
        has no expiry, or caching is disabled."""
        if self.max_entries == 0 or not verdict.HasField("expires_at"):
            return False
        now = self._clock()
        expires = verdict.expires_at.seconds + verdict.expires_at.nanos / 1e9
        until = min(expires, now + self.max_ttl)
        if until <= now:
            return False
        with self._lock:
            self._entries[verdict.number] = (until, verdict)
            self._entries.move_to_end(verdict.number)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
                self.evictions += 1
        return True

    def invalidate(self, number: str) -> None:
        with self._lock:
            self._entries.pop(number, None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


# --- the logic both clients share --------------------------------------------------------
MIN_RPC_BUDGET = 0.001  # below this, an RPC cannot finish in time: fail open without sending
LOG_INTERVAL = 60.0  # seconds between log lines about the same problem
MAX_RETRY_AFTER = 30.0  # the longest server-requested pause honoured


@dataclass
class _Pending:
    """A check that needs the exchange: the input and its normalised number."""

    raw: str
    number: str


@dataclass
class _Counters:
    checks: int = 0
    hits: int = 0
    misses: int = 0
    invalid: int = 0
    rpcs: int = 0
    fail_opens: dict[str, int] = field(default_factory=dict)
    errors_by_code: dict[str, int] = field(default_factory=dict)


class _CarrierCore:
    """Normalisation, cache, breaker bookkeeping, decisions and stats; no I/O.

    Decisions are built unstamped; ``finish`` (one check) or ``finish_batch``
    (a ``check_many``) stamps their latency and counts them.
    """

    def __init__(
        self,
        identity: Identity,
        *,
        audience: str,
        deadline: float,
        cache_size: int,
        breaker: CircuitBreaker | None,
        default_region: str,
        clock: Callable[[], float],
        max_ttl: float,
        deadline_margin: float,
        batch_size: int,
        tokens: bool = True,
        sessions: bool = True,
    ) -> None:
        if deadline <= 0:
            raise ValueError("deadline must be positive (seconds)")
        if not 1 <= batch_size <= MAX_BATCH_LOOKUP:
            raise ValueError(f"batch_size must be between 1 and {MAX_BATCH_LOOKUP}")
        self.identity = identity
        self.audience = audience
        self.tokens = tokens  # False: the connection's certificate authenticates us (TlsFiles.cert_identity)
        # A call session: call tokens MAC'd with its key in place of a signature per call.
        self.sessions = SessionKeeper(identity, audience) if tokens and sessions else None
        self.start_session: Callable[[], None] = lambda: None  # set by the client: opens one in the background
        self.deadline = deadline
        self.default_region = default_region
        self.deadline_margin = deadline_margin
        self.batch_size = batch_size
        self.cache = VerdictCache(cache_size, clock=clock, max_ttl=max_ttl)
        self.breaker = breaker if breaker is not None else CircuitBreaker()
        self._lock = threading.Lock()
        self._counters = _Counters()
        self._latency = LatencyRecorder()
        self._by_source = {s: LatencyRecorder() for s in (SOURCE_EXCHANGE, SOURCE_CACHE, SOURCE_FAIL_OPEN, SOURCE_INVALID)}
        self._batch_latency = LatencyRecorder()
        self._mint = LatencyRecorder()
        self._logged: dict[str, float] = {}
        self._hold_until = 0.0  # time.monotonic() before which the exchange asked us not to call

    # --- before the network ------------------------------------------------------------
    def prepare(self, raw: str, per_call: bool = False) -> CallDecision | _Pending:
        """An answer from local knowledge (invalid number, cache hit), or the
        normalised number to ask the exchange about. A ``per_call`` check (one
        with a callee or a caller-ID header) skips the cache: its answer depends
        on this call, not only on the number."""
        try:
            number = normalize(raw, self.default_region)
        except InvalidNumber as exc:
            return CallDecision(raw if isinstance(raw, str) else repr(raw), "unknown", "", 0.0, SOURCE_INVALID,
                                "invalid_number", None, 0.0, exc.message)
        if per_call:
            return _Pending(raw, number)
        verdict = self.cache.get(number)
        with self._lock:
            if verdict is None:
                self._counters.misses += 1
            else:
                self._counters.hits += 1
        if verdict is not None:
            return _from_verdict(number, verdict, SOURCE_CACHE)
        return _Pending(raw, number)

    def warm_up(self, regions: Iterable[str] = ()) -> None:
        """Pay first-use costs now rather than inside a call's deadline: the
        signing key's first token (several ms for ES256) and the numbering-plan
        metadata and patterns of each region (a few ms per region on first use)."""
        if self.tokens:
            mint_token(self.identity, self.audience)
        for region in dict.fromkeys([self.default_region, *regions]):
            example = phonenumbers.example_number(region)
            if example is not None:
                normalize(phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164), region)
                normalize(phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.NATIONAL), region)

    def budget(self, deadline: float | None) -> float:
        budget = self.deadline if deadline is None else deadline
        if budget <= 0:
            raise ValueError("deadline must be positive (seconds)")
        return budget

    def metadata(self) -> tuple[tuple[str, str], ...]:
        """A fresh bearer token for one RPC (timed: it is spent inside the deadline),
        MAC'd in the call session once one is open; none when the connection's
        certificate authenticates us."""
        if not self.tokens:
            with self._lock:
                self._counters.rpcs += 1
            return ()
        t0 = time.perf_counter()
        sessions = self.sessions
        if sessions is not None:
            token = sessions.token()
            if sessions.due():
                self.start_session()
        else:
            token = mint_token(self.identity, self.audience)
        elapsed = time.perf_counter() - t0
        with self._lock:
            self._mint.add(elapsed)
            self._counters.rpcs += 1
        return (("authorization", f"Bearer {token}"),)

    def wait_budget(self, remaining: float) -> float:
        """How long to wait for an RPC with ``remaining`` seconds left: minus a margin
        for waking up and answering, so the caller regains control inside the deadline."""
        return max(0.0, remaining - min(self.deadline_margin, remaining * 0.2))

    # --- after the network ----------------------------------------------------------------
    def on_verdict(self, pending: _Pending, verdict: common_pb2.Verdict) -> CallDecision:
        self.breaker.record_success()
        self.cache.put(verdict)
        return _from_verdict(pending.number, verdict, SOURCE_EXCHANGE)

    def held(self) -> float:
        """Seconds the exchange still asked us to wait (``retry-after-ms`` on a
        ``RESOURCE_EXHAUSTED`` answer), or 0: while held, checks fail open as
        ``"rate_limited"`` without sending anything."""
        return max(0.0, self._hold_until - time.monotonic())

    def hold(self, code: grpc.StatusCode, retry_after: float | None) -> None:
        if code == grpc.StatusCode.RESOURCE_EXHAUSTED and retry_after:
            with self._lock:
                self._hold_until = max(self._hold_until, time.monotonic() + min(retry_after, MAX_RETRY_AFTER))

    def on_error(self, pending: _Pending, code: grpc.StatusCode, details: str,
                 retry_after: float | None = None) -> CallDecision:
        """A failed Lookup: an invalid-number answer or a fail-open decision."""
        self._count_error(code.name)
        self.hold(code, retry_after)
        self.judge(code)
        self.unauthenticated(code)
        if code == grpc.StatusCode.INVALID_ARGUMENT:
            return CallDecision(pending.number, "unknown", "", 0.0, SOURCE_INVALID, "invalid_number", None, 0.0, details)
        if code not in _UNHEALTHY and self._should_log(code.name):
            log.warning("lookup refused by the exchange (%s: %s); failing open", code.name, details)
        return fail_open(pending.number, _reason(code), details)

    def unauthenticated(self, code: grpc.StatusCode) -> None:
        if code == grpc.StatusCode.UNAUTHENTICATED and self.sessions is not None:
            self.sessions.refused()

    def on_stream_answer(self, pending: _Pending, answer: lookup_pb2.StreamAnswer) -> CallDecision:
        """A lookup's answer on a stream: decided as the same Lookup call's answer or refusal."""
        if answer.error_code:
            return self.on_error(pending, _CODE_BY_NUMBER.get(answer.error_code, grpc.StatusCode.UNKNOWN), answer.error_message,
                                 answer.retry_after_ms / 1000 or None)
        return self.on_verdict(pending, answer.verdict)

    def on_stream_failure(self, pending: _Pending, exc: grpc.aio.AioRpcError) -> CallDecision:
        """The stream a lookup waited on failed, not the lookup: never an invalid number."""
        self.judge(exc.code())
        return self.on_batch_error((pending,), exc.code(), exc.details() or "", retry_after(exc))[0]

    @staticmethod
    def session_until(metadata: Sequence[tuple[str, str]]) -> float | None:
        """When the call session whose token is in ``metadata`` (a stream's opening) ends
        (epoch s); None for a signed token or none. Read from the token itself, so that it
        is that token's session even if another has been opened meanwhile."""
        token = bearer_token(metadata)
        try:
            return session_expiry(token).timestamp() if token and header_type(token) == CALL_TOKEN_TYPE else None
        except (JwsRejected, ValueError):  # not a token this client could have minted: the stream's refusal will say
            return None

    def on_batch_item(self, pending: _Pending, item: lookup_pb2.BatchLookupResult) -> CallDecision:
        if item.error_code == 0 and item.HasField("verdict"):
            self.cache.put(item.verdict)
            return _from_verdict(pending.number, item.verdict, SOURCE_EXCHANGE)
        code = _CODE_BY_NUMBER.get(item.error_code, grpc.StatusCode.UNKNOWN)
        self._count_error(code.name)
        if code == grpc.StatusCode.INVALID_ARGUMENT:
            return CallDecision(pending.number, "unknown", "", 0.0, SOURCE_INVALID, "invalid_number", None, 0.0,
                                item.error_message)
        return fail_open(pending.number, _reason(code), item.error_message)

    def on_batch_error(self, pendings: Iterable[_Pending], code: grpc.StatusCode, details: str,
                       retry_after: float | None = None) -> list[CallDecision]:
        """A whole BatchLookup failed: every number in it fails open. (Breaker
        bookkeeping is done once per check_many by the caller, via ``judge``.)"""
        self._count_error(code.name)
        self.hold(code, retry_after)
        self.unauthenticated(code)
        reason = "bad_request" if code == grpc.StatusCode.INVALID_ARGUMENT else _reason(code)
        return [fail_open(p.number, reason, details) for p in pendings]

    def on_client_error(self, pending: _Pending, exc: BaseException) -> CallDecision:
        if self._should_log(f"client:{type(exc).__name__}"):
            log.error("carrier check failed inside the client; failing open", exc_info=exc)
        self._count_error("CLIENT_ERROR")
        return fail_open(pending.number, "client_error", f"{type(exc).__name__}: {exc}")

    def judge(self, code: grpc.StatusCode | None) -> None:
        """Tell the breaker how the exchange behaved: ``None`` or an answered status
        is healthy; timeouts, unavailability, overload and server errors are not."""
        if code is not None and code in _UNHEALTHY:
            self.breaker.record_failure()
        else:
            self.breaker.record_success()

    def _should_log(self, key: str) -> bool:
        """At most one log line per kind of problem per ``LOG_INTERVAL`` seconds: a
        misconfigured client fails every call, and must not flood the log."""
        now = time.monotonic()
        with self._lock:
            last = self._logged.get(key)
            if last is not None and now - last < LOG_INTERVAL:
                return False
            self._logged[key] = now
            return True

    def _count_error(self, name: str) -> None:
        with self._lock:
            self._counters.errors_by_code[name] = self._counters.errors_by_code.get(name, 0) + 1

    # --- stamping and counting ------------------------------------------------------------
    def finish(self, decision: CallDecision, started: float) -> CallDecision:
        elapsed = time.perf_counter() - started
        stamped = _with_latency(decision, elapsed)
        with self._lock:
            self._count(stamped)
            self._latency.add(elapsed)
            self._by_source[stamped.source].add(elapsed)
        return stamped

    def finish_batch(self, decisions: Sequence[CallDecision], started: float) -> list[CallDecision]:
        elapsed = time.perf_counter() - started
        stamped = [_with_latency(d, elapsed) for d in decisions]
        with self._lock:
            self._batch_latency.add(elapsed)
            for decision in stamped:
                self._count(decision)
        return stamped

    def _count(self, decision: CallDecision) -> None:
        """Lock held."""
        c = self._counters
        c.checks += 1
        if decision.source == SOURCE_FAIL_OPEN:
            c.fail_opens[decision.reason] = c.fail_opens.get(decision.reason, 0) + 1
        elif decision.source == SOURCE_INVALID:
            c.invalid += 1

    def stats(self) -> CarrierStats:
        with self._lock:
            c = self._counters
            return CarrierStats(
                checks=c.checks,
                hits=c.hits,
                misses=c.misses,
                fail_opens=dict(c.fail_opens),
                errors=sum(c.errors_by_code.values()),
                errors_by_code=dict(c.errors_by_code),
                invalid=c.invalid,
                rpcs=c.rpcs,
                cache_entries=len(self.cache),
                latency=self._latency.summary(),
                latency_by_source={s: r.summary() for s, r in self._by_source.items()},
                batch_latency=self._batch_latency.summary(),
                token_mint=self._mint.summary(),
                breaker=self.breaker.snapshot(),
            )

    def reset_stats(self) -> None:
        with self._lock:
            self._counters = _Counters()
            for recorder in (self._latency, self._batch_latency, self._mint, *self._by_source.values()):
                recorder.clear()


def _open_failed(sessions: SessionKeeper | None, exc: BaseException) -> None:
    if sessions is not None:
        sessions.failed(None, f"{type(exc).__name__}: {exc}")


def fail_open(number: str, reason: str, detail: str = "") -> CallDecision:
    return CallDecision(number, "unknown", "", 0.0, SOURCE_FAIL_OPEN, reason, None, 0.0, detail)


def _with_latency(decision: CallDecision, latency: float) -> CallDecision:
    return CallDecision(decision.number, decision.action, decision.category, decision.spam_probability, decision.source,
                        decision.reason, decision.verdict, latency, decision.detail)


def _from_verdict(number: str, verdict: common_pb2.Verdict, source: str) -> CallDecision:
    return CallDecision(number, ACTION_NAMES.get(verdict.action, "unknown"), verdict.category, verdict.spam_probability,
                        source, "", verdict, 0.0, "")


def _reason(code: grpc.StatusCode) -> str:
    return _REASONS.get(code, code.name.lower())


def _chunks(items: Sequence[_Pending], size: int) -> list[Sequence[_Pending]]:
    return [items[i:i + size] for i in range(0, len(items), size)]


async def _within(call: grpc.aio.UnaryUnaryCall, seconds: float):  # type: ignore[no-untyped-def]
    """The call's response, or ``asyncio.TimeoutError`` after ``seconds``.

    Unlike ``asyncio.wait_for`` this does not wait for the cancelled call to wind
    down (that can take a loop iteration or two past the deadline): the call is
    cancelled and left to finish in the background, its outcome discarded."""
    task = asyncio.ensure_future(call)
    done, _ = await asyncio.wait((task,), timeout=seconds)
    if task in done:
        return task.result()
    call.cancel()
    task.add_done_callback(_discard_outcome)
    raise asyncio.TimeoutError


def _discard_outcome(task: "asyncio.Future[object]") -> None:
    if not task.cancelled():
        task.exception()


def retry_after(exc: grpc.RpcError) -> float | None:
    """The exchange's ``retry-after-ms`` trailer (sent with ``RESOURCE_EXHAUSTED``
    when a participant is over its rate), in seconds."""
    try:
        trailers = exc.trailing_metadata() or ()  # type: ignore[attr-defined]
        for key, value in trailers:
            if key == "retry-after-ms":
                return max(0.0, float(value) / 1000)
    except (AttributeError, TypeError, ValueError):
        pass
    return None


def _per_call(context: lookup_pb2.CallContext | None) -> bool:
    """Whether the exchange's answer is about this one call (consent to the callee,
    calling hours, caller-ID authentication) rather than about the number alone."""
    return context is not None and bool(context.callee or context.identity_header)


def _held(core: _CarrierCore, number: str) -> CallDecision | None:
    wait = core.held()
    if wait <= 0:
        return None
    return fail_open(number, "rate_limited", f"the exchange asked for a pause; {wait * 1000:.0f} ms left")


def _timeout_detail(budget: float) -> str:
    return f"no answer from the exchange within {budget * 1000:.1f} ms"


# --- the blocking client ------------------------------------------------------------------
class CarrierClient:
    """Blocking, thread-safe per-call reputation client for a carrier.

    ``target`` is the exchange address (``host:port``); ``identity`` the
    carrier's :class:`~numrep.signing.keys.Identity` (its private key signs a
    bearer token per RPC). Options:

    * ``deadline`` (seconds, default 0.050): the whole budget of one ``check``,
      from entry to return, including normalisation and token signing.
    * ``cache_size`` (default 100 000; 0 disables) and ``max_ttl`` (seconds,
      default 3600): the verdict cache; entries live until the verdict's
      ``expires_at``, never longer than ``max_ttl``.
    * ``breaker``: a :class:`CircuitBreaker` (default: 5 failures within 10 s
      open it for 5 s). Pass your own to tune it or to inject a clock; pass a
      ``NullBreaker`` to disable it.
    * ``default_region`` (``"US"``): how numbers without ``+`` are read.
    * ``clock``: wall-clock seconds for cache expiry (default ``time.time``).
    * ``deadline_margin`` (seconds, default 0.005, at most a fifth of the time
      left): the client stops waiting for the exchange this much before the
      deadline, so that it returns inside the deadline even when the process is
      busy. The RPC itself carries the full deadline to the exchange.
    * ``batch_size`` (≤ 1000): numbers per BatchLookup request in ``check_many``.
    * ``raise_on_invalid``: ``check`` raises :class:`InvalidNumberError` instead
      of returning a ``source="invalid"`` decision.
    * ``tls``: :class:`~numrep_client.TlsFiles` (CA, and for mutual TLS the
      client certificate and key) for an exchange that serves TLS; with
      ``cert_identity=True`` the certificate authenticates the carrier and no
      token is signed per call (no signing inside the deadline).
    * ``tls_recheck`` (seconds, default 30): how often the client looks at its
      TLS files. Once they hold a renewed certificate and its key, it connects
      with them in the background; once connected (with a stream too, if it
      streams), new checks go there, and the old connections close 10 s later.
      A renewal that does not connect is tried again at a later look, while the
      old connections go on. The exchange refuses a certificate past its
      notAfter, so replace the files well before then. Not with ``channel=``.
    * ``channel`` / ``channel_options``: bring your own ``grpc.Channel``, or
      tune the one created. The options given replace ``DEFAULT_CHANNEL_OPTIONS``
      (reconnect backoff capped at 1 s, and ``CARRIER_KEEPALIVE``): include them
      to keep them.
    * ``sessions`` (default True): once a call session is open (``wait_ready``
      opens one; otherwise the first call starts opening it in the background),
      each RPC carries a call token MAC'd with the session's key instead of a
      token signed with the carrier's key, which costs both sides a signature.
      Renewal runs in the background; while no session is open, or after the
      exchange refuses one, calls carry signed tokens.
    * ``stream`` (default False): ``check`` sends each lookup on one long-lived
      ``LookupStream`` instead of a Lookup call, with the same decisions: see
      :class:`AsyncCarrierClient`, whose stream client
      (:mod:`numrep_client._stream`) runs here on a thread and event loop of its
      own, over a ``grpc.aio`` channel of its own made from ``target``, ``tls``
      and ``channel_options``. ``stream_rotate_after`` and
      ``stream_write_interval`` as there. ``check_many`` still sends BatchLookups
      on the blocking channel.

    The first RPC on a new channel includes connecting (a TCP and HTTP/2
    handshake), and the first token and first number of a region pay one-off
    set-up costs of a few milliseconds; call :meth:`wait_ready` at start-up to
    pay all that before the first call arrives.
    """

    def __init__(
        self,
        target: str,
        identity: Identity,
        *,
        deadline: float = DEFAULT_DEADLINE,
        cache_size: int = DEFAULT_CACHE_SIZE,
        breaker: CircuitBreaker | None = None,
        default_region: str = DEFAULT_REGION,
        audience: str = DEFAULT_AUDIENCE,
        clock: Callable[[], float] = time.time,
        max_ttl: float = DEFAULT_MAX_TTL,
        deadline_margin: float = 0.005,
        batch_size: int = MAX_BATCH_LOOKUP,
        raise_on_invalid: bool = False,
        tls: TlsFiles | None = None,
        tls_recheck: float = RECHECK_SECONDS,
        channel: grpc.Channel | None = None,
        channel_options: Sequence[tuple[str, object]] = DEFAULT_CHANNEL_OPTIONS,
        sessions: bool = True,
        stream: bool = False,
        stream_rotate_after: float = DEFAULT_ROTATE_AFTER,
        stream_write_interval: float = DEFAULT_WRITE_INTERVAL,
    ) -> None:
        self._core = _CarrierCore(
            identity, audience=audience, deadline=deadline, cache_size=cache_size, breaker=breaker,
            default_region=default_region, clock=clock, max_ttl=max_ttl, deadline_margin=deadline_margin,
            batch_size=batch_size, tokens=sends_tokens(tls), sessions=sessions,
        )
        self._core.start_session = self._start_session
        self.target = target
        self.raise_on_invalid = raise_on_invalid
        self._owns_channel = channel is None
        options = list(channel_options)
        self._stream = stream
        self._stream_options = {"rotate_after": stream_rotate_after, "write_interval": checked_write_interval(stream_write_interval),
                                "valid_until": self._core.session_until}
        self._open_stream_channel = lambda: _aio_channel(target, tls, options)  # noqa: E731 - on the stream's own loop
        self._lookups: ThreadedLookupStream | None = None
        self._stream_ends: weakref.finalize | None = None
        self._lookups_lock = threading.Lock()
        self._closed = False
        checked_recheck(tls_recheck)
        self._renewals = CertificateRenewals(tls, tls_recheck) if tls is not None and channel is None else None
        self._retiring: list[threading.Timer] = []
        self._connect = lambda: open_channel(target, tls, options)  # noqa: E731 - the TLS files are read at each (re)connection
        self._channel = channel or self._connect()
        self._lookup = lookup_pb2_grpc.LookupServiceStub(self._channel)
        self._registry = registry_pb2_grpc.RegistryServiceStub(self._channel)

    def _start_session(self) -> None:
        try:
            threading.Thread(target=self._open_session, name="numrep-call-session", daemon=True).start()
        except RuntimeError as exc:  # no thread to be had: calls go on signed
            _open_failed(self._core.sessions, exc)

    def _open_session(self, timeout: float = SESSION_RPC_TIMEOUT) -> None:
        sessions = self._core.sessions
        assert sessions is not None
        try:
            request, metadata = sessions.request()
            sessions.opened(self._registry.OpenSession(request, metadata=metadata, timeout=timeout))
        except grpc.RpcError as exc:
            sessions.failed(exc.code(), exc.details() or "")
        except Exception as exc:  # a closed channel, say: calls go on with signed tokens
            _open_failed(sessions, exc)

    # --- configuration and state ------------------------------------------------------------
    @property
    def deadline(self) -> float:
        return self._core.deadline

    @property
    def cache(self) -> VerdictCache:
        return self._core.cache

    @property
    def breaker(self) -> CircuitBreaker:
        return self._core.breaker

    def stats(self) -> CarrierStats:
        """A snapshot of the counters and latency percentiles."""
        return self._core.stats()

    def reset_stats(self) -> None:
        self._core.reset_stats()

    def wait_ready(self, timeout: float = 5.0, *, regions: Iterable[str] = ()) -> bool:
        """Connect now and warm up what the first check would otherwise pay for
        inside its deadline (the signer, number metadata of ``default_region`` and
        of ``regions``), and open the call session. True when the channel is ready
        within ``timeout`` seconds."""
        started = time.monotonic()
        self._core.warm_up(regions)
        ready = grpc.channel_ready_future(self._channel)
        try:
            ready.result(timeout=timeout)
        except grpc.FutureTimeoutError:
            ready.cancel()
            return False
        sessions = self._core.sessions
        left = timeout - (time.monotonic() - started)
        if sessions is not None and left > 0 and sessions.due():
            self._open_session(min(left, SESSION_RPC_TIMEOUT))  # here rather than in the background: before the first call
        if self._stream:
            return self._stream_lookups().ready(max(0.0, timeout - (time.monotonic() - started)))
        return True

    def close(self) -> None:
        with self._lookups_lock:
            self._closed = True
            ending, self._stream_ends = self._stream_ends, None
            self._lookups = None
            retiring, self._retiring = self._retiring, []
        try:
            if ending is not None:
                ending()  # the stream's thread: its lookups still waiting fail open as cancelled
            for timer in retiring:  # connections replaced after a certificate renewal
                timer.cancel()
                timer.function(*timer.args)
        finally:
            if self._owns_channel:
                self._channel.close()

    def _follow_renewal(self) -> None:
        stamp = self._renewals.changed() if self._renewals is not None else None
        if stamp is None:
            return
        try:
            threading.Thread(target=self._reconnect, args=(stamp,), name="numrep-tls-renewal", daemon=True).start()
        except RuntimeError as exc:  # no thread to be had: a later look
            self._renewals.failed(str(exc))  # type: ignore[union-attr]

    def _reconnect(self, stamp: Stamp) -> None:
        """Connect with the renewed files (and open a stream, if this client streams); once
        connected, switch new checks there. The old connections close ``RETIRE_AFTER`` seconds
        later, or at ``close()``. Runs on a thread of its own, away from the checks."""
        renewals = self._renewals
        assert renewals is not None
        channel: grpc.Channel | None = None
        lookups: ThreadedLookupStream | None = None
        try:
            channel = self._connect()
            grpc.channel_ready_future(channel).result(timeout=CONNECT_TIMEOUT)
            if self._stream:
                lookups = ThreadedLookupStream(self._open_stream_channel, self._core.metadata, **self._stream_options)
                if not lookups.ready(CONNECT_TIMEOUT):
                    raise TimeoutError(f"the stream's channel did not connect within {CONNECT_TIMEOUT:.0f} s")
            with self._lookups_lock:
                if not self._closed:
                    ending = [self._channel.close] + ([self._stream_ends] if self._stream_ends is not None else [])
                    self._channel = channel
                    self._lookup = lookup_pb2_grpc.LookupServiceStub(channel)
                    self._registry = registry_pb2_grpc.RegistryServiceStub(channel)
                    if lookups is not None:
                        self._lookups, self._stream_ends = lookups, weakref.finalize(self, lookups.close)
                    channel, lookups = None, None  # the client's now
                    timer = threading.Timer(RETIRE_AFTER, _run_all, (ending,))
                    timer.daemon = True
                    self._retiring = [t for t in self._retiring if t.is_alive()] + [timer]
                    timer.start()
            renewals.taken(stamp)
        except Exception as exc:  # the connection did not come up (grpc.FutureTimeoutError, say): the old ones go on
            renewals.failed(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
        finally:
            _run_all([c.close for c in (lookups, channel) if c is not None])

    def _stream_lookups(self) -> ThreadedLookupStream:
        with self._lookups_lock:
            if self._closed:
                raise RuntimeError("the carrier client is closed")
            if self._lookups is None:
                lookups = ThreadedLookupStream(self._open_stream_channel, self._core.metadata, **self._stream_options)
                self._lookups = lookups
                self._stream_ends = weakref.finalize(self, lookups.close)  # also if the client is dropped unclosed
            return self._lookups

    def __enter__(self) -> "CarrierClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- checks ---------------------------------------------------------------------------------
    def check(self, number: str, context: lookup_pb2.CallContext | None = None, *,
              deadline: float | None = None) -> CallDecision:
        """The decision for a call from ``number``, within ``deadline`` seconds
        (default: the client's). Never raises for network trouble: see the module
        docstring for fail-open reasons. A ``context`` with a callee (consent,
        refusals, calling hours) or a SIP Identity header (caller-ID
        authentication) makes the answer about this one call: it is always asked
        of the exchange and never cached. Otherwise the context goes along on a
        cache miss."""
        started = time.perf_counter()
        core = self._core
        budget = core.budget(deadline)
        first = core.prepare(number, _per_call(context))
        if isinstance(first, CallDecision):
            return self._done(core.finish(first, started))
        pending = first
        self._follow_renewal()
        held = _held(core, pending.number)
        if held is not None:
            return core.finish(held, started)
        if not core.breaker.allow():
            return core.finish(fail_open(pending.number, "circuit_open", "circuit breaker open: not asking the exchange"), started)
        if self._stream:
            return self._done(core.finish(self._stream_check(pending, context, budget, started), started))
        try:
            metadata = core.metadata()
            remaining = budget - (time.perf_counter() - started)
            if remaining < MIN_RPC_BUDGET:
                core.breaker.release()
                return core.finish(fail_open(pending.number, "timeout", _timeout_detail(budget)), started)
            request = lookup_pb2.LookupRequest(number=pending.number, context=context)
            future = self._lookup.Lookup.future(request, metadata=metadata, timeout=remaining)
            try:  # issuing the call may itself take a while: wait only for what is left
                verdict = future.result(timeout=core.wait_budget(budget - (time.perf_counter() - started)))
            except grpc.FutureTimeoutError:
                # Not cancelled here: that costs time inside the deadline, and the
                # call's own gRPC deadline ends it a moment later anyway.
                decision = core.on_error(pending, grpc.StatusCode.DEADLINE_EXCEEDED, _timeout_detail(budget))
            except grpc.RpcError as exc:
                decision = core.on_error(pending, exc.code(), exc.details() or "", retry_after(exc))
            else:
                decision = core.on_verdict(pending, verdict)
        except Exception as exc:  # never let a client bug hold up a call
            core.breaker.release()
            decision = core.on_client_error(pending, exc)
        return self._done(core.finish(decision, started))

    def _stream_check(self, pending: _Pending, context: lookup_pb2.CallContext | None, budget: float,
                      started: float) -> CallDecision:
        core = self._core
        try:
            if budget - (time.perf_counter() - started) < MIN_RPC_BUDGET:
                core.breaker.release()
                return fail_open(pending.number, "timeout", _timeout_detail(budget))
            lookup = self._stream_lookups().lookup(lookup_pb2.LookupRequest(number=pending.number, context=context))
            try:
                answer = lookup.result(timeout=core.wait_budget(budget - (time.perf_counter() - started)))
            except TimeoutError:
                if lookup.cancel() or not lookup.done():  # forgotten: unwritten, it is never sent; a late answer is dropped
                    return core.on_error(pending, grpc.StatusCode.DEADLINE_EXCEEDED, _timeout_detail(budget))
                answer = lookup.result()  # it came as the wait ended
            return core.on_stream_answer(pending, answer)
        except grpc.aio.AioRpcError as exc:
            return core.on_stream_failure(pending, exc)
        except concurrent.futures.CancelledError:  # the stream's thread ended (close()) under it
            core.breaker.release()
            return fail_open(pending.number, "cancelled", "the carrier client was closed")
        except Exception as exc:  # never let a client bug hold up a call
            core.breaker.release()
            return core.on_client_error(pending, exc)

    def check_many(self, numbers: Sequence[str], *, deadline: float | None = None) -> list[CallDecision]:
        """Decisions for ``numbers`` (in order) within one ``deadline``. Cache hits
        and invalid numbers are answered locally; the misses go to the exchange
        in BatchLookup requests of at most ``batch_size`` numbers, sent in
        parallel. Every decision carries the whole batch's latency. Invalid
        numbers always come back as ``source="invalid"`` decisions here (a batch
        does not raise for one entry).

        The deadline covers the whole batch, and the exchange spends roughly
        0.03 ms per stored number on a BatchLookup (about 30-35 ms for 1,000
        numbers on a 2-CPU machine, plus transfer): pass a larger ``deadline``
        for batches of several hundred uncached numbers, or they fail open as
        ``"timeout"``."""
        started = time.perf_counter()
        core = self._core
        budget = core.budget(deadline)
        decisions, pendings = _split(core, numbers)
        if pendings:
            self._follow_renewal()
            answered = self._batch(pendings, budget, started)
            _fill(decisions, pendings, answered)
        return core.finish_batch([d for d in decisions if d is not None], started)

    def _batch(self, pendings: dict[str, tuple[_Pending, list[int]]], budget: float, started: float) -> dict[str, CallDecision]:
        core = self._core
        items = [p for p, _ in pendings.values()]
        if core.held():
            return {p.number: _held(core, p.number) or fail_open(p.number, "rate_limited") for p in items}
        if not core.breaker.allow():
            return {p.number: fail_open(p.number, "circuit_open", "circuit breaker open: not asking the exchange") for p in items}
        results: dict[str, CallDecision] = {}
        worst: grpc.StatusCode | None = None
        try:
            sent = []
            for chunk in _chunks(items, core.batch_size):
                metadata = core.metadata()
                remaining = budget - (time.perf_counter() - started)
                if remaining < MIN_RPC_BUDGET:
                    results.update((p.number, fail_open(p.number, "timeout", _timeout_detail(budget))) for p in chunk)
                    continue
                request = lookup_pb2.BatchLookupRequest(requests=[lookup_pb2.LookupRequest(number=p.number) for p in chunk])
                sent.append((chunk, self._lookup.BatchLookup.future(request, metadata=metadata, timeout=remaining)))
            for chunk, future in sent:
                remaining = budget - (time.perf_counter() - started)
                try:
                    response = future.result(timeout=core.wait_budget(remaining))
                except grpc.FutureTimeoutError:  # left to its own gRPC deadline, as in check()
                    worst = grpc.StatusCode.DEADLINE_EXCEEDED
                    failed = core.on_batch_error(chunk, worst, _timeout_detail(budget))
                    results.update((d.number, d) for d in failed)
                except grpc.RpcError as exc:
                    code = exc.code()
                    if code in _UNHEALTHY:
                        worst = code
                    failed = core.on_batch_error(chunk, code, exc.details() or "", retry_after(exc))
                    results.update((d.number, d) for d in failed)
                else:
                    for pending, item in zip(chunk, response.results):
                        results[pending.number] = core.on_batch_item(pending, item)
            if not sent:
                core.breaker.release()
            else:
                core.judge(worst)
        except Exception as exc:  # never let a client bug hold up calls
            core.breaker.release()
            for p in items:
                results.setdefault(p.number, core.on_client_error(p, exc))
        return results

    def _done(self, decision: CallDecision) -> CallDecision:
        if decision.invalid and self.raise_on_invalid:
            raise InvalidNumberError(decision.number, decision.detail)
        return decision


def _aio_channel(target: str, tls: TlsFiles | None, options: Sequence[tuple[str, object]]) -> grpc.aio.Channel:
    """A ``grpc.aio`` channel to ``target``, on the running event loop."""
    if tls is None:
        return grpc.aio.insecure_channel(target, options=list(options))
    return grpc.aio.secure_channel(target, tls.credentials(), options=list(options))


def _split(core: _CarrierCore, numbers: Sequence[str]) -> tuple[list[CallDecision | None], dict[str, tuple[_Pending, list[int]]]]:
    """Local answers by position, and the misses (one entry per distinct number
    with every position asking for it)."""
    if isinstance(numbers, str):
        raise TypeError("check_many takes a sequence of numbers, not one string")
    decisions: list[CallDecision | None] = []
    pendings: dict[str, tuple[_Pending, list[int]]] = {}
    for index, raw in enumerate(numbers):
        first = core.prepare(raw)
        if isinstance(first, CallDecision):
            decisions.append(first)
            continue
        decisions.append(None)
        pendings.setdefault(first.number, (first, []))[1].append(index)
    return decisions, pendings


def _fill(decisions: list[CallDecision | None], pendings: dict[str, tuple[_Pending, list[int]]],
          answered: dict[str, CallDecision]) -> None:
    for number, (pending, positions) in pendings.items():
        decision = answered.get(number) or fail_open(number, "client_error", "no answer recorded for this number")
        for index in positions:
            decisions[index] = decision


def _run_all(actions: Sequence[Callable[[], object]]) -> None:
    for action in actions:
        try:
            action()
        except Exception:  # a channel closed twice, say: the others still close
            log.debug("closing a replaced connection failed", exc_info=True)


async def _retire(channel: grpc.aio.Channel, lookups: LookupStreamClient | None) -> None:
    """Close a replaced channel (and the stream on it) ``RETIRE_AFTER`` seconds from now."""
    try:
        await asyncio.sleep(RETIRE_AFTER)
    finally:
        try:
            if lookups is not None:
                await lookups.close()
        finally:
            await channel.close()


# --- the asyncio client -------------------------------------------------------------------
class AsyncCarrierClient:
    """The asyncio form of :class:`CarrierClient` over a ``grpc.aio`` channel,
    with the same options, decisions, fail-open rules, breaker, cache and stats.

    ``stream=True``: ``check`` sends each lookup on one long-lived
    ``LookupStream`` (:mod:`numrep_client._stream`) instead of a Lookup call per
    number: the exchange spends a fraction of a call on each, and no token is
    signed or MAC'd per lookup (the stream is authenticated when it opens). The
    decisions are the same; a lookup the exchange refuses on its own (an invalid
    number, the rate exceeded) is decided as the same Lookup refusal would be.
    ``stream_rotate_after`` (seconds): when a new stream replaces the open one;
    ``stream_write_interval`` (seconds): the least time between two writes on the
    stream, so that lookups asked close together leave in one message
    (``numrep_client._stream``).

    Use it from one event loop: the channel is created on the first call (or
    on ``await wait_ready()``) inside the running loop and belongs to it.
    ``await close()`` (or ``async with``) when done.
    """

    def __init__(
        self,
        target: str,
        identity: Identity,
        *,
        deadline: float = DEFAULT_DEADLINE,
        cache_size: int = DEFAULT_CACHE_SIZE,
        breaker: CircuitBreaker | None = None,
        default_region: str = DEFAULT_REGION,
        audience: str = DEFAULT_AUDIENCE,
        clock: Callable[[], float] = time.time,
        max_ttl: float = DEFAULT_MAX_TTL,
        deadline_margin: float = 0.005,
        batch_size: int = MAX_BATCH_LOOKUP,
        raise_on_invalid: bool = False,
        tls: TlsFiles | None = None,
        tls_recheck: float = RECHECK_SECONDS,
        channel: grpc.aio.Channel | None = None,
        channel_options: Sequence[tuple[str, object]] = DEFAULT_CHANNEL_OPTIONS,
        sessions: bool = True,
        stream: bool = False,
        stream_rotate_after: float = DEFAULT_ROTATE_AFTER,
        stream_write_interval: float = DEFAULT_WRITE_INTERVAL,
    ) -> None:
        self._core = _CarrierCore(
            identity, audience=audience, deadline=deadline, cache_size=cache_size, breaker=breaker,
            default_region=default_region, clock=clock, max_ttl=max_ttl, deadline_margin=deadline_margin,
            batch_size=batch_size, tokens=sends_tokens(tls), sessions=sessions,
        )
        self._core.start_session = self._start_session
        self._session_task: asyncio.Task[None] | None = None
        self._stream = stream
        self._stream_rotate_after = stream_rotate_after
        self._stream_write_interval = checked_write_interval(stream_write_interval)
        self._lookups: LookupStreamClient | None = None
        self.target = target
        self.raise_on_invalid = raise_on_invalid
        self._channel_options = list(channel_options)
        self._tls = tls
        checked_recheck(tls_recheck)
        self._renewals = CertificateRenewals(tls, tls_recheck) if tls is not None and channel is None else None
        self._renewing: set[asyncio.Task[None]] = set()
        self._closing = False
        self._owns_channel = channel is None
        self._channel: grpc.aio.Channel | None = channel
        self._stub: lookup_pb2_grpc.LookupServiceStub | None = (
            lookup_pb2_grpc.LookupServiceStub(channel) if channel is not None else None
        )

    @property
    def deadline(self) -> float:
        return self._core.deadline

    @property
    def cache(self) -> VerdictCache:
        return self._core.cache

    @property
    def breaker(self) -> CircuitBreaker:
        return self._core.breaker

    def stats(self) -> CarrierStats:
        return self._core.stats()

    def reset_stats(self) -> None:
        self._core.reset_stats()

    def _lookup(self) -> lookup_pb2_grpc.LookupServiceStub:
        if self._stub is None:
            self._channel = _aio_channel(self.target, self._tls, self._channel_options)
            self._stub = lookup_pb2_grpc.LookupServiceStub(self._channel)
        return self._stub

    def _follow_renewal(self) -> None:
        if self._renewals is None or self._closing:
            return
        stamp = self._renewals.changed()
        if stamp is not None:
            renewing = asyncio.get_running_loop().create_task(self._reconnect(stamp))
            self._renewing.add(renewing)
            renewing.add_done_callback(self._renewing.discard)

    async def _reconnect(self, stamp: Stamp) -> None:
        """See :meth:`CarrierClient._reconnect`; a stream opens on the new channel at the next check."""
        renewals = self._renewals
        assert renewals is not None
        channel = _aio_channel(self.target, self._tls, self._channel_options)
        try:
            await asyncio.wait_for(channel.channel_ready(), CONNECT_TIMEOUT)
        except BaseException as exc:  # the old connections go on (cancelled: close() is under way)
            await channel.close()
            renewals.failed(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
            if isinstance(exc, asyncio.CancelledError):
                raise
            return
        if self._closing:
            await channel.close()
            return
        old_channel, old_lookups = self._channel, self._lookups
        self._channel, self._stub, self._lookups = channel, lookup_pb2_grpc.LookupServiceStub(channel), None
        renewals.taken(stamp)
        if old_channel is not None:
            await _retire(old_channel, old_lookups)

    def _start_session(self) -> None:
        self._session_task = asyncio.get_running_loop().create_task(self._open_session())

    async def _open_session(self, timeout: float = SESSION_RPC_TIMEOUT) -> None:
        sessions = self._core.sessions
        assert sessions is not None
        try:
            self._lookup()  # the channel, created in this loop if it is not yet
            request, metadata = sessions.request()
            reply = await registry_pb2_grpc.RegistryServiceStub(self._channel).OpenSession(request, metadata=metadata, timeout=timeout)
            sessions.opened(reply)
        except grpc.aio.AioRpcError as exc:
            sessions.failed(exc.code(), exc.details() or "")
        except Exception as exc:  # a closed channel, say: calls go on with signed tokens
            _open_failed(sessions, exc)
        finally:
            if sessions.opening:  # cancelled (close(), a caller's timeout): the next call may ask again
                sessions.failed(None, "interrupted")

    async def wait_ready(self, timeout: float = 5.0, *, regions: Iterable[str] = ()) -> bool:
        """See :meth:`CarrierClient.wait_ready`."""
        started = time.monotonic()
        self._core.warm_up(regions)
        self._lookup()
        assert self._channel is not None
        try:
            await asyncio.wait_for(self._channel.channel_ready(), timeout)
        except asyncio.TimeoutError:
            return False
        sessions = self._core.sessions
        left = timeout - (time.monotonic() - started)
        if sessions is not None and left > 0 and sessions.due():
            await self._open_session(min(left, SESSION_RPC_TIMEOUT))
        return True

    def _stream_lookups(self) -> LookupStreamClient:
        if self._lookups is None:
            self._lookups = LookupStreamClient(self._lookup(), self._core.metadata, rotate_after=self._stream_rotate_after,
                                               valid_until=self._core.session_until, write_interval=self._stream_write_interval)
        return self._lookups

    async def close(self) -> None:
        self._closing = True
        if self._session_task is not None and not self._session_task.done():
            self._session_task.cancel()
        renewing = list(self._renewing)
        for task in renewing:  # a connection with renewed files, or one they replaced: closed now
            task.cancel()
        await asyncio.gather(*renewing, return_exceptions=True)
        if self._lookups is not None:
            await self._lookups.close()
            self._lookups = None
        if self._owns_channel and self._channel is not None:
            await self._channel.close()
        self._channel, self._stub = None, None

    async def __aenter__(self) -> "AsyncCarrierClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def check(self, number: str, context: lookup_pb2.CallContext | None = None, *,
                    deadline: float | None = None) -> CallDecision:
        """See :meth:`CarrierClient.check`."""
        started = time.perf_counter()
        core = self._core
        budget = core.budget(deadline)
        first = core.prepare(number, _per_call(context))
        if isinstance(first, CallDecision):
            return self._done(core.finish(first, started))
        pending = first
        self._follow_renewal()
        held = _held(core, pending.number)
        if held is not None:
            return core.finish(held, started)
        if not core.breaker.allow():
            return core.finish(fail_open(pending.number, "circuit_open", "circuit breaker open: not asking the exchange"), started)
        try:
            if self._stream:
                decision = await self._stream_check(pending, context, budget, started)
            else:
                stub = self._lookup()
                metadata = core.metadata()
                remaining = budget - (time.perf_counter() - started)
                if remaining < MIN_RPC_BUDGET:
                    core.breaker.release()
                    return core.finish(fail_open(pending.number, "timeout", _timeout_detail(budget)), started)
                request = lookup_pb2.LookupRequest(number=pending.number, context=context)
                call = stub.Lookup(request, metadata=metadata, timeout=remaining)
                try:
                    verdict = await _within(call, core.wait_budget(budget - (time.perf_counter() - started)))
                except asyncio.TimeoutError:
                    decision = core.on_error(pending, grpc.StatusCode.DEADLINE_EXCEEDED, _timeout_detail(budget))
                except grpc.aio.AioRpcError as exc:
                    decision = core.on_error(pending, exc.code(), exc.details() or "", retry_after(exc))
                else:
                    decision = core.on_verdict(pending, verdict)
        except asyncio.CancelledError:
            core.breaker.release()
            raise
        except Exception as exc:  # never let a client bug hold up a call
            core.breaker.release()
            decision = core.on_client_error(pending, exc)
        return self._done(core.finish(decision, started))

    async def _stream_check(self, pending: _Pending, context: lookup_pb2.CallContext | None, budget: float,
                            started: float) -> CallDecision:
        core = self._core
        if budget - (time.perf_counter() - started) < MIN_RPC_BUDGET:
            core.breaker.release()
            return fail_open(pending.number, "timeout", _timeout_detail(budget))
        request = lookup_pb2.LookupRequest(number=pending.number, context=context)
        lookup = asyncio.ensure_future(self._stream_lookups().lookup(request))
        try:
            done, _ = await asyncio.wait((lookup,), timeout=core.wait_budget(budget - (time.perf_counter() - started)))
        except asyncio.CancelledError:
            lookup.cancel()
            raise
        if lookup not in done:
            lookup.cancel()  # forgotten: its answer, if it comes, is dropped
            return core.on_error(pending, grpc.StatusCode.DEADLINE_EXCEEDED, _timeout_detail(budget))
        try:
            answer = lookup.result()
        except grpc.aio.AioRpcError as exc:
            return core.on_stream_failure(pending, exc)
        return core.on_stream_answer(pending, answer)

    async def check_many(self, numbers: Sequence[str], *, deadline: float | None = None) -> list[CallDecision]:
        """See :meth:`CarrierClient.check_many`."""
        started = time.perf_counter()
        core = self._core
        budget = core.budget(deadline)
        decisions, pendings = _split(core, numbers)
        if pendings:
            self._follow_renewal()
            answered = await self._batch(pendings, budget, started)
            _fill(decisions, pendings, answered)
        return core.finish_batch([d for d in decisions if d is not None], started)

    async def _batch(self, pendings: dict[str, tuple[_Pending, list[int]]], budget: float,
                     started: float) -> dict[str, CallDecision]:
        core = self._core
        items = [p for p, _ in pendings.values()]
        if core.held():
            return {p.number: _held(core, p.number) or fail_open(p.number, "rate_limited") for p in items}
        if not core.breaker.allow():
            return {p.number: fail_open(p.number, "circuit_open", "circuit breaker open: not asking the exchange") for p in items}
        results: dict[str, CallDecision] = {}
        codes: list[grpc.StatusCode | None] = []

        async def one(chunk: Sequence[_Pending]) -> None:
            metadata = core.metadata()
            remaining = budget - (time.perf_counter() - started)
            if remaining < MIN_RPC_BUDGET:
                results.update((p.number, fail_open(p.number, "timeout", _timeout_detail(budget))) for p in chunk)
                return
            request = lookup_pb2.BatchLookupRequest(requests=[lookup_pb2.LookupRequest(number=p.number) for p in chunk])
            call = self._lookup().BatchLookup(request, metadata=metadata, timeout=remaining)
            try:
                response = await _within(call, core.wait_budget(budget - (time.perf_counter() - started)))
            except asyncio.TimeoutError:
                codes.append(grpc.StatusCode.DEADLINE_EXCEEDED)
                results.update((d.number, d) for d in core.on_batch_error(chunk, grpc.StatusCode.DEADLINE_EXCEEDED,
                                                                          _timeout_detail(budget)))
            except grpc.aio.AioRpcError as exc:
                codes.append(exc.code())
                results.update((d.number, d) for d in core.on_batch_error(chunk, exc.code(), exc.details() or "",
                                                                          retry_after(exc)))
            else:
                codes.append(None)
                for pending, item in zip(chunk, response.results):
                    results[pending.number] = core.on_batch_item(pending, item)

        try:
            await asyncio.gather(*(one(chunk) for chunk in _chunks(items, core.batch_size)))
            if not codes:
                core.breaker.release()
            else:
                core.judge(next((c for c in codes if c is not None and c in _UNHEALTHY), None))
        except asyncio.CancelledError:
            core.breaker.release()
            raise
        except Exception as exc:  # never let a client bug hold up calls
            core.breaker.release()
            for p in items:
                results.setdefault(p.number, core.on_client_error(p, exc))
        return results

    def _done(self, decision: CallDecision) -> CallDecision:
        if decision.invalid and self.raise_on_invalid:
            raise InvalidNumberError(decision.number, decision.detail)
        return decision
