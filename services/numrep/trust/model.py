"""The learned trust model: reliabilities of every source, refit on demand and
versioned by epoch.

``TrustModel.snapshot`` is an immutable ``TrustSnapshot``; verdicts read it
without locking and always use the current one. ``TrustModel.refit(labels,
gold, flags=...)`` fits a new one from scratch on the data given (a full
refit: the same data gives the same snapshot, epoch aside) and swaps it in
with the next epoch number. Before the first refit (epoch 0) every source
counts with its role's prior.

A refit:

1. turns labels into votes: per (number, participant, polarity) the strongest
   label counts, weighted by its confidence and a decay with age
   (``fit_half_life``), so a participant whose quality changes is judged
   mostly on its recent record;
2. drops what predates a number's reassignment (see ``numrep.trust.evidence``);
3. takes regulator labels as gold (their numbers' truth is fixed during EM),
   explicit ``gold`` overriding;
4. measures copying: a participant almost never among the first to report
   what it reports counts less (``independence``);
5. alternates EM (``numrep.trust.dawid_skene``) with reporter reputations
   (``numrep.trust.reporters``): each app's users enter EM as one pseudo-source
   ``app-x/flags`` whose vote on a number comes from its reporters' weights.
"""

from __future__ import annotations

import json
import math
import threading
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Mapping

import numpy as np

from numrep.core.categories import CATEGORIES
from numrep.core.model import Participant, Role
from numrep.trust.config import TrustConfig
from numrep.trust.dawid_skene import LEGIT, SPAM, SourcePrior, fit_em, llr_table
from numrep.trust.evidence import MARKER_ROLES, REASSIGNED_CODE
from numrep.trust.reporters import (
    agreement,
    flags_source,
    is_flags_source,
    reporter_weights,
    vote_strengths,
)

Participants = Callable[[str], Participant | None] | Mapping[str, Role] | Mapping[str, Participant]


def role_resolver(participants: Participants | None) -> Callable[[str], Role | None]:
    """A ``participant id -> Role | None`` function from a registry callable (such
    as ``Exchange.participant``) or a mapping of ids to roles or participants."""
    if participants is None:
        return lambda _pid: None
    if isinstance(participants, Mapping):
        table = participants

        def from_mapping(pid: str) -> Role | None:
            found = table.get(pid)
            return found.role if isinstance(found, Participant) else found

        return from_mapping
    lookup = participants

    def from_registry(pid: str) -> Role | None:
        found = lookup(pid)
        return None if found is None else found.role

    return from_registry


def prior_key(source: str, role: Role | None) -> str:
    if is_flags_source(source):
        return "app_flags"
    return role.value if role is not None else "unknown"


@dataclass(frozen=True)
class SourceReliability:
    """What the model has learned about one source (a participant's labels, or
    an app's users' flags as ``app-x/flags``)."""

    source: str
    prior: str  # which role prior it was fitted under
    spam_precision: float  # P(spam | it labels spam): "its spam labels are right x% of the time"
    legit_precision: float  # P(not spam | it labels legitimate)
    sensitivity: float  # P(it labels spam | spam), over the numbers anyone reported
    specificity: float  # P(it does not label spam | not spam)
    spam_votes: float  # weighted spam votes it was judged on
    legit_votes: float
    independence: float  # 1, or less for a participant that mostly repeats earlier reports
    spam_llr: float  # log-odds one full-weight spam vote adds (>= 0)
    legit_llr: float  # log-odds one full-weight legitimate vote adds (<= 0)
    fitted: bool = True


@dataclass(frozen=True)
class TrustSnapshot:
    epoch: int
    fitted_at: datetime | None
    base_probability: float  # P(spam) of a reported number before its evidence (fitted, bounded)
    class_prior: float  # as fitted, unbounded
    sources: Mapping[str, SourceReliability] = field(default_factory=dict)
    reporters: Mapping[tuple[str, str], tuple[float, float]] = field(default_factory=dict)  # (app, reporter) -> (agree, disagree)
    iterations: int = 0
    converged: bool = True
    numbers: int = 0
    labels: int = 0
    flags: int = 0
    gold: int = 0

    @property
    def base_logit(self) -> float:
        p = self.base_probability
        return math.log(p / (1.0 - p))

    def reliability(self, source: str, role: Role | None, config: TrustConfig) -> SourceReliability:
        """The fitted reliability of ``source``, or its role prior's if the model
        has not seen it (a new participant counts as its role is expected to)."""
        found = self.sources.get(source)
        if found is not None:
            return found
        return prior_reliability(source, config.priors[prior_key(source, role)], prior_key(source, role), self.base_logit)

    def to_json(self) -> str:
        body = asdict(self)
        body["fitted_at"] = self.fitted_at.isoformat() if self.fitted_at else None
        body["sources"] = [asdict(s) for s in self.sources.values()]
        body["reporters"] = [[app, rep, a, d] for (app, rep), (a, d) in sorted(self.reporters.items())]
        return json.dumps(body, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "TrustSnapshot":
        body: dict[str, Any] = json.loads(text)
        body["fitted_at"] = datetime.fromisoformat(body["fitted_at"]) if body["fitted_at"] else None
        body["sources"] = {s["source"]: SourceReliability(**s) for s in body["sources"]}
        body["reporters"] = {(app, rep): (a, d) for app, rep, a, d in body["reporters"]}
        return cls(**body)


def prior_reliability(source: str, prior: SourcePrior, key: str, base_logit: float) -> SourceReliability:
    sp, lp = prior.spam_precision.mean, prior.legit_precision.mean
    table = llr_table(np.array([sp]), np.array([lp]), base_logit)
    return SourceReliability(source, key, sp, lp, float("nan"), float("nan"), 0.0, 0.0, 1.0,
                             float(table[0, SPAM]), float(table[0, LEGIT]), fitted=False)


def initial_snapshot(config: TrustConfig) -> TrustSnapshot:
    lo, hi = config.base_bounds
    base = min(max(config.class_prior.mean, lo), hi)
    return TrustSnapshot(epoch=0, fitted_at=None, base_probability=base, class_prior=config.class_prior.mean)


class TrustModel:
    """The current ``TrustSnapshot`` and the means to refit it."""

    def __init__(
        self,
        participants: Participants | None = None,
        config: TrustConfig | None = None,
        snapshot: TrustSnapshot | None = None,
    ) -> None:
        self.config = config or TrustConfig()
        self.role_of = role_resolver(participants)
        self._snapshot = snapshot or initial_snapshot(self.config)
        self._refit_lock = threading.Lock()

    @property
    def snapshot(self) -> TrustSnapshot:
        return self._snapshot

    @property
    def epoch(self) -> int:
        return self._snapshot.epoch

    def load(self, snapshot: TrustSnapshot) -> None:
        """Install a stored snapshot (for example the last one persisted)."""
        self._snapshot = snapshot

    def refit(
        self,
        labels: Iterable[Any],
        gold: Mapping[str, bool] | None = None,
        *,
        flags: Iterable[Any] = (),
        now: datetime | None = None,
        reassigned: Mapping[str, datetime] | None = None,
        regulator_gold: bool = True,
    ) -> TrustSnapshot:
        """Fit a new snapshot from ``labels`` (``Label``-like: number, issuer,
        category, confidence, issued_at) and ``flags`` (``Flag``-like: number,
        app_id, reporter, category, time), install it as the next epoch and
        return it. ``gold`` maps numbers to their known truth (True = spam); with
        ``regulator_gold`` the regulator's own labels are gold too (explicit gold
        wins). ``now`` defaults to the newest time in the data, so a refit is a
        function of its data alone."""
        with self._refit_lock:
            fitted = fit_snapshot(
                labels, flags, gold or {}, now, self.role_of, self.config,
                epoch=self._snapshot.epoch + 1, reassigned=reassigned or {}, regulator_gold=regulator_gold,
            )
            self._snapshot = fitted
            return fitted


# --- fitting ---------------------------------------------------------------------------------


def fit_snapshot(
    labels: Iterable[Any],
    flags: Iterable[Any],
    gold: Mapping[str, bool],
    now: datetime | None,
    role_of: Callable[[str], Role | None],
    config: TrustConfig,
    *,
    epoch: int,
    reassigned: Mapping[str, datetime],
    regulator_gold: bool = True,
) -> TrustSnapshot:
    lab = _collect_labels(labels, role_of)
    flg = _collect_flags(flags)
    now_ts = now.timestamp() if now is not None else max(
        [float(lab["time"].max()) if len(lab["time"]) else -math.inf, float(flg["time"].max()) if len(flg["time"]) else -math.inf]
    )
    if not math.isfinite(now_ts):  # no data at all
        snap = initial_snapshot(config)
        return TrustSnapshot(epoch, now, snap.base_probability, snap.class_prior)
    fitted_at = now if now is not None else datetime.fromtimestamp(now_ts, timezone.utc)

    # the universe: every number somebody said something about, in sorted order
    numbers, inverse = np.unique(np.concatenate([lab["number"], flg["number"]]), return_inverse=True)
    n_items = len(numbers)
    lab_item = inverse[: len(lab["number"])]
    flg_item = inverse[len(lab["number"]):]

    # reassignment: explicit times and marker labels from carriers or the regulator
    cutoff = np.full(n_items, -math.inf)
    markers = dict(lab["markers"])
    for number, when in reassigned.items():
        markers[number] = max(markers.get(number, -math.inf), when.timestamp())
    if markers:
        where = np.searchsorted(numbers, np.array(sorted(markers), dtype=numbers.dtype))
        for idx, number in zip(where, sorted(markers)):
            if idx < n_items and numbers[idx] == number:
                cutoff[idx] = markers[number]
    keep_lab = lab["time"] >= cutoff[lab_item]
    keep_flg = flg["time"] >= cutoff[flg_item]

    # sources: participants by id, then app flag pseudo-sources, sorted
    label_sources = list(lab["sources"])
    flag_apps = list(flg["apps"])
    source_names = sorted(set(label_sources) | {flags_source(a) for a in flag_apps})
    source_index = {name: i for i, name in enumerate(source_names)}
    n_src = len(source_names)
    lab_src = np.array([source_index[s] for s in label_sources], dtype=np.int64)[lab["source"]] if label_sources else np.zeros(0, np.int64)
    flg_src = np.array([source_index[flags_source(a)] for a in flag_apps], dtype=np.int64)[flg["app"]] if flag_apps else np.zeros(0, np.int64)
    roles = [None if is_flags_source(name) else role_of(name) for name in source_names]
    exempt = np.array([r is Role.REGULATOR for r in roles], dtype=bool)

    # label votes: strongest per (number, participant, polarity); as evidence about
    # the number a vote weighs its confidence, as a record of its source it also
    # decays with age (fit_half_life)
    item, src, vote = lab_item[keep_lab], lab_src[keep_lab], lab["vote"][keep_lab]
    weight = lab["confidence"][keep_lab]
    when = lab["time"][keep_lab]
    item, src, vote, weight, when = _strongest(item, src, vote, weight, when, n_src)
    independence = _independence(item, src, vote, when, n_items, n_src, exempt, config)
    weight = weight * independence[src]
    positive = weight > 0
    item, src, vote, weight, when = item[positive], src[positive], vote[positive], weight[positive], when[positive]
    record = weight * _decay(now_ts - when, config.fit_half_life.total_seconds())

    # gold: the regulator's latest label per number, then explicit gold over it
    gold_map: dict[int, float] = {}
    if regulator_gold:
        reg = exempt[src]
        if reg.any():
            r_item, r_vote, r_when = item[reg], vote[reg], when[reg]
            order = np.lexsort((r_vote, r_when, r_item))
            r_item, r_vote = r_item[order], r_vote[order]
            last = np.r_[r_item[1:] != r_item[:-1], True]
            gold_map.update(zip(r_item[last].tolist(), r_vote[last].astype(float).tolist()))
    if gold:
        wanted = sorted(gold)
        where = np.searchsorted(numbers, np.array(wanted, dtype=numbers.dtype))
        for idx, number in zip(where, wanted):
            if idx < n_items and numbers[idx] == number:
                gold_map[int(idx)] = 1.0 if gold[number] else 0.0
    gold_items = np.array(sorted(gold_map), dtype=np.int64)
    gold_values = np.array([gold_map[i] for i in gold_items.tolist()], dtype=np.float64)

    priors = [config.priors[prior_key(name, role)] for name, role in zip(source_names, roles)]
    spam_a = np.array([p.spam_precision.a for p in priors])
    spam_b = np.array([p.spam_precision.b for p in priors])
    legit_a = np.array([p.legit_precision.a for p in priors])
    legit_b = np.array([p.legit_precision.b for p in priors])

    # flags: one vote per (app, number, polarity) from reporters' weights
    f_item, f_src = flg_item[keep_flg], flg_src[keep_flg]
    f_rep, f_spam = flg["reporter"][keep_flg], flg["spam"][keep_flg]
    f_decay = _decay(now_ts - flg["time"][keep_flg], config.fit_half_life.total_seconds())
    n_rep = len(flg["reporters"])
    group_key = (f_src * n_items + f_item) * 2 + f_spam.astype(np.int64)
    groups, f_group = np.unique(group_key, return_inverse=True)
    g_vote = groups % 2
    g_item = (groups // 2) % n_items
    g_src = (groups // 2) // n_items
    pair, g_pair = np.unique(groups // 2, return_inverse=True)  # (app, number) of each group
    g_decay = np.zeros(len(groups))
    np.maximum.at(g_decay, f_group, f_decay)  # a group's record weight decays with its newest flag
    rep_agree = np.zeros(n_rep)
    rep_disagree = np.zeros(n_rep)

    rounds = max(1, config.reputation_rounds) if len(groups) else 1
    posterior: np.ndarray | None = None
    result = None
    for _ in range(rounds):
        strength = np.zeros(0)
        if len(groups):
            w_rep, established = reporter_weights(rep_agree, rep_disagree, config.reporters)
            fw = w_rep[f_rep]
            est = established[f_rep]
            est_sum = np.bincount(f_group, weights=np.where(est, fw, 0.0), minlength=len(groups))
            new_sum = np.bincount(f_group, weights=np.where(est, 0.0, fw), minlength=len(groups))
            strength = vote_strengths(est_sum, new_sum, config.reporters)
        o_item = np.concatenate([item, g_item])
        o_src = np.concatenate([src, g_src])
        o_vote = np.concatenate([vote, g_vote])
        o_weight = np.concatenate([weight, strength])
        o_record = np.concatenate([record, strength * g_decay])
        result = fit_em(
            o_item, o_src, o_vote, o_weight, n_items, n_src, spam_a, spam_b, legit_a, legit_b,
            gold_items=gold_items, gold_values=gold_values, class_prior=config.class_prior,
            tol=config.tol, max_iter=config.max_iter, init_posterior=posterior, record_weights=o_record,
        )
        posterior = result.posterior
        if not len(groups):
            break
        # reputations: each flag against the federation's belief without its own app's users
        base = result.base_logit()
        table = llr_table(result.spam_precision, result.legit_precision, base)
        logits = np.bincount(o_item, weights=o_weight * table[o_src, o_vote], minlength=n_items) + base
        pair_contrib = np.bincount(g_pair, weights=strength * table[g_src, g_vote], minlength=len(pair))
        t_without = _sigmoid(logits[f_item] - pair_contrib[g_pair[f_group]])
        if len(gold_items):
            fixed = np.full(n_items, np.nan)
            fixed[gold_items] = gold_values
            known = ~np.isnan(fixed[f_item])
            t_without = np.where(known, fixed[f_item], t_without)
        agree, disagree = agreement(t_without, f_spam)
        rep_agree = np.bincount(f_rep, weights=agree * f_decay, minlength=n_rep)
        rep_disagree = np.bincount(f_rep, weights=disagree * f_decay, minlength=n_rep)

    assert result is not None
    base_p = float(np.clip(result.class_prior, *config.base_bounds))
    base = math.log(base_p / (1.0 - base_p))
    table = llr_table(result.spam_precision, result.legit_precision, base)
    sens, spec = result.sensitivity(), result.specificity()
    sources = {
        name: SourceReliability(
            source=name,
            prior=prior_key(name, roles[i]),
            spam_precision=float(result.spam_precision[i]),
            legit_precision=float(result.legit_precision[i]),
            sensitivity=float(sens[i]),
            specificity=float(spec[i]),
            spam_votes=float(result.spam_mass[i]),
            legit_votes=float(result.legit_mass[i]),
            independence=float(independence[i]),
            spam_llr=float(table[i, SPAM]),
            legit_llr=float(table[i, LEGIT]),
        )
        for i, name in enumerate(source_names)
    }
    reporters = {
        key: (float(a), float(d))
        for key, a, d in zip(flg["reporters"], rep_agree.tolist(), rep_disagree.tolist())
        if a > 0 or d > 0
    }
    return TrustSnapshot(
        epoch=epoch,
        fitted_at=fitted_at,
        base_probability=base_p,
        class_prior=result.class_prior,
        sources=sources,
        reporters=reporters,
        iterations=result.iterations,
        converged=result.converged,
        numbers=n_items,
        labels=int(keep_lab.sum()),
        flags=int(keep_flg.sum()),
        gold=len(gold_items),
    )


def _collect_labels(labels: Iterable[Any], role_of: Callable[[str], Role | None]) -> dict[str, Any]:
    numbers: list[str] = []
    issuers: list[str] = []
    votes: list[int] = []
    confidences: list[float] = []
    times: list[float] = []
    markers: dict[str, float] = {}
    spam_of = {code: cat.is_spam for code, cat in CATEGORIES.items()}
    marker_ok: dict[str, bool] = {}
    for label in labels:
        code = label.category
        if code == REASSIGNED_CODE:
            ok = marker_ok.get(label.issuer)
            if ok is None:
                ok = marker_ok[label.issuer] = role_of(label.issuer) in MARKER_ROLES
            if ok:
                ts = label.issued_at.timestamp()
                markers[label.number] = max(markers.get(label.number, -math.inf), ts)
            continue
        spam = spam_of.get(code)
        if spam is None:
            continue
        numbers.append(label.number)
        issuers.append(label.issuer)
        votes.append(SPAM if spam else LEGIT)
        confidences.append(label.confidence)
        times.append(label.issued_at.timestamp())
    sources, source = np.unique(np.array(issuers, dtype=str), return_inverse=True) if issuers else (np.zeros(0, str), np.zeros(0, np.int64))
    return {
        "number": np.array(numbers, dtype=str),
        "sources": sources.tolist(),
        "source": source.astype(np.int64),
        "vote": np.array(votes, dtype=np.int64),
        "confidence": np.clip(np.array(confidences, dtype=np.float64), 0.0, 1.0),
        "time": np.array(times, dtype=np.float64),
        "markers": markers,
    }


def _collect_flags(flags: Iterable[Any]) -> dict[str, Any]:
    numbers: list[str] = []
    apps: list[str] = []
    reporters: list[str] = []
    spam: list[bool] = []
    times: list[float] = []
    spam_of = {code: cat.is_spam for code, cat in CATEGORIES.items()}
    for flag in flags:
        is_spam = spam_of.get(flag.category)
        if is_spam is None:
            continue
        numbers.append(flag.number)
        apps.append(flag.app_id)
        reporters.append(flag.reporter)
        spam.append(is_spam)
        times.append(flag.time.timestamp())
    if not numbers:
        return {"number": np.zeros(0, str), "apps": [], "app": np.zeros(0, np.int64), "reporters": [],
                "reporter": np.zeros(0, np.int64), "spam": np.zeros(0, bool), "time": np.zeros(0)}
    number = np.array(numbers, dtype=str)
    app_names, app = np.unique(np.array(apps, dtype=str), return_inverse=True)
    rep_keys, rep = np.unique(np.char.add(np.char.add(np.array(apps, dtype=str), "\x1f"), np.array(reporters, dtype=str)), return_inverse=True)
    time = np.array(times, dtype=np.float64)
    is_spam = np.array(spam, dtype=bool)
    # one flag per reporter and number (the store keeps the latest): newest wins, ties to spam
    _, num_idx = np.unique(number, return_inverse=True)
    order = np.lexsort((is_spam, time, num_idx, rep))
    last = np.r_[(rep[order][1:] != rep[order][:-1]) | (num_idx[order][1:] != num_idx[order][:-1]), True]
    pick = order[last]
    keys = [tuple(k.split("\x1f", 1)) for k in rep_keys.tolist()]
    return {
        "number": number[pick],
        "apps": app_names.tolist(),
        "app": app[pick].astype(np.int64),
        "reporters": keys,
        "reporter": rep[pick].astype(np.int64),
        "spam": is_spam[pick],
        "time": time[pick],
    }


def _strongest(item, src, vote, weight, when, n_src):
    """Per (item, source, vote) the strongest vote (ties: the earliest)."""
    if not len(item):
        return item, src, vote, weight, when
    key = (item * n_src + src) * 2 + vote
    order = np.lexsort((when, -weight, key))
    key = key[order]
    first = np.r_[True, key[1:] != key[:-1]]
    pick = order[first]
    return item[pick], src[pick], vote[pick], weight[pick], when[pick]


def _independence(item, src, vote, when, n_items, n_src, exempt, config: TrustConfig) -> np.ndarray:
    """Per source, 1 or less: how often it is among the first to report what it
    reports, against the median participant (exempt roles, the regulator, are
    neither judged nor counted as first reporters: confirming late is its job)."""
    result = np.ones(n_src)
    if not len(item):
        return result
    counted = ~exempt[src]
    cell = item * 2 + vote
    first = np.full(n_items * 2, np.inf)
    np.minimum.at(first, cell[counted], when[counted])
    novel = when <= first[cell] + config.copy_window.total_seconds()
    votes = np.bincount(src[counted], minlength=n_src)
    novel_votes = np.bincount(src[counted], weights=novel[counted].astype(float), minlength=n_src)
    judged = (votes >= config.copy_min_votes) & ~exempt
    if judged.sum() < 3:
        return result
    rate = novel_votes / np.maximum(votes, 1)
    reference = float(np.median(rate[judged]))
    if reference <= 0:
        return result
    result[judged] = np.clip(rate[judged] / (config.copy_ratio * reference), 0.0, 1.0)
    return result


def _decay(age_seconds: np.ndarray, half_life_seconds: float) -> np.ndarray:
    return np.power(0.5, np.clip(age_seconds, 0.0, None) / half_life_seconds)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))
