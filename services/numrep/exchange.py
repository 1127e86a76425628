"""The exchange's use cases, independent of gRPC: authenticate, look up,
publish, retract, flag, sync and manage the registry.

Methods are synchronous (stores block); the gRPC servicers run them in worker
threads. Every evidence change recomputes the number's verdict under a
per-number lock and stores it, so a lookup is a single read.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import itertools
import json
import threading
import time
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Awaitable, Callable, Iterable, Iterator, Mapping, Sequence

from numrep.core.categories import category as parse_category
from numrep.core.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    NumrepError,
    PermissionDenied,
    RateLimited,
    TooLarge,
    Unauthenticated,
)
from numrep.core.model import Action, Evidence, Flag, Label, Participant, PublicKeyRecord, Role, SyncEntry, SyncPage, Verdict
from numrep.core.numbers import DEFAULT_REGION, normalize, normalize_each
from numrep.core.privacy import prefix_range
from numrep.core.pseudonym import Pseudonymizer
from numrep.core.reconcile import ReconcileConfig, Reconciler, RoleWeightedReconciler
from numrep.core.reassignment import MARKER_ROLES, is_vote
from numrep.core.roles import allowed, allowed_in_session
from numrep.limits import RPC_CLASS, Rate, RateLimits, TokenBuckets
from numrep.shaken import INTERCEPT_REASONS, TrustAnchors, adjust_probability, risk_adjustment, verify_passport
from numrep.signing.jws import JwsRejected, header_type, registered_key
from numrep.signing.keys import parse_public_jwk
from numrep.signing.labels import LabelPolicy, verify_label
from numrep.signing.revocation import RevocationMarks, mark_revoked_keys, signing_kid
from numrep.signing.sessions import (CALL_TOKEN_TYPE, DEFAULT_SESSION_LIFETIME, MAX_SESSION_LIFETIME, CallSession,
                                     open_session, verify_call_token)
from numrep.signing.tokens import Proof, ReplayCache, TokenPolicy, verify_token_key
from numrep.learned_trust import TrustKeeper
from numrep.store.base import AddOutcome, Store
from numrep.store.verdict_cache import DEFAULT_ENTRIES as DEFAULT_VERDICT_CACHE, VerdictCache
from numrep.trust import TrustConfig, TrustModel, TrustReconciler, TrustSnapshot

if TYPE_CHECKING:
    from numrep.cases import CaseDesk
    from numrep.consent import ConsentLedger

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class Limits:
    max_batch_lookup: int = 1000
    max_publish: int = 1000
    max_flags: int = 10_000
    max_retract: int = 1000
    max_comment: int = 500
    max_reporter_id: int = 128
    max_batch_id: int = 128
    default_chunk: int = 500
    max_chunk: int = 5000
    max_bucket: int = 5000


@dataclass(frozen=True)
class ExchangeConfig:
    default_region: str = DEFAULT_REGION
    limits: Limits = field(default_factory=Limits)
    token_policy: TokenPolicy = field(default_factory=TokenPolicy)
    label_policy: LabelPolicy = field(default_factory=LabelPolicy)
    participant_cache_seconds: float = 5.0
    rate_limits: RateLimits = field(default_factory=RateLimits)
    shaken_max_age: timedelta = timedelta(seconds=60)
    flag_max_age: timedelta = timedelta(days=365)
    reconciler: str = "trust"  # "trust": the learned trust engine; "v1": role-weighted reconciliation
    verdict_cache_entries: int = DEFAULT_VERDICT_CACHE  # batch lookups' verdicts held in memory, where the store allows (0 = none)
    # How long one LookupStream may stay open on the proof it opened with: then the caller proves itself again.
    lookup_stream_lifetime: timedelta = timedelta(hours=1)
    # The regulator confirms labels: its word is not capped like a competitor's.
    trust: TrustConfig = field(default_factory=lambda: TrustConfig(exempt_roles=frozenset({Role.REGULATOR})))


@dataclass(frozen=True)
class ItemOutcome:
    index: int
    id: str
    status: str  # "accepted" | "duplicate" | "rejected"
    reason: str = ""
    message: str = ""


class BatchAnswer:
    """One number's answer in a batch lookup, ``verdict``. When that answer is the
    stored verdict with nothing but a new cache expiry, ``stored`` is the stored
    verdict and ``expires_at`` the answer's expiry (else ``stored`` is None): an
    encoding of the stored verdict can then serve every batch that asks, and the
    answer itself is built only if someone asks for it."""

    __slots__ = ("stored", "expires_at", "_verdict")

    def __init__(self, verdict: Verdict | None, stored: Verdict | None = None, expires_at: datetime | None = None) -> None:
        self._verdict = verdict
        self.stored = stored
        self.expires_at = verdict.expires_at if verdict is not None else expires_at

    @property
    def verdict(self) -> Verdict:
        if self._verdict is None:
            assert self.stored is not None and self.expires_at is not None
            self._verdict = self.stored if self.expires_at == self.stored.expires_at else self.stored.with_expiry(self.expires_at)
        return self._verdict


@dataclass(frozen=True)
class FlagInput:
    number: str
    category: str
    reporter_id: str
    time: datetime | None
    comment: str = ""


class Exchange:
    def __init__(
        self,
        store: Store,
        pseudonymizer: Pseudonymizer,
        config: ExchangeConfig | None = None,
        reconciler: Reconciler | None = None,
        clock: Clock = utc_now,
        shaken_anchors: TrustAnchors | None = None,
    ) -> None:
        self.store = store
        self.config = config or ExchangeConfig()
        self.clock = clock
        self.pseudonym = pseudonymizer
        self.trust: TrustKeeper | None = None
        if reconciler is None and self.config.reconciler == "trust":
            model = TrustModel(self.participant, self.config.trust)
            self.trust = TrustKeeper(store, model)
            self.trust.load_latest()
            reconciler = TrustReconciler(self.participant, model, flags_for=store.flags_of)
        elif reconciler is None and self.config.reconciler != "v1":
            raise InvalidArgument(f"unknown reconciler {self.config.reconciler!r}; use 'trust' or 'v1'")
        self.reconciler = reconciler or RoleWeightedReconciler(self.participant)
        self._replay = ReplayCache()
        self._participants: dict[str, tuple[float, Participant | None]] = {}
        self._number_locks = [threading.Lock() for _ in range(256)]
        self._buckets = TokenBuckets()
        self.shaken_anchors = shaken_anchors or TrustAnchors()
        self.consent: ConsentLedger | None = None  # consent ledger (numrep.consent), attached by server.build_exchange
        self.cases: CaseDesk | None = None  # complaints and disputes (numrep.cases), attached by CaseDesk.of
        # A server's refits, in a process of their own (numrep.trust_job.RefitJob), attached by start_server.
        self.refit_apart: Callable[[], Awaitable[tuple[TrustSnapshot, int]]] | None = None
        self._kid_of = functools.lru_cache(maxsize=65_536)(self._label_kid)
        self._mark_revoked = functools.partial(mark_revoked_keys, participants=self.participant, kid_of=self._kid_of)  # keys revoked since: noted
        self._session_keys = functools.lru_cache(maxsize=4096)(_session_key)  # a session's every call asks
        entries = self.config.verdict_cache_entries
        self._batch_verdicts: VerdictCache | Store = VerdictCache(store, entries) if entries and store.prompt_feed else store

    # --- identity ----------------------------------------------------------------
    def participant(self, participant_id: str) -> Participant | None:
        """Registry read with a short cache; writes through this exchange invalidate it."""
        now = time.monotonic()
        cached = self._participants.get(participant_id)
        if cached is not None and now - cached[0] < self.config.participant_cache_seconds:
            return cached[1]
        found = self.store.get_participant(participant_id)
        self._participants[participant_id] = (now, found)
        return found

    def prove(self, token: str | None) -> Proof:
        """Who sent ``token`` (signed with its key, or MAC'd in one of its call
        sessions), and with which key; ``Unauthenticated`` saying why not."""
        if not token:
            raise Unauthenticated("missing bearer token: send 'authorization: Bearer <JWT signed with your key>'", "missing_token")
        now, policy = self.clock(), self.config.token_policy
        try:
            if header_type(token) == CALL_TOKEN_TYPE:
                participant, kid, ends = verify_call_token(token, self._session_key, self.participant, now, self._replay, policy)
                return Proof(participant, kid, "session", ends)
            participant, kid = verify_token_key(token, self.participant, now, self._replay, policy)
            return Proof(participant, kid, "token")
        except JwsRejected as exc:
            raise Unauthenticated(f"bearer token rejected ({exc.reason}): {exc.message}", exc.reason) from None

    def check_still_proven(self, proof: Proof) -> None:
        """For a stream that outlives the call that opened it: ``Unauthenticated``
        once ``proof``'s participant is gone or its key revoked (as the registry's
        short cache sees it), or once the proof itself has ended (``Proof.until``)."""
        now = self.clock()
        if proof.until is not None and now >= proof.until:
            what = "client certificate" if proof.via == "certificate" else "call session"
            raise Unauthenticated(f"the {what} that opened this stream ended at {proof.until:%Y-%m-%dT%H:%M:%SZ}; "
                                  "open a new one", "stream_expired")
        try:
            registered_key(self.participant, proof.participant.id, proof.kid, now)
        except JwsRejected as exc:
            raise Unauthenticated(f"key {proof.kid!r} of participant {proof.participant.id!r}, which opened this stream, "
                                  f"is revoked or no longer registered ({exc.message})", exc.reason) from None

    def open_session(self, proof: Proof, lifetime: timedelta | None = None) -> CallSession:
        """A call session for ``proof``'s participant, bound to the key it proved
        (see ``numrep.signing.sessions``), accepted no longer than the proof holds
        (a client certificate's notAfter); ``authorize`` keeps call tokens from
        opening one (a stolen session key would outlive its session)."""
        lifetime = DEFAULT_SESSION_LIFETIME if lifetime is None else lifetime
        if not timedelta(seconds=1) <= lifetime <= MAX_SESSION_LIFETIME:
            raise InvalidArgument(f"a session lasts 1 to {int(MAX_SESSION_LIFETIME.total_seconds())} s", "bad_session_lifetime")
        now = self.clock()
        if proof.until is not None:
            # a session is accepted until clock_skew past its expiry (replicas' clocks differ): it expires that much sooner
            left = proof.until - self.config.token_policy.clock_skew - now
            if left < timedelta(seconds=1):
                raise Unauthenticated(f"the client certificate ends at {proof.until:%Y-%m-%dT%H:%M:%SZ}, too soon to open a "
                                      "session; reconnect with a current certificate", "certificate_expiring")
            lifetime = min(lifetime, left)
        try:
            return open_session(self._session_key, proof.participant.id, proof.kid, now, lifetime)
        except ValueError as exc:
            raise InvalidArgument(str(exc), "kid_too_long") from None

    def _session_key(self, session_id: str) -> bytes:
        return self._session_keys(self.pseudonym, session_id)

    def authorize(self, rpc: str, caller: Participant, via: str = "token") -> None:
        """May ``caller``, proven ``via`` a token, a certificate or a call session, call ``rpc`` now?"""
        if not allowed(rpc, caller.role):
            raise PermissionDenied(f"role {caller.role.value} may not call {rpc}", "role_not_allowed")
        if via == "session" and not allowed_in_session(rpc):
            raise PermissionDenied(f"{rpc} needs a token signed with your key (or your client certificate), not a call"
                                   " token: a call session may only read and publish", "session_not_allowed")
        kind = RPC_CLASS.get(rpc)
        rate = self.config.rate_limits.rates.get((caller.role, kind)) if kind else None
        if rate is not None:
            self._take(caller, kind, rate)

    def rate_gate(self, caller: Participant, kind: str) -> Callable[[], None]:
        """What ``authorize`` checks of ``caller``'s rate for one call of ``kind``
        (``numrep.limits.RPC_CLASS``), to check once per item of a stream whose
        every item counts as one such call: ``RateLimited`` when over it."""
        rate = self.config.rate_limits.rates.get((caller.role, kind))
        return _no_limit if rate is None else functools.partial(self._take, caller, kind, rate)

    def _take(self, caller: Participant, kind: str, rate: Rate) -> None:
        wait = self._buckets.take((caller.id, kind), rate)
        if wait:
            raise RateLimited(f"{caller.id} is over its {kind} rate of {rate.per_second:g}/s; retry in {wait:.3f} s", wait)

    def _label_kid(self, label_id: str) -> str | None:
        label = self.store.get_label(label_id)
        return None if label is None else signing_kid(label)

    # --- lookup ------------------------------------------------------------------
    def normalize(self, raw: str) -> str:
        return normalize(raw, self.config.default_region)

    def lookup(self, raw_number: str, identity_header: str = "") -> Verdict:
        number = self.normalize(raw_number)
        stored = self.store.get_verdict(number)
        return self._answer(number, stored, identity_header)

    async def answer_async(self, raw_number: str) -> BatchAnswer | None:
        """``lookup`` without a caller-ID header, on a server's event loop, when it
        needs no write, else None (a verdict whose labels expired is recomputed and
        stored by ``lookup``, in a worker thread). Most lookups need none: the store
        read waits without a thread (``Store.get_verdict_async``) and the rest is
        computation. The answer says whether it is the stored verdict with a new
        cache expiry only (see ``BatchAnswer``)."""
        number = self.normalize(raw_number)
        return self._answer_to(number, await self.store.get_verdict_async(number))

    def answer_now(self, raw_number: str) -> BatchAnswer | None:
        """``answer_async``, read in place: for a store whose reads are local
        (``Store.reads_are_local``), where that read never waits."""
        number = self.normalize(raw_number)
        return self._answer_to(number, self.store.get_verdict(number))

    def _answer_to(self, number: str, stored: Verdict | None) -> BatchAnswer | None:
        if stored is None:
            return BatchAnswer(self.unknown_verdict(number))
        now = self.clock()
        if stored.is_stale(now):
            return None
        return self._stored_answer(stored, now + self.reconciler_ttl(), self._mark_revoked)

    def _stored_answer(self, stored: Verdict, horizon: datetime, marks: Callable[[Verdict], Verdict]) -> BatchAnswer:
        """A fresh stored verdict's answer: itself with a cache expiry at ``horizon``
        (see ``_expiry``), unless ``marks`` notes a key revoked since."""
        expires = self._expiry(stored, horizon)
        marked = marks(stored)
        return BatchAnswer(None, stored, expires) if marked is stored else BatchAnswer(marked.with_expiry(expires))

    def _answer(self, number: str, stored: Verdict | None, identity_header: str) -> Verdict:
        verdict = self.unknown_verdict(number) if stored is None else self._fresh(stored)
        verdict = self._mark_revoked(verdict)
        return self.with_caller_id(verdict, identity_header) if identity_header else verdict

    def with_caller_id(self, verdict: Verdict, identity_header: str) -> Verdict:
        """Apply this call's caller-ID authentication (STIR/SHAKEN) to the verdict.

        The adjustment is for this one call and never stored: otherwise anyone could
        damage a number's reputation by spoofing it with broken PASSporTs."""
        now = self.clock()
        result = verify_passport(identity_header, verdict.number, self.shaken_anchors, now, self.config.shaken_max_age)
        config = getattr(self.reconciler, "config", ReconcileConfig())
        probability = adjust_probability(verdict.spam_probability, result)
        if probability >= config.block_at and verdict.confidence >= config.block_min_confidence:
            action = Action.BLOCK
        elif probability >= config.warn_at or result.reason in INTERCEPT_REASONS:
            action = Action.BLOCK if verdict.action is Action.BLOCK else Action.WARN
        else:
            action = verdict.action
        return dataclasses.replace(
            verdict,
            action=action,
            spam_probability=round(probability, 6),
            caller_id_authentication=result.reason,
            caller_id_risk=risk_adjustment(result),
            explanation=f"{verdict.explanation} Caller ID: {result.message}.",
            expires_at=now,  # an answer about one call: not for a per-number cache
        )

    def _fresh(self, verdict: Verdict, now: datetime | None = None, ttl: timedelta | None = None) -> Verdict:
        """The stored verdict, recomputed first when a label behind it has expired
        (lazily: a lookup or sync of the number repairs it), with a cache expiry
        that never lies in the past. A batch passes one ``now`` and ``ttl`` for all."""
        now = self.clock() if now is None else now
        if verdict.is_stale(now):
            return self._recompute(verdict.number)
        expires = self._expiry(verdict, now + (self.reconciler_ttl() if ttl is None else ttl))
        return verdict.with_expiry(expires) if expires != verdict.expires_at else verdict

    @staticmethod
    def _expiry(verdict: Verdict, horizon: datetime) -> datetime:
        """When an answer repeating the (fresh) stored verdict stops being good in a
        cache: at ``horizon`` (a TTL from now), never past the verdict's own end,
        never in the past."""
        until = verdict.valid_until
        expires = horizon if until is None or horizon < until else until
        return expires if expires > verdict.expires_at else verdict.expires_at

    def reconciler_ttl(self) -> timedelta:
        config = getattr(self.reconciler, "config", None)
        return getattr(config, "verdict_ttl", timedelta(minutes=5))

    def batch_lookup(self, raw_numbers: Sequence[str]) -> list[Verdict | NumrepError]:
        """``lookup`` of each number, in order, with one store read for the batch;
        an invalid number's ``InvalidNumber`` stands in its place."""
        return [a if isinstance(a, NumrepError) else a.verdict for a in self.batch_answers(raw_numbers)]

    def batch_answers(self, raw_numbers: Sequence[str]) -> list[BatchAnswer | NumrepError]:
        """``batch_lookup``, saying for each answer whether it is the stored verdict
        with a new cache expiry only (see ``BatchAnswer``)."""
        check_size("numbers", len(raw_numbers), self.config.limits.max_batch_lookup)
        normalized = normalize_each(raw_numbers, self.config.default_region)
        stored = self._batch_verdicts.get_verdicts([n for n in normalized if type(n) is str])
        now, ttl = self.clock(), self.reconciler_ttl()
        horizon = now + ttl
        marks = RevocationMarks(functools.lru_cache(maxsize=None)(self.participant), self._kid_of)  # a batch names few publishers
        results: list[BatchAnswer | NumrepError] = []
        for number in normalized:
            if type(number) is not str:
                results.append(number)
                continue
            verdict = stored.get(number)
            if verdict is None:
                results.append(BatchAnswer(self.unknown_verdict(number)))
            elif verdict.is_stale(now):
                results.append(BatchAnswer(marks(self._recompute(number))))
            else:
                results.append(self._stored_answer(verdict, horizon, marks))
        return results

    def prefix_lookup(self, prefix: str) -> tuple[list[Verdict], int]:
        """Every listed verdict in the hash bucket named by ``prefix`` (see
        ``numrep.core.privacy``), and the prefix length in bits."""
        low, high = prefix_range(prefix)
        limit = self.config.limits.max_bucket
        verdicts = self.store.listed_in_hash_range(low, high, limit + 1)
        if len(verdicts) > limit:
            raise TooLarge(f"bucket {prefix!r} holds more than {limit} listed numbers; send a longer prefix", "bucket_too_large")
        return verdicts, 4 * len(prefix.strip())

    def unknown_verdict(self, number: str) -> Verdict:
        unreported = getattr(self.reconciler, "unreported", None)  # a reconciler written before it existed: reconcile
        if unreported is None:
            return self.reconciler.reconcile(Evidence(number), self.clock(), previous_version=-1)
        return unreported(number, self.clock())

    # --- publish -----------------------------------------------------------------
    def publish(self, caller: Participant, tokens: Sequence[str]) -> list[ItemOutcome]:
        check_size("labels", len(tokens), self.config.limits.max_publish)
        now = self.clock()
        outcomes: list[ItemOutcome | None] = []
        verified: list[tuple[int, Label]] = []
        for index, token in enumerate(tokens):
            try:
                label = verify_label(token, self.participant, now, caller.id, self.config.label_policy)
            except JwsRejected as exc:
                outcomes.append(ItemOutcome(index, "", "rejected", exc.reason, exc.message))
                continue
            if not is_vote(label.category) and caller.role not in MARKER_ROLES:
                outcomes.append(ItemOutcome(index, label.id, "rejected", "category_not_allowed",
                                            f"only carriers and the regulator may publish {label.category!r}"))
                continue
            verified.append((index, label))
            outcomes.append(None)
        stored = self.store.add_labels([label for _, label in verified]) if verified else []
        changed: set[str] = set()
        for (index, label), outcome in zip(verified, stored):
            if outcome is AddOutcome.ADDED:
                changed.add(label.number)
                outcomes[index] = ItemOutcome(index, label.id, "accepted")
            elif outcome is AddOutcome.DUPLICATE:
                if self._verdict_misses(label):
                    changed.add(label.number)
                outcomes[index] = ItemOutcome(index, label.id, "duplicate", "duplicate", "label already stored")
            else:
                outcomes[index] = ItemOutcome(index, label.id, "rejected", "retracted", "label id was retracted and cannot be published again")
        self._recompute_many(changed)
        return [o for o in outcomes if o is not None]

    def retract(self, caller: Participant, label_ids: Sequence[str]) -> list[ItemOutcome]:
        check_size("label ids", len(label_ids), self.config.limits.max_retract)
        outcomes = []
        for index, label_id in enumerate(label_ids):
            label = self.store.get_label(label_id)
            if label is None and self.store.was_retracted(label_id):
                outcomes.append(ItemOutcome(index, label_id, "duplicate", "already_retracted", "label already retracted"))
            elif label is None:
                outcomes.append(ItemOutcome(index, label_id, "rejected", "not_found", f"no live label {label_id!r}"))
            elif label.issuer != caller.id and caller.role is not Role.REGULATOR:
                outcomes.append(ItemOutcome(index, label_id, "rejected", "not_owner", f"label {label_id!r} was published by another participant"))
            elif not self.store.retract_label(label_id, self.clock()):
                outcomes.append(ItemOutcome(index, label_id, "duplicate", "already_retracted", "label already retracted"))
            else:
                self._recompute(label.number, removed=(label_id,))
                outcomes.append(ItemOutcome(index, label_id, "accepted"))
        return outcomes

    # --- flags -------------------------------------------------------------------
    def submit_flags(self, caller: Participant, batch_id: str, flags: Sequence[FlagInput]) -> tuple[list[ItemOutcome], bool]:
        limits = self.config.limits
        if not batch_id or len(batch_id) > limits.max_batch_id:
            raise InvalidArgument(f"batch_id must be 1 to {limits.max_batch_id} characters (it makes retries idempotent)", "bad_batch_id")
        check_size("flags", len(flags), limits.max_flags)
        flag_rate = self.config.rate_limits.flags_per_app
        wait = self._buckets.take((caller.id, "flags"), flag_rate, len(flags))
        if wait == float("inf"):
            raise TooLarge(f"a batch of {len(flags)} flags exceeds this app's burst of {flag_rate.burst:g}; split it", "batch_too_large")
        if wait:
            raise RateLimited(f"{caller.id} is over its rate of {flag_rate.per_second:g} flags/s; retry in {wait:.3f} s", wait)
        now = self.clock()
        per_reporter: dict[str, int] = {}
        cap = self.config.rate_limits.flags_per_reporter_per_batch
        accepted: list[Flag] = []
        outcomes = []
        for index, raw in enumerate(flags):
            try:
                flag = self._flag(caller, raw, now)
                per_reporter[flag.reporter] = per_reporter.get(flag.reporter, 0) + 1
                if per_reporter[flag.reporter] > cap:
                    raise InvalidArgument(f"more than {cap} flags from one reporter in one batch", "reporter_over_limit")
            except NumrepError as exc:
                outcomes.append(ItemOutcome(index, "", "rejected", exc.reason, exc.message))
                continue
            accepted.append(flag)
            outcomes.append(ItemOutcome(index, "", "accepted"))
        if not accepted:
            return outcomes, False
        if not self.store.add_flags(caller.id, batch_id, accepted, now):
            replayed = [ItemOutcome(o.index, o.id, "duplicate", "replayed_batch", "batch already received") if o.status == "accepted" else o for o in outcomes]
            return replayed, True
        self._recompute_many({f.number for f in accepted})
        return outcomes, False

    def _flag(self, caller: Participant, raw: FlagInput, now: datetime) -> Flag:
        limits = self.config.limits
        number = self.normalize(raw.number)
        parse_category(raw.category)
        if not is_vote(raw.category):
            raise InvalidArgument(f"a flag says spam or legitimate; {raw.category!r} is a carrier's notice", "category_not_allowed")
        if not raw.reporter_id or len(raw.reporter_id) > limits.max_reporter_id:
            raise InvalidArgument(f"reporter_id must be 1 to {limits.max_reporter_id} characters", "bad_reporter_id")
        if len(raw.comment) > limits.max_comment:
            raise InvalidArgument(f"comment longer than {limits.max_comment} characters", "comment_too_long")
        when = raw.time or now
        if when > now + self.config.token_policy.clock_skew:
            raise InvalidArgument("flag time is in the future", "time_in_future")
        if when < now - self.config.flag_max_age:
            raise InvalidArgument(f"flag older than {self.config.flag_max_age.days} days", "too_old")
        reporter = self.pseudonym("reporter", caller.id, raw.reporter_id)
        return Flag(number, caller.id, reporter, raw.category, when, raw.comment)

    # --- sync --------------------------------------------------------------------
    def sync(self, cursor: str, chunk_size: int = 0) -> Iterator[SyncPage]:
        """Snapshot pages, then delta pages, each with the cursor to resume after it.

        A cursor remembers the change-feed head when the snapshot began; changes
        during the snapshot arrive again as deltas, which is harmless because an
        entry replaces the number's state on the handset.
        """
        limits = self.config.limits
        if chunk_size < 0 or chunk_size > limits.max_chunk:
            raise InvalidArgument(f"chunk_size must be between 0 and {limits.max_chunk}", "bad_chunk_size")
        size = chunk_size or limits.default_chunk
        state = _decode_cursor(cursor) if cursor else {"phase": "snapshot", "head": self.store.feed_head(), "after": ""}
        if state["phase"] == "snapshot":
            after = state["after"]
            while True:
                page = self.store.listed_wire_page(after, size, self.clock())
                after = page.after
                done = after == ""
                next_state = {"phase": "delta", "pos": state["head"]} if done else {**state, "after": after}
                # Fresh entries come encoded as stored; a stale one is recomputed first.
                refreshed = (self._entry(number, ()) for number in page.stale)
                entries = tuple(e for e in refreshed if not e.tombstone)  # a snapshot holds only listed numbers
                if entries or page.count or done:
                    yield SyncPage(entries, _encode_cursor(next_state), snapshot=True, caught_up=False,
                                   encoded=page.entries, encoded_count=page.count)
                if done:
                    state = next_state
                    break
        position = state["pos"]
        while True:
            changes = self.store.changes_after(position, size)
            if not changes:
                yield SyncPage((), _encode_cursor({"phase": "delta", "pos": position}), snapshot=False, caught_up=True)
                return
            removed: dict[str, list[str]] = {}
            for change in changes:
                ids = removed.setdefault(change.number, [])
                if change.removed_label_id:
                    ids.append(change.removed_label_id)
            entries = tuple(self._entry(number, tuple(ids)) for number, ids in removed.items())
            position = changes[-1].position
            yield SyncPage(entries, _encode_cursor({"phase": "delta", "pos": position}), snapshot=False, caught_up=False)

    def _entry(self, number: str, removed: tuple[str, ...]) -> SyncEntry:
        verdict = self.store.get_verdict(number)
        if verdict is not None and verdict.is_stale(self.clock()):
            verdict = self._recompute(number)
        labels = self.store.evidence(number).labels if verdict is not None and verdict.is_listed else ()
        return SyncEntry(number, verdict, tuple(label.token for label in labels), removed)

    # --- registry ----------------------------------------------------------------
    def list_participants(self) -> list[Participant]:
        return self.store.list_participants()

    def get_participant(self, participant_id: str) -> Participant:
        found = self.store.get_participant(participant_id)
        if found is None:
            raise NotFound(f"participant {participant_id!r} is not registered", "unknown_participant")
        return found

    def register_participant(self, participant_id: str, role: Role, display_name: str, jwks: Sequence[str]) -> Participant:
        _check_participant_id(participant_id)
        now = self.clock()
        keys = tuple(self._key_record(participant_id, jwk, now) for jwk in jwks)
        if not keys:
            raise InvalidArgument("a participant needs at least one public key", "no_keys")
        if len({k.kid for k in keys}) != len(keys):
            raise InvalidArgument("two keys share one kid", "duplicate_kid")
        self.store.add_participant(Participant(participant_id, role, display_name, keys))
        self._participants.pop(participant_id, None)
        return self.get_participant(participant_id)

    def add_key(self, caller: Participant | None, participant_id: str, jwk: str) -> Participant:
        self._check_owner(caller, participant_id)
        self.store.add_key(participant_id, self._key_record(participant_id, jwk, self.clock()))
        self._participants.pop(participant_id, None)
        return self.get_participant(participant_id)

    def revoke_key(self, caller: Participant | None, participant_id: str, kid: str) -> Participant:
        self._check_owner(caller, participant_id)
        self.store.revoke_key(participant_id, kid, self.clock())
        self._participants.pop(participant_id, None)
        return self.get_participant(participant_id)

    @staticmethod
    def _check_owner(caller: Participant | None, participant_id: str) -> None:
        """``caller`` None means the local operator (CLI on the data directory)."""
        if caller is not None and caller.id != participant_id and caller.role is not Role.REGULATOR:
            raise PermissionDenied(f"{caller.id!r} may manage only its own keys, not those of {participant_id!r}", "not_owner")

    @staticmethod
    def _key_record(participant_id: str, jwk: str, now: datetime) -> PublicKeyRecord:
        try:
            kid, _, _ = parse_public_jwk(jwk)
        except ValueError as exc:
            raise InvalidArgument(str(exc), "bad_jwk") from None
        if not kid.startswith(f"{participant_id}#"):
            raise InvalidArgument(f"kid {kid!r} must start with '{participant_id}#' so it names its owner", "bad_kid")
        return PublicKeyRecord(kid, jwk, now)

    # --- learned trust -------------------------------------------------------------
    def refit_trust(self) -> tuple[TrustSnapshot, int]:
        """Fit a new trust epoch from everything stored, then bring every stored
        verdict up to it (only the verdicts it changes are rewritten and fed to
        handsets). Returns the epoch and how many verdicts changed."""
        return self.fit_trust(), self.refresh_verdicts()

    def fit_trust(self) -> TrustSnapshot:
        """Fit a new trust epoch from everything stored, store it and serve it; no verdict is touched."""
        return self._trust_keeper().refit(self.clock())

    def reload_trust(self) -> bool:
        """Install a newer epoch another replica (or ``numrep trust refit``) stored."""
        return self.trust.load_latest() if self.trust is not None else False

    def serve_latest_trust(self) -> None:
        """Serve the newest stored epoch, and return once every verdict this exchange began
        to write with an older one has landed: on a store with ``serial_rewrites`` a rewrite
        reconciles inside its write transaction, and an empty one waits for those under way."""
        self._trust_keeper().load_latest()
        self.store.rewrite_verdicts([], _nothing_to_rewrite)

    def trust_snapshot(self) -> TrustSnapshot:
        return self._trust_keeper().snapshot

    def _trust_keeper(self) -> TrustKeeper:
        if self.trust is None:
            raise FailedPrecondition("this exchange runs reconciliation v1, not the learned trust engine", "no_trust_engine")
        return self.trust

    def refresh_verdicts(self, batch: int = 500) -> int:
        """Recompute every stored verdict with the current trust, here and under this
        exchange's locks; returns how many changed."""
        return sum(self.rewrite_stale(numbers) for numbers in _batches(self.store.scan_verdict_numbers(), batch))

    def stale_verdicts(self, batch: int = 500) -> Iterator[list[str]]:
        """The numbers whose stored verdict the current trust would answer differently, a
        batch at a time (at most ``batch`` each, read ``batch`` verdicts at a time). Writes
        nothing: a refit job (``numrep.trust_job``) lists them, then rewrites them
        (``rewrite_stale``) itself on a store with ``serial_rewrites``, or leaves that to the
        serving exchange, under its own locks; either way a verdict stored meanwhile is never
        overwritten from evidence read before it."""
        for numbers in _batches(self.store.scan_verdict_numbers(), batch):
            now = self.clock()
            stored = self.store.get_verdicts(numbers)
            evidence = self.store.evidence_many(numbers)
            stale = [n for n in numbers if n in stored and not _same_answer(
                stored[n], self.reconciler.reconcile(evidence[n], now, stored[n].version))]
            if stale:
                yield stale

    def rewrite_stale(self, numbers: Iterable[str]) -> int:
        """Recompute and store the verdicts of ``numbers`` whose answer the current trust changes; how many."""
        return len(self._recompute_many(set(numbers), only_changed=True))

    # --- verdict maintenance -------------------------------------------------------
    def _recompute(self, number: str, removed: tuple[str, ...] = ()) -> Verdict:
        return self._recompute_many({number}, {number: removed})[0]

    def _recompute_many(self, numbers: set[str], removed: dict[str, tuple[str, ...]] | None = None,
                        only_changed: bool = False) -> list[Verdict]:
        """Recompute and store the verdicts of ``numbers`` in one store rewrite,
        holding their locks (taken in a fixed order) so that concurrent updates of
        a number cannot store an older verdict over a newer one; on a store with
        ``serial_rewrites`` neither can another process's. With ``only_changed``, a
        verdict whose answer stays the same is not rewritten."""
        if not numbers:
            return []
        ordered = sorted(numbers)
        stripes = sorted({zlib.crc32(n.encode()) % len(self._number_locks) for n in ordered})
        for stripe in stripes:
            self._number_locks[stripe].acquire()
        try:
            return self.store.rewrite_verdicts(ordered, functools.partial(self._reconciled, ordered, removed or {}, only_changed))
        finally:
            for stripe in reversed(stripes):
                self._number_locks[stripe].release()

    def _reconciled(self, numbers: Sequence[str], removed: Mapping[str, Sequence[str]], only_changed: bool,
                    stored: Mapping[str, Verdict], evidence: Mapping[str, Evidence]) -> list[tuple[Verdict, Sequence[str]]]:
        """Each number's verdict from its evidence, a version after its stored one, with the label ids
        its change carries as retracted (a ``Recompute``)."""
        now, updates = self.clock(), []
        for number in numbers:
            previous = stored.get(number)
            verdict = self.reconciler.reconcile(evidence[number], now, previous.version if previous else 0)
            if only_changed and previous is not None and _same_answer(previous, verdict):
                continue
            updates.append((verdict, removed.get(number, ())))
        return updates

    def _verdict_misses(self, label: Label) -> bool:
        """A label stored before a crash may lack its verdict; a retried publish repairs it."""
        verdict = self.store.get_verdict(label.number)
        return verdict is None or all(c.label_id != label.id for c in verdict.contributions)

    def recompute(self, number: str) -> Verdict:
        return self._recompute(self.normalize(number))


def _session_key(secret: Pseudonymizer, session_id: str) -> bytes:
    """A call session's key: an HMAC of its id under the exchange's secret (``numrep.signing.sessions``)."""
    return bytes.fromhex(secret("call-session", session_id, length=64))


def _batches(values: Iterable[str], size: int) -> Iterator[list[str]]:
    remaining = iter(values)
    while batch := list(itertools.islice(remaining, size)):
        yield batch


def _nothing_to_rewrite(stored: Mapping[str, Verdict], evidence: Mapping[str, Evidence]) -> list[tuple[Verdict, Sequence[str]]]:
    return []


def _same_answer(old: Verdict, new: Verdict) -> bool:
    return (old.action, old.category, round(old.spam_probability, 3)) == (new.action, new.category, round(new.spam_probability, 3))


def _no_limit() -> None:
    pass


def check_size(what: str, count: int, maximum: int) -> None:
    """Refuse an empty batch, or one larger than ``maximum``."""
    if count == 0:
        raise InvalidArgument(f"no {what} in the request", "empty_batch")
    if count > maximum:
        raise TooLarge(f"{count} {what} in one request; the maximum is {maximum}", "batch_too_large")


def _check_participant_id(participant_id: str) -> None:
    ok = 0 < len(participant_id) <= 64 and all(c.isalnum() or c in "-_." for c in participant_id)
    if not ok or not participant_id.isascii():
        raise InvalidArgument("participant id must be 1 to 64 ASCII letters, digits, '-', '_' or '.'", "bad_participant_id")


def _encode_cursor(state: dict[str, str]) -> str:
    return base64.urlsafe_b64encode(json.dumps(state, separators=(",", ":")).encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> dict[str, str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        state = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if state.get("phase") == "snapshot" and isinstance(state.get("head"), str) and isinstance(state.get("after"), str):
            return state
        if state.get("phase") == "delta" and isinstance(state.get("pos"), str):
            return state
    except (ValueError, json.JSONDecodeError, AttributeError):
        pass
    raise InvalidArgument("cursor is not one this exchange handed out; start again with an empty cursor", "bad_cursor")
