"""Two-coin Dawid-Skene for spam / not-spam, fitted by EM with Beta priors by role.

The model
---------
Every number ``i`` in the universe (the numbers somebody said something about)
is spam (``y_i = 1``) or not. Every source ``j`` (a participant, or an app's
users seen as one pseudo-source ``app-x/flags``) either labels it spam, labels
it legitimate, or says nothing. Given the truth, sources are independent (the
Dawid-Skene assumption) and each has two coins per polarity:

* ``sensitivity_j = P(j labels it spam | spam)``
* ``specificity_j = P(j does not label it spam | not spam)``

and the same pair for its ``legitimate`` labels. A spam label from ``j``
therefore carries the log-likelihood ratio
``log(sensitivity_j / (1 - specificity_j))``.

Participants of this federation are one-sided: a carrier publishes spam labels
for a fraction of the spam it sees (modest recall) and almost never for a
legitimate number (high specificity), and it publishes few or no
``legitimate`` labels. The classical two-coin model, fitted only on the labels
a source gave, cannot estimate specificity for a source that never says "not
spam" (every one of its labels is a spam label, so its specificity is 0 or
undetermined). So the coins are taken over the whole universe, with silence as
a third outcome, and the model is parametrised by what the data pins down:

* the source's volume of spam labels (observed, needs no prior), and
* its **spam precision** ``p_j = P(spam | j labels it spam)``, with a Beta
  prior by role; likewise **legitimate precision** ``q_j = P(not spam | j
  labels it legitimate)``.

These are a re-parametrisation of the two coins: with class prior ``pi`` and
``N1``, ``N0`` spam and legitimate numbers in the universe,
``sensitivity = p * n_spam / N1`` and ``1 - specificity = (1 - p) * n_spam / N0``,
so the likelihood ratio of one spam label is ``(p / (1 - p)) / (pi / (1 - pi))``:
a single label moves a number from the prior exactly to the source's precision.
When every source labels every number this is the textbook two-coin model
(it agrees with crowd-kit's ``DawidSkene`` on such data; see the tests).

Silence is *not* used as evidence when combining labels: a carrier says nothing
about numbers that never call its subscribers, so its silence tells little. A
vote never counts against what it says (a spam label's ratio is clipped at 1,
a legitimate label's at 1 from the other side): an untrusted participant's
labels count for nothing rather than for the opposite, which an adversary
could otherwise exploit.

Votes carry a weight in ``[0, 1]`` (a label's own confidence times a time
decay, an app's reputation-weighted share of its reporters); a weighted vote
counts as that fraction of a vote in both steps (a tempered likelihood).

EM
--
E-step: ``logit P(spam_i) = logit(pi) + sum_j w_ij * llr_j(vote_ij)``, then the
gold items are set to their known truth (regulator-confirmed labels anchor the
fit). M-step: the expected number of correct votes of each source plus its
Beta prior's pseudo-counts over its weighted votes plus the prior's strength;
``pi`` likewise. Everything is a ``numpy.bincount`` over the observation arrays,
so one iteration over a million votes takes a few tens of milliseconds. The
observations are put into a canonical order first, so the same data gives the
same fit bit for bit whatever order it came in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

SPAM = 1
LEGIT = 0

_EPS = 1e-12
_MAX_LLR = 20.0


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
# are precise (and, as the data will show, of modest recall); handset vendors a
# little less; app vendors' own labels weaker, and their users' flags weaker still.
ROLE_PRIORS: Mapping[str, SourcePrior] = {
    "regulator": SourcePrior(BetaPrior(0.99, 200.0), BetaPrior(0.99, 200.0)),
    "carrier": SourcePrior(BetaPrior(0.95, 40.0), BetaPrior(0.93, 30.0)),
    "handset_vendor": SourcePrior(BetaPrior(0.88, 30.0), BetaPrior(0.85, 20.0)),
    "app_vendor": SourcePrior(BetaPrior(0.80, 20.0), BetaPrior(0.75, 20.0)),
    "app_flags": SourcePrior(BetaPrior(0.75, 20.0), BetaPrior(0.65, 20.0)),
    "unknown": SourcePrior(BetaPrior(0.60, 10.0), BetaPrior(0.60, 10.0)),
}

DEFAULT_CLASS_PRIOR = BetaPrior(0.2, 10.0)


@dataclass(frozen=True)
class EMResult:
    """The fit. Arrays are indexed by source (``n_sources``) or item (``n_items``)."""

    posterior: np.ndarray  # P(spam) per item, gold items fixed
    spam_precision: np.ndarray
    legit_precision: np.ndarray
    spam_mass: np.ndarray  # spam votes per source (weighted as evidence)
    legit_mass: np.ndarray  # legitimate votes per source
    class_prior: float
    iterations: int
    converged: bool

    def base_logit(self, lo: float = 0.01, hi: float = 0.99) -> float:
        return float(_logit(np.clip(self.class_prior, lo, hi)))

    def sensitivity(self) -> np.ndarray:
        """P(labels spam | spam) over the universe."""
        n1 = max(float(self.posterior.sum()), _EPS)
        return np.clip(self.spam_precision * self.spam_mass / n1, 0.0, 1.0)

    def specificity(self) -> np.ndarray:
        """P(does not label spam | not spam) over the universe."""
        n0 = max(float((1.0 - self.posterior).sum()), _EPS)
        return np.clip(1.0 - (1.0 - self.spam_precision) * self.spam_mass / n0, 0.0, 1.0)


def llr_table(spam_precision: np.ndarray, legit_precision: np.ndarray, base_logit: float) -> np.ndarray:
    """``[n_sources, 2]`` log-likelihood ratios of a legitimate (column 0) and a
    spam (column 1) vote, each clipped so that a vote never counts against what
    it says."""
    spam = np.clip(_logit(spam_precision) - base_logit, 0.0, _MAX_LLR)
    legit = np.clip(-_logit(legit_precision) - base_logit, -_MAX_LLR, 0.0)
    return np.stack([legit, spam], axis=1)


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
    gold_items: np.ndarray | None = None,
    gold_values: np.ndarray | None = None,
    class_prior: BetaPrior = DEFAULT_CLASS_PRIOR,
    tol: float = 1e-6,
    max_iter: int = 200,
    base_bounds: tuple[float, float] = (0.01, 0.99),
    init_posterior: np.ndarray | None = None,
    record_weights: np.ndarray | None = None,
) -> EMResult:
    """Fit the model on observation arrays (one entry per vote: item index,
    source index, vote ``SPAM``/``LEGIT``, weight in (0, 1]).

    ``weights`` say how much a vote tells about its number (E-step);
    ``record_weights`` (default: the same) how much it tells about its source's
    current reliability (M-step): ``numrep.trust.model`` decays them with age so
    that a source is judged mostly on its recent record, while an old label is
    still full evidence about the number it labelled.

    Deterministic for a given input order; ``numrep.trust.model`` sorts the
    observations canonically so the order the data arrives in does not matter.
    ``init_posterior`` warm-starts from a previous fit (otherwise one E-step from
    the priors' means starts it). Converged when no precision or the class prior
    moves by more than ``tol`` in an iteration.
    """
    items = np.asarray(items, dtype=np.int64)
    sources = np.asarray(sources, dtype=np.int64)
    votes = np.asarray(votes, dtype=np.int64)
    weights = np.asarray(weights, dtype=np.float64)
    record = weights if record_weights is None else np.asarray(record_weights, dtype=np.float64)
    if not (len(items) == len(sources) == len(votes) == len(weights) == len(record)):
        raise ValueError("observation arrays differ in length")
    gold_items = np.asarray(gold_items if gold_items is not None else [], dtype=np.int64)
    gold_values = np.asarray(gold_values if gold_values is not None else [], dtype=np.float64)

    cell = sources * 2 + votes  # (source, vote) cell of each observation
    is_spam = votes == SPAM
    mass = np.bincount(cell, weights=weights, minlength=2 * n_sources).reshape(n_sources, 2)
    spam_mass, legit_mass = mass[:, 1].copy(), mass[:, 0].copy()
    judged = np.bincount(cell, weights=record, minlength=2 * n_sources).reshape(n_sources, 2)
    spam_judged, legit_judged = judged[:, 1].copy(), judged[:, 0].copy()
    lo, hi = base_bounds

    spam_precision = spam_prior_a / (spam_prior_a + spam_prior_b)
    legit_precision = legit_prior_a / (legit_prior_a + legit_prior_b)
    pi = class_prior.mean

    def e_step(sp: np.ndarray, lp: np.ndarray, prior: float) -> np.ndarray:
        base = float(_logit(np.clip(prior, lo, hi)))
        table = llr_table(sp, lp, base).reshape(-1)
        logits = np.bincount(items, weights=weights * table[cell], minlength=n_items) + base
        posterior = _sigmoid(logits)
        if len(gold_items):
            posterior[gold_items] = gold_values
        return posterior

    if init_posterior is not None and len(init_posterior) == n_items:
        posterior = np.array(init_posterior, dtype=np.float64)
        if len(gold_items):
            posterior[gold_items] = gold_values
    else:
        posterior = e_step(spam_precision, legit_precision, pi)

    converged = False
    iteration = 0
    for iteration in range(1, max_iter + 1):
        t = posterior[items]
        right = np.where(is_spam, t, 1.0 - t) * record
        hits = np.bincount(cell, weights=right, minlength=2 * n_sources).reshape(n_sources, 2)
        new_sp = (hits[:, 1] + spam_prior_a) / (spam_judged + spam_prior_a + spam_prior_b)
        new_lp = (hits[:, 0] + legit_prior_a) / (legit_judged + legit_prior_a + legit_prior_b)
        new_pi = (float(posterior.sum()) + class_prior.a) / (n_items + class_prior.strength)
        delta = max(
            float(np.max(np.abs(new_sp - spam_precision), initial=0.0)),
            float(np.max(np.abs(new_lp - legit_precision), initial=0.0)),
            abs(new_pi - pi),
        )
        spam_precision, legit_precision, pi = new_sp, new_lp, new_pi
        posterior = e_step(spam_precision, legit_precision, pi)
        if delta < tol:
            converged = True
            break

    return EMResult(
        posterior=posterior,
        spam_precision=spam_precision,
        legit_precision=legit_precision,
        spam_mass=spam_mass,
        legit_mass=legit_mass,
        class_prior=float(pi),
        iterations=iteration,
        converged=converged,
    )


def _logit(p: np.ndarray | float) -> np.ndarray:
    p = np.clip(p, _EPS, 1.0 - _EPS)
    return np.log(p) - np.log1p(-p)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))
