"""Two-coin Dawid-Skene for spam / not-spam, fitted by EM with Beta priors by role.

The model
---------
Every number ``i`` in the universe (the numbers somebody said something about)
is spam (``y_i = 1``) or not. Every source ``j`` (a participant, or an app's
users seen as one pseudo-source ``app-x/flags``) labels it spam, labels it
legitimate, or stays silent. Given the truth, sources are independent (the
Dawid-Skene assumption) and each has two coins per polarity:

* ``sensitivity_j = P(j labels it spam | spam)`` and
  ``specificity_j = 1 - P(j labels it spam | not spam)``;
* likewise ``P(j labels it legitimate | not spam)`` and ``| spam``;

silence is what is left. The log-likelihood ratios of a spam label, a
legitimate label and silence follow: ``log(sensitivity / (1 - specificity))``
and so on.

Why silence is an outcome: participants of this federation are one-sided. A
carrier publishes spam labels for a fraction of the spam it sees (modest
recall), almost never for a legitimate number, and few ``legitimate`` labels.
Fitted only on the labels a source gave (classical Dawid-Skene), such a
source's specificity cannot be estimated: every label it gives says spam.
Counted over the universe, it is: a carrier that labelled 900 spam numbers and
10 legitimate ones out of thousands has a sensitivity of a few tenths and a
specificity of 0.998. And silence is evidence: a spam number is usually
reported by several sources, so a number only one source reported is more
likely legitimate than that source's precision alone says. Guards keep
silence honest:

* it only starts to count as the number ages (``exposure``: a number first
  reported an hour ago has not been seen by the others yet);
* a source's silence rates are shrunk towards its pooled rate (so random
  gaps in coverage read as nothing), a source's silence counts at most
  ``_MAX_SILENCE``, and the regulator's (which confirms what it is asked
  about, and whose labels are gold) does not count at all;
* it never counts *for* spam, and a vote never counts against what it says
  (a spam label's ratio is at least silence's and at least 1, a legitimate
  label's at most silence's): an untrusted participant's labels count for
  nothing rather than for the opposite, which an adversary could exploit.

With nobody silent (every source labels every number) this is exactly the
textbook two-coin model, and it agrees with crowd-kit's ``DawidSkene``.

Priors
------
The coins are parametrised by what the data pins down: a source's **volume**
of spam labels (observed, needs no prior) and its **precision**
``P(spam | it labels spam)``, with a Beta(a, b) prior by role (likewise for its
legitimate labels); ``sensitivity = precision * volume / N_spam`` and
``1 - specificity = (1 - precision) * volume / N_legit``. The prior matters for
a source with a short record (a new participant counts as its role is
expected to) and fades as the record grows, without inflating its coverage.

Votes carry a weight in ``[0, 1]`` (a label's confidence, an app's
reputation-weighted reporter share); a vote of weight ``w`` counts as ``w`` of
a vote and ``1 - w`` of silence (a tempered likelihood).

EM
--
E-step: ``logit P(spam_i) = logit(pi) + sum_j llr_j(outcome_ij)``, then the
gold items are set to their known truth (regulator-confirmed labels anchor the
fit). M-step: each precision is the expected number of right votes plus the
prior's pseudo-votes over the votes plus the prior's strength, each coin that
precision times the volume over the expected trials of its class; ``pi`` is
the mean posterior (with a weak Beta prior). Every step is a handful of
``numpy.bincount`` calls over the observation arrays (silence is summed per
item, never materialised per pair), so one iteration over a million votes
takes tens of milliseconds. ``numrep.trust.model`` puts the observations in a
canonical order first, so the same data gives the same fit bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

LEGIT = 0
SPAM = 1
SILENT = 2

_EPS = 1e-12
_MAX_LLR = 20.0
_SILENCE_SHRINK = 50.0  # pseudo-trials pulling a source's silence rate in each class towards its pooled rate
_MAX_SILENCE = 3.0  # no source's silence counts more than this: a guard against degenerate fits


@dataclass(frozen=True)
class BetaPrior:
    """Beta(mean * strength, (1 - mean) * strength): ``strength`` pseudo-votes."""

    mean: float
    strength: float

    def __post_init__(self) -> None:
        if not 0.0 < self.mean < 1.0 or self.strength <= 0:
            raise ValueError(f"a Beta prior needs 0 < mean < 1 and strength > 0, got {self.mean}, {self.strength}")

    @property
    def a(self) -> float:
        return self.mean * self.strength

    @property
    def b(self) -> float:
        return (1.0 - self.mean) * self.strength


@dataclass(frozen=True)
class SourcePrior:
    """What is believed about a source before seeing its record."""

    spam_precision: BetaPrior  # P(spam | it labels spam)
    legit_precision: BetaPrior  # P(not spam | it labels legitimate)


# Priors by role (``numrep.core.model.Role`` values) and for app flag pseudo-sources.
# The regulator is strong and accurate (its confirmations are also gold); carriers
# precise (their modest recall the data shows by itself); handset vendors a little
# less; app vendors' own labels weaker, and their users' flags weaker still.
ROLE_PRIORS: Mapping[str, SourcePrior] = {
    "regulator": SourcePrior(BetaPrior(0.99, 200.0), BetaPrior(0.99, 200.0)),
    "carrier": SourcePrior(BetaPrior(0.95, 40.0), BetaPrior(0.93, 30.0)),
    "handset_vendor": SourcePrior(BetaPrior(0.88, 30.0), BetaPrior(0.85, 20.0)),
    "app_vendor": SourcePrior(BetaPrior(0.80, 20.0), BetaPrior(0.75, 20.0)),
    "app_flags": SourcePrior(BetaPrior(0.75, 20.0), BetaPrior(0.65, 20.0)),
    "unknown": SourcePrior(BetaPrior(0.60, 10.0), BetaPrior(0.60, 10.0)),
}

DEFAULT_CLASS_PRIOR = BetaPrior(0.3, 10.0)


@dataclass(frozen=True)
class EMResult:
    """The fit. Arrays are indexed by source (``n_sources``) or item (``n_items``)."""

    posterior: np.ndarray  # P(spam) per item, gold items fixed
    sensitivity: np.ndarray  # P(labels spam | spam)
    false_spam_rate: np.ndarray  # P(labels spam | not spam) = 1 - specificity
    legit_sensitivity: np.ndarray  # P(labels legitimate | not spam)
    false_legit_rate: np.ndarray  # P(labels legitimate | spam)
    spam_precision: np.ndarray  # P(spam | labels spam)
    legit_precision: np.ndarray  # P(not spam | labels legitimate)
    table: np.ndarray  # [n_sources, 3] log-likelihood ratios of LEGIT, SPAM, SILENT (clipped)
    class_prior: float
    iterations: int
    converged: bool
    spam_votes: np.ndarray  # weighted spam votes per source
    legit_votes: np.ndarray

    @property
    def specificity(self) -> np.ndarray:
        return 1.0 - self.false_spam_rate

    def llr(self) -> np.ndarray:
        """``[n_sources, 3]``: log-likelihood ratios of a legitimate label, a spam
        label and silence (columns ``LEGIT``, ``SPAM``, ``SILENT``), clipped."""
        return self.table


def llr_table(spam_llr: np.ndarray, legit_llr: np.ndarray, silent_llr: np.ndarray) -> np.ndarray:
    """Stack the log-likelihood ratios (spam : not spam) of each outcome, clipped
    so that silence never argues for spam and a vote never counts against what
    it says (a spam label at least as much as silence, a legitimate label at
    most as much)."""
    silent = np.clip(silent_llr, -_MAX_SILENCE, 0.0)
    spam = np.clip(spam_llr, 0.0, _MAX_LLR)
    legit = np.minimum(np.clip(legit_llr, -_MAX_LLR, 0.0), silent)
    return np.stack([legit, spam, silent], axis=1)


def fit_em(
    items: np.ndarray,
    sources: np.ndarray,
    votes: np.ndarray,
    weights: np.ndarray,
    n_items: int,
    n_sources: int,
    spam_prior_a: np.ndarray,
    spam_prior_b: np.ndarray,
    legit_prior_a: np.ndarray,
    legit_prior_b: np.ndarray,
    *,
    exposure: np.ndarray | None = None,
    item_record: np.ndarray | None = None,
    gold_items: np.ndarray | None = None,
    gold_values: np.ndarray | None = None,
    class_prior: BetaPrior = DEFAULT_CLASS_PRIOR,
    tol: float = 1e-6,
    max_iter: int = 200,
    init_posterior: np.ndarray | None = None,
    silent_sources: np.ndarray | None = None,
) -> EMResult:
    """Fit the model on observation arrays: one entry per vote (item index,
    source index, vote ``SPAM``/``LEGIT``, weight in (0, 1]); at most one vote
    per (item, source, polarity).

    ``exposure`` (per item, in [0, 1], default 1) is how much silence on the
    item counts as evidence about it (E-step). ``item_record`` (per item,
    default 1) is how much what the sources did on the item tells about their
    *current* reliability (M-step only): the model decays it with the item's
    age so that a source is judged mostly on its recent record, while an old
    label is still full evidence about its number. Every outcome on an item,
    vote or silence, carries that same record weight, so that the coins are
    rates over comparable trials.

    ``spam_prior_a/b`` and ``legit_prior_a/b`` (per source) are the Beta priors
    on precision. ``silent_sources`` (per source, default all) says whose
    silence is evidence at all: not the regulator's, whose confirmations follow
    complaints rather than coverage (and are gold, which would let its silence
    explain everything else away). Converged when no log-likelihood ratio and not the class
    prior moves by more than ``tol`` in an iteration.
    """
    items = np.asarray(items, dtype=np.int64)
    sources = np.asarray(sources, dtype=np.int64)
    votes = np.asarray(votes, dtype=np.int64)
    weights = np.clip(np.asarray(weights, dtype=np.float64), 0.0, 1.0)
    if not (len(items) == len(sources) == len(votes) == len(weights)):
        raise ValueError("observation arrays differ in length")
    exposure = np.ones(n_items) if exposure is None else np.asarray(exposure, dtype=np.float64)
    item_record = np.ones(n_items) if item_record is None else np.asarray(item_record, dtype=np.float64)
    record = weights * item_record[items]
    gold_items = np.asarray(gold_items if gold_items is not None else [], dtype=np.int64)
    gold_values = np.asarray(gold_values if gold_values is not None else [], dtype=np.float64)

    is_spam = votes == SPAM
    cell = sources * 2 + votes
    silence_counts = np.ones(n_sources, dtype=bool) if silent_sources is None else np.asarray(silent_sources, dtype=bool)
    # pairs (item, source) that voted: the share of a vote that is not silence
    pair_key = items * n_sources + sources
    pairs, pair_of = np.unique(pair_key, return_inverse=True)
    pair_item, pair_source = pairs // n_sources, pairs % n_sources
    spoken = np.minimum(np.bincount(pair_of, weights=weights, minlength=len(pairs)), 1.0)
    quiet_share = spoken * exposure[pair_item]  # silence removed from the item's total by the pair's votes
    quiet_record = spoken * item_record[pair_item]
    silence_record = item_record
    votes_mass = np.bincount(cell, weights=weights, minlength=2 * n_sources).reshape(n_sources, 2)
    judged = np.bincount(cell, weights=record, minlength=2 * n_sources).reshape(n_sources, 2)
    spam_volume, legit_volume = judged[:, SPAM], judged[:, LEGIT]

    pi = class_prior.mean
    spam_precision = spam_prior_a / (spam_prior_a + spam_prior_b)
    legit_precision = legit_prior_a / (legit_prior_a + legit_prior_b)
    base = float(_logit(pi))
    table = llr_table(_logit(spam_precision) - base, -_logit(legit_precision) - base, np.zeros(n_sources))
    sens = false_spam = legit_sens = false_legit = np.zeros(n_sources)

    def e_step(table: np.ndarray, prior: float) -> np.ndarray:
        base = float(_logit(np.clip(prior, 0.01, 0.99)))
        flat = table[:, :2].reshape(-1)
        silent = table[:, SILENT]
        logits = (
            base
            + exposure * float(silent.sum())
            + np.bincount(items, weights=weights * flat[cell], minlength=n_items)
            - np.bincount(pair_item, weights=quiet_share * silent[pair_source], minlength=n_items)
        )
        posterior = _sigmoid(logits)
        if len(gold_items):
            posterior[gold_items] = gold_values
        return posterior

    if init_posterior is not None and len(init_posterior) == n_items:
        posterior = np.array(init_posterior, dtype=np.float64)
        if len(gold_items):
            posterior[gold_items] = gold_values
    else:
        posterior = e_step(table, pi)

    converged = False
    iteration = 0
    for iteration in range(1, max_iter + 1):
        # M-step. Precision: expected right votes plus the role prior over the
        # source's (record-weighted) votes; the coins then follow from its
        # volume over the expected trials of each class.
        t = posterior
        tv = t[items]
        spam_hit = np.bincount(sources[is_spam], weights=(record * tv)[is_spam], minlength=n_sources)
        legit_hit = np.bincount(sources[~is_spam], weights=(record * (1.0 - tv))[~is_spam], minlength=n_sources)
        legit_miss = legit_volume - legit_hit
        spam_miss = spam_volume - spam_hit
        tp = t[pair_item]
        quiet1 = float(np.dot(silence_record, t)) - np.bincount(pair_source, weights=quiet_record * tp, minlength=n_sources)
        quiet0 = float(np.dot(silence_record, 1.0 - t)) - np.bincount(pair_source, weights=quiet_record * (1.0 - tp), minlength=n_sources)
        quiet1, quiet0 = np.maximum(quiet1, 0.0), np.maximum(quiet0, 0.0)
        trials1 = np.maximum(spam_hit + legit_miss + quiet1, _EPS)
        trials0 = np.maximum(spam_miss + legit_hit + quiet0, _EPS)
        spam_precision = (spam_hit + spam_prior_a) / (spam_volume + spam_prior_a + spam_prior_b)
        legit_precision = (legit_hit + legit_prior_a) / (legit_volume + legit_prior_a + legit_prior_b)
        sens = np.minimum(spam_precision * spam_volume / trials1, 1.0)
        false_spam = np.minimum((1.0 - spam_precision) * spam_volume / trials0, 1.0)
        legit_sens = np.minimum(legit_precision * legit_volume / trials0, 1.0)
        false_legit = np.minimum((1.0 - legit_precision) * legit_volume / trials1, 1.0)
        odds = np.log(trials0) - np.log(trials1)  # log((1 - pi_j) / pi_j) over the trials the source had
        # silence: its rate in each class, shrunk towards its pooled rate by one
        # pseudo-trial; a source that is (almost) never silent has no silence to read
        pooled = (quiet1 + quiet0) / (trials1 + trials0)
        silent = _log((quiet1 + _SILENCE_SHRINK * pooled) / (trials1 + _SILENCE_SHRINK)) - _log((quiet0 + _SILENCE_SHRINK * pooled) / (trials0 + _SILENCE_SHRINK))
        silent = np.where(silence_counts & (pooled > 1e-9), silent, 0.0)
        new_table = llr_table(_logit(spam_precision) + odds, -_logit(legit_precision) + odds, silent)
        new_pi = (float(t.sum()) + class_prior.a) / (n_items + class_prior.strength)
        delta = max(float(np.max(np.abs(new_table - table), initial=0.0)), abs(new_pi - pi))
        table, pi = new_table, new_pi
        posterior = e_step(table, pi)
        if delta < tol:
            converged = True
            break

    return EMResult(
        posterior=posterior,
        sensitivity=sens,
        false_spam_rate=false_spam,
        legit_sensitivity=legit_sens,
        false_legit_rate=false_legit,
        spam_precision=spam_precision,
        legit_precision=legit_precision,
        table=table,
        class_prior=float(pi),
        iterations=iteration,
        converged=converged,
        spam_votes=votes_mass[:, SPAM].copy(),
        legit_votes=votes_mass[:, LEGIT].copy(),
    )


def item_logits(
    table: np.ndarray,
    class_prior: float,
    items: np.ndarray,
    sources: np.ndarray,
    votes: np.ndarray,
    weights: np.ndarray,
    n_items: int,
    n_sources: int,
    exposure: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(logit P(spam) per item, the voting pairs as ``item * n_sources + source``,
    and each pair's contribution over the item's all-silent baseline): the
    E-step's arithmetic, for callers that need to take a source out again."""
    items = np.asarray(items, dtype=np.int64)
    sources = np.asarray(sources, dtype=np.int64)
    weights = np.clip(np.asarray(weights, dtype=np.float64), 0.0, 1.0)
    exposure = np.ones(n_items) if exposure is None else exposure
    pairs, pair_of = np.unique(items * n_sources + sources, return_inverse=True)
    pair_item, pair_source = pairs // n_sources, pairs % n_sources
    spoken = np.minimum(np.bincount(pair_of, weights=weights, minlength=len(pairs)), 1.0)
    silent = table[:, SILENT]
    vote_llr = weights * table[sources, np.asarray(votes, dtype=np.int64)]
    contrib = np.bincount(pair_of, weights=vote_llr, minlength=len(pairs)) - spoken * exposure[pair_item] * silent[pair_source]
    base = float(_logit(np.clip(class_prior, 0.01, 0.99)))
    logits = base + exposure * float(silent.sum()) + np.bincount(pair_item, weights=contrib, minlength=n_items)
    return logits, pairs, contrib


def _log(p: np.ndarray) -> np.ndarray:
    return np.log(np.clip(p, _EPS, None))


def _logit(p: np.ndarray | float) -> np.ndarray:
    p = np.clip(p, _EPS, 1.0 - _EPS)
    return np.log(p) - np.log1p(-p)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))
