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
   label counts, as much as its confidence says;
2. drops what predates a number's reassignment (see ``numrep.core.reassignment``);
3. takes regulator labels as gold (their numbers' truth is fixed during EM),
   explicit ``gold`` overriding;
4. measures copying: a participant almost never among the first to report
   what it reports counts less (``independence``);
5. weighs what happened on each number, as the record of its sources, by the
   number's age (``fit_half_life`` from its newest report), so a participant
   whose quality changes is judged mostly on its recent record, and lets
   silence about a number count once it has been around for a while
   (``silence_delay``);
6. alternates EM (``numrep.trust.dawid_skene``) with reporter reputations
   (``numrep.trust.reporters``): each app's users enter EM as one pseudo-source
   ``app-x/flags`` whose vote on a number comes from its reporters' weights,
   and each reporter is judged against the fit without its own app's users.
"""

from __future__ import annotations

import bisect
import functools
import json
import math
import threading
from array import array
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Mapping

import numpy as np

from numrep.core.model import FlagVote, LabelVote, Participant, Role
from numrep.trust.config import TrustConfig
from numrep.trust.dawid_skene import LEGIT, SILENT, SPAM, SourcePrior, fit_em, item_logits
from numrep.core.reassignment import MARKER_ROLES, REASSIGNED_CODE, spam_codes
from numrep.trust.reporters import (
    ReporterRecords,
    agreement,
    flags_source,
    is_flags_source,
    principal_of,
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
    legit_sensitivity: float  # P(it labels legitimate | not spam)
    legit_specificity: float  # P(it does not label legitimate | spam)
    spam_votes: float  # spam votes it was judged on (weighted by confidence)
    legit_votes: float
    independence: float  # 1, or less for a participant that mostly repeats earlier reports
    spam_llr: float  # log-odds one full-weight spam vote adds (>= 0)
    legit_llr: float  # log-odds one full-weight legitimate vote adds (<= 0)
    silence_llr: float  # log-odds its silence on a number adds (<= 0)
    fitted: bool = True


@dataclass(frozen=True)
class TrustSnapshot:
    epoch: int
    fitted_at: datetime | None
    base_probability: float  # P(spam) of a reported number before its evidence (fitted, bounded)
    class_prior: float  # as fitted, unbounded
    sources: Mapping[str, SourceReliability] = field(default_factory=dict)
    reporters: Mapping[tuple[str, str], tuple[float, float]] = field(default_factory=ReporterRecords)  # (app, reporter) -> (agree, disagree)
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

    @functools.cached_property
    def silence_by_principal(self) -> dict[str, float]:
        """Per participant, the log-odds its sources' silence adds on a fully
        exposed number (its labels' and its users' flags')."""
        totals: dict[str, float] = {}
        for rel in self.sources.values():
            key = principal_of(rel.source)
            totals[key] = totals.get(key, 0.0) + rel.silence_llr
        return totals

    def reliability(self, source: str, role: Role | None, config: TrustConfig) -> SourceReliability:
        """The fitted reliability of ``source``, or its role prior's if the model
        has not seen it (a new participant counts as its role is expected to)."""
        found = self.sources.get(source)
        if found is not None:
            return found
        held = self._priors.get((source, role))
        if held is None or held[0] is not config:
            key = prior_key(source, role)
            held = self._priors[(source, role)] = (config, prior_reliability(source, config.priors[key], key, self.class_prior))
        return held[1]

    @functools.cached_property
    def _priors(self) -> dict[tuple[str, Role | None], tuple[TrustConfig, SourceReliability]]:
        """``reliability`` of the sources this snapshot has not fitted, as computed (the snapshot never changes)."""
        return {}

    def to_json(self) -> str:
        body = {f.name: getattr(self, f.name) for f in fields(self)}
        body["fitted_at"] = self.fitted_at.isoformat() if self.fitted_at else None
        body["sources"] = [asdict(s) for s in self.sources.values()]
        body["reporters"] = ReporterRecords.of(self.reporters).to_json_body()
        return json.dumps(body, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "TrustSnapshot":
        body: dict[str, Any] = json.loads(text)
        body["fitted_at"] = datetime.fromisoformat(body["fitted_at"]) if body["fitted_at"] else None
        body["sources"] = {s["source"]: SourceReliability(**s) for s in body["sources"]}
        held = body["reporters"]  # {app: [ids, agree, disagree]}; before session 17, [[app, reporter, agree, disagree], ...]
        body["reporters"] = ReporterRecords(held) if isinstance(held, dict) else ReporterRecords.of(held)
        return cls(**body)


def prior_reliability(source: str, prior: SourcePrior, key: str, class_prior: float) -> SourceReliability:
    """A source the model has not fitted: its labels move a number from the
    class prior to its role prior's precision; its silence says nothing."""
    sp, lp = prior.spam_precision.mean, prior.legit_precision.mean
    base = math.log(class_prior / (1.0 - class_prior))
    spam_llr = max(0.0, math.log(sp / (1.0 - sp)) - base)
    legit_llr = min(0.0, -math.log(lp / (1.0 - lp)) - base)
    nan = float("nan")
    return SourceReliability(source, key, sp, lp, nan, nan, nan, nan, 0.0, 0.0, 1.0, spam_llr, legit_llr, 0.0, fitted=False)


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
        """Fit a new snapshot from ``labels`` (``LabelVote``s, or ``Label``-likes:
        number, issuer, category, confidence, issued_at) and ``flags``
        (``FlagVote``s, or ``Flag``-likes), read once, install it as the next epoch and
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
    universe: dict[str, int] = {}  # every number somebody said something about -> its id in order of first sight
    lab = _collect_labels(labels, role_of, universe)
    flg = _collect_flags(flags, universe)
    newest = [float(a.max()) for a in (lab["time"], flg["time"]) if len(a)]
    if not newest:  # no data at all
        snap = initial_snapshot(config)
        return TrustSnapshot(epoch, now, snap.base_probability, snap.class_prior)
    now_ts = now.timestamp() if now is not None else max(newest)
    fitted_at = now if now is not None else datetime.fromtimestamp(now_ts, timezone.utc)
    half_life = config.fit_half_life.total_seconds()

    # the universe in sorted order
    numbers, rank = _sorted_index(universe)
    del universe  # on a large record the biggest thing the fit holds; ``numbers`` keeps its strings
    n_items = len(numbers)
    lab_item = rank[lab["item"]]
    flg, flg_item = _latest_flags(flg, rank[flg["item"]])

    # reassignment: explicit times and marker labels from carriers or the regulator
    cutoff = np.full(n_items, -math.inf)
    markers = dict(lab["markers"])
    for number, when in reassigned.items():
        markers[number] = max(markers.get(number, -math.inf), when.timestamp())
    _assign(cutoff, numbers, markers)
    keep_lab = (lab["time"] >= cutoff[lab_item]) & (lab["time"] <= now_ts)
    keep_flg = (flg["time"] >= cutoff[flg_item]) & (flg["time"] <= now_ts)

    # sources: participants, then app flag pseudo-sources, by name
    source_names = sorted(set(lab["sources"]) | {flags_source(a) for a in flg["apps"]})
    source_index = {name: i for i, name in enumerate(source_names)}
    n_src = len(source_names)
    lab_src = _remap(lab["source"], [source_index[s] for s in lab["sources"]])
    flg_src = _remap(flg["app"], [source_index[flags_source(a)] for a in flg["apps"]])
    roles = [None if is_flags_source(name) else role_of(name) for name in source_names]
    exempt = np.array([r is Role.REGULATOR for r in roles], dtype=bool)

    # label votes: strongest per (number, participant, polarity)
    item, src, vote = lab_item[keep_lab], lab_src[keep_lab], lab["vote"][keep_lab]
    weight, when = lab["confidence"][keep_lab], lab["time"][keep_lab]
    item, src, vote, weight, when = _strongest(item, src, vote, weight, when, n_src)
    independence = _independence(item, src, vote, when, n_items, n_src, exempt, config)
    weight = weight * independence[src]
    positive = weight > 0
    item, src, vote, weight, when = item[positive], src[positive], vote[positive], weight[positive], when[positive]

    # silence counts as a number ages: exposure from its first report. As the record
    # of its sources, what happened on a number decays with its newest report, so
    # that a source whose quality changes is judged mostly on its recent numbers
    first = np.full(n_items, np.inf)
    newest = np.full(n_items, -np.inf)
    f_times = flg["time"][keep_flg]
    for at_item, times in ((item, when), (flg_item[keep_flg], f_times)):
        np.minimum.at(first, at_item, times)
        np.maximum.at(newest, at_item, times)
    age = np.where(np.isfinite(first), now_ts - first, 0.0)
    exposure = -np.expm1(-np.clip(age, 0.0, None) / config.silence_delay.total_seconds())
    item_record = _decay(np.where(np.isfinite(newest), now_ts - newest, 0.0), half_life)

    # gold: the regulator's latest label per number, then explicit gold over it
    gold_map: dict[int, float] = {}
    reg = exempt[src] if regulator_gold else np.zeros(len(src), dtype=bool)
    if reg.any():
        order = np.lexsort((vote[reg], when[reg], item[reg]))
        r_item, r_vote = item[reg][order], vote[reg][order]
        last = np.r_[r_item[1:] != r_item[:-1], True]
        gold_map.update(zip(r_item[last].tolist(), r_vote[last].astype(float).tolist()))
    explicit = np.full(n_items, np.nan)
    _assign(explicit, numbers, {n: 1.0 if v else 0.0 for n, v in gold.items()})
    gold_map.update((int(i), float(explicit[i])) for i in np.flatnonzero(~np.isnan(explicit)))
    gold_items = np.array(sorted(gold_map), dtype=np.int64)
    gold_values = np.array([gold_map[i] for i in gold_items.tolist()], dtype=np.float64)

    priors = [config.priors[prior_key(name, role)] for name, role in zip(source_names, roles)]
    spam_a = np.array([p.spam_precision.a for p in priors])
    spam_b = np.array([p.spam_precision.b for p in priors])
    legit_a = np.array([p.legit_precision.a for p in priors])
    legit_b = np.array([p.legit_precision.b for p in priors])

    # flags: one vote per (app, number, polarity) from its reporters' weights
    f_item, f_src = flg_item[keep_flg], flg_src[keep_flg]
    f_rep, f_spam = flg["reporter"][keep_flg], flg["spam"][keep_flg]
    f_decay = _decay(now_ts - flg["time"][keep_flg], half_life)
    n_rep = len(flg["reporters"])
    groups, f_group = np.unique((f_src * n_items + f_item) * 2 + f_spam.astype(np.int64), return_inverse=True)
    g_vote = groups % 2
    g_item = (groups // 2) % n_items
    g_src = (groups // 2) // n_items
    f_pair = f_src * n_items + f_item
    rep_agree = np.zeros(n_rep)
    rep_disagree = np.zeros(n_rep)

    posterior: np.ndarray | None = None
    result = None
    for _ in range(max(1, config.reputation_rounds) if len(groups) else 1):
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
        counted = o_weight > 0
        o_item, o_src, o_vote, o_weight = (a[counted] for a in (o_item, o_src, o_vote, o_weight))
        result = fit_em(
            o_item, o_src, o_vote, o_weight, n_items, n_src, spam_a, spam_b, legit_a, legit_b,
            exposure=exposure, item_record=item_record,
            gold_items=gold_items, gold_values=gold_values, class_prior=config.class_prior,
            tol=config.tol, max_iter=config.max_iter, init_posterior=posterior, silent_sources=~exempt,
        )
        posterior = result.posterior
        if not len(groups):
            break
        # reputations: each flag against the federation's belief without its app's users
        table = result.llr()
        logits, pairs, contrib = item_logits(table, result.class_prior, o_item, o_src, o_vote, o_weight, n_items, n_src, exposure)
        at = np.searchsorted(pairs, f_pair)
        found = (at < len(pairs)) & (pairs[np.minimum(at, len(pairs) - 1)] == f_pair)
        app_term = exposure[f_item] * table[f_src, SILENT] + np.where(found, contrib[np.minimum(at, len(pairs) - 1)], 0.0)
        t_without = _sigmoid(logits[f_item] - app_term)
        if len(gold_items):
            known = ~np.isnan(_dense(gold_items, gold_values, n_items)[f_item])
            t_without = np.where(known, posterior[f_item], t_without)
        agree, disagree = agreement(t_without, f_spam)
        rep_agree = np.bincount(f_rep, weights=agree * f_decay, minlength=n_rep)
        rep_disagree = np.bincount(f_rep, weights=disagree * f_decay, minlength=n_rep)

    assert result is not None
    base_p = float(np.clip(result.class_prior, *config.base_bounds))
    table = result.llr()
    spam_precision, legit_precision = result.spam_precision, result.legit_precision
    sources = {
        name: SourceReliability(
            source=name,
            prior=prior_key(name, roles[i]),
            spam_precision=float(spam_precision[i]),
            legit_precision=float(legit_precision[i]),
            sensitivity=float(result.sensitivity[i]),
            specificity=float(result.specificity[i]),
            legit_sensitivity=float(result.legit_sensitivity[i]),
            legit_specificity=float(1.0 - result.false_legit_rate[i]),
            spam_votes=float(result.spam_votes[i]),
            legit_votes=float(result.legit_votes[i]),
            independence=float(independence[i]),
            spam_llr=float(table[i, SPAM]),
            legit_llr=float(table[i, LEGIT]),
            silence_llr=float(table[i, SILENT]),
        )
        for i, name in enumerate(source_names)
    }
    reporters = ReporterRecords.of(
        (app, reporter, float(a), float(d))
        for (app, reporter), a, d in zip(flg["reporters"], rep_agree.tolist(), rep_disagree.tolist())
        if a > 0 or d > 0
    )
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


def _assign(target: np.ndarray, numbers: list[str], values: Mapping[str, float]) -> None:
    """``target[index of number] = value`` for the numbers of ``values`` in the (sorted) universe."""
    for number, value in values.items():
        idx = bisect.bisect_left(numbers, number)
        if idx < len(numbers) and numbers[idx] == number:
            target[idx] = value


def _remap(codes: np.ndarray, mapping: list[int]) -> np.ndarray:
    if not mapping:
        return np.zeros(len(codes), dtype=np.int64)
    return np.array(mapping, dtype=np.int64)[codes]


def _dense(items: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    out = np.full(n, np.nan)
    out[items] = values
    return out


def _sorted_index(index: Mapping[str, int]) -> tuple[list[str], np.ndarray]:
    """The distinct values of ``index`` (value -> id in order of first sight), sorted,
    and for each id the value's position among them."""
    seen = list(index)
    order = sorted(range(len(seen)), key=seen.__getitem__)
    rank = np.empty(len(seen), dtype=np.int64)
    rank[order] = np.arange(len(seen), dtype=np.int64)
    return [seen[i] for i in order], rank


def _collect_labels(labels: Iterable[Any], role_of: Callable[[str], Role | None], universe: dict[str, int]) -> dict[str, Any]:
    """Label votes (``LabelVote`` fields, or ``Label``-likes) as columns, one pass, holding
    none of the rows: a number is kept once, as its id in ``universe`` (order of first sight)."""
    spam_of = {code: (SPAM if spam else LEGIT) for code, spam in spam_codes().items()}
    source_ids: dict[str, int] = {}
    marker_ok: dict[str, bool] = {}
    markers: dict[str, float] = {}
    item, source, vote = array("q"), array("q"), array("b")
    confidence, time = array("d"), array("d")
    for number, issuer, code, conf, issued in map(_label_vote, labels):
        polarity = spam_of.get(code)
        if polarity is None:
            if code == REASSIGNED_CODE:
                ok = marker_ok.get(issuer)
                if ok is None:
                    ok = marker_ok[issuer] = role_of(issuer) in MARKER_ROLES
                if ok:
                    markers[number] = max(markers.get(number, -math.inf), issued)
            continue
        item.append(universe.setdefault(number, len(universe)))
        source.append(source_ids.setdefault(issuer, len(source_ids)))
        vote.append(polarity)
        confidence.append(conf)
        time.append(issued)
    sources, source_rank = _sorted_index(source_ids)
    return {
        "item": _column(item),
        "sources": sources,
        "source": source_rank[_column(source)],
        "vote": _column(vote).astype(np.int64),
        "confidence": np.clip(_column(confidence), 0.0, 1.0),
        "time": _column(time),
        "markers": markers,
    }


def _collect_flags(flags: Iterable[Any], universe: dict[str, int]) -> dict[str, Any]:
    """Flag votes (``FlagVote`` fields, or ``Flag``-likes) as columns, one pass; see ``_collect_labels``."""
    spam_of = {code: int(spam) for code, spam in spam_codes().items()}
    app_ids: dict[str, int] = {}
    reporter_ids: dict[str, int] = {}
    item, app, reporter, spam, time = array("q"), array("q"), array("q"), array("b"), array("d")
    for number, app_id, who, code, when in map(_flag_vote, flags):
        polarity = spam_of.get(code)
        if polarity is None:
            continue
        item.append(universe.setdefault(number, len(universe)))
        app.append(app_ids.setdefault(app_id, len(app_ids)))
        reporter.append(reporter_ids.setdefault(f"{app_id}\x1f{who}", len(reporter_ids)))
        spam.append(polarity)
        time.append(when)
    apps, app_rank = _sorted_index(app_ids)
    reporters, reporter_rank = _sorted_index(reporter_ids)
    return {
        "item": _column(item),
        "apps": apps,
        "app": app_rank[_column(app)],
        "reporters": [tuple(key.split("\x1f", 1)) for key in reporters],
        "reporter": reporter_rank[_column(reporter)],
        "spam": _column(spam).astype(bool),
        "time": _column(time),
    }


def _latest_flags(flg: dict[str, Any], item: np.ndarray) -> tuple[dict[str, Any], np.ndarray]:
    """One flag per reporter and number (the store keeps the latest): newest wins, ties to spam.
    ``item``: each flag's number's place in the (sorted) universe. In a canonical order."""
    if not len(item):
        return flg, item
    rep, is_spam, time = flg["reporter"], flg["spam"], flg["time"]
    order = np.lexsort((is_spam, time, item, rep))
    last = np.r_[(rep[order][1:] != rep[order][:-1]) | (item[order][1:] != item[order][:-1]), True]
    pick = order[last]
    return {**flg, "app": flg["app"][pick], "reporter": rep[pick], "spam": is_spam[pick], "time": time[pick]}, item[pick]


def _column(values: array) -> np.ndarray:
    """A column collected in an ``array`` as a (read-only) numpy array of the same type."""
    return np.frombuffer(values, dtype=values.typecode) if values else np.zeros(0, dtype=values.typecode)


def _label_vote(label: Any) -> Any:
    return label if isinstance(label, tuple) else LabelVote.of(label)


def _flag_vote(flag: Any) -> Any:
    return flag if isinstance(flag, tuple) else FlagVote.of(flag)


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
