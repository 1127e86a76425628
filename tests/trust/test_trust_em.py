"""Dawid-Skene EM on small cases: the arithmetic by hand, known confusion
matrices recovered, gold anchoring, determinism, convergence."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from numrep.core.model import Role
from numrep.trust import TrustConfig, TrustModel
from numrep.trust.dawid_skene import LEGIT, SPAM, BetaPrior, fit_em, item_logits, llr_table

from trust_testkit import NOW, ROLES, crowd, history


def _flat(n: int, mean: float = 0.7, strength: float = 2.0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    prior = BetaPrior(mean, strength)
    return (np.full(n, prior.a), np.full(n, prior.b), np.full(n, prior.a), np.full(n, prior.b))


def test_llr_table_clips_so_no_vote_counts_against_what_it_says():
    table = llr_table(np.array([2.0, -1.0]), np.array([-1.5, 0.7]), np.array([-0.3, 0.4]))
    # source 0: as given; source 1: an anti-informative spam label counts 0, its
    # silence never argues for spam, and its legitimate label counts at most as silence
    assert table[0].tolist() == [-1.5, 2.0, -0.3]
    assert table[1].tolist() == [0.0, 0.0, 0.0]


def test_item_logits_by_hand():
    # two sources; item 0: source 0 says spam (weight 1), source 1 silent;
    # item 1: source 1 says legitimate with weight 0.5, source 0 silent
    table = np.array([[-1.0, 2.0, -0.2], [-1.5, 1.0, -0.4]])
    exposure = np.array([1.0, 0.5])
    logits, pairs, contrib = item_logits(
        table, 0.25, np.array([0, 1]), np.array([0, 1]), np.array([SPAM, LEGIT]), np.array([1.0, 0.5]), 2, 2, exposure,
    )
    base = math.log(0.25 / 0.75)
    # item 0: base + silence of both (-0.6) + spam vote 2.0 - source 0's silence taken back (1 x -0.2)
    assert logits[0] == pytest.approx(base - 0.6 + 2.0 + 0.2)
    # item 1: base + 0.5 x silence of both + 0.5 x (-1.5) - source 1's half-silence taken back (0.5 x 0.5 x -0.4)
    assert logits[1] == pytest.approx(base + 0.5 * -0.6 + 0.5 * -1.5 + 0.5 * 0.5 * 0.4)
    assert pairs.tolist() == [0 * 2 + 0, 1 * 2 + 1]
    assert contrib.tolist() == pytest.approx([2.0 + 0.2, -0.75 + 0.1])


def test_three_annotators_agreeing_or_contrary_are_sorted_out():
    # A and B always right, C always wrong, on 40 items: A and B trusted, C counts for nothing
    truth = np.array([i % 3 == 0 for i in range(40)])
    items, sources, votes = [], [], []
    for i, t in enumerate(truth):
        for source, right in ((0, True), (1, True), (2, False)):
            items.append(i)
            sources.append(source)
            votes.append(int(t == right))
    result = fit_em(np.array(items), np.array(sources), np.array(votes), np.ones(len(items)), 40, 3, *_flat(3))
    assert result.converged
    assert ((result.posterior > 0.5) == truth).all()
    assert result.spam_precision[0] > 0.9 and result.spam_precision[1] > 0.9
    assert result.table[2, SPAM] == 0.0 and result.table[2, LEGIT] == 0.0  # the contrarian's votes count for nothing
    assert result.spam_precision[2] < 0.1


def test_em_recovers_known_confusion_matrices_of_three_annotators():
    rng = np.random.default_rng(12)
    sens, spec = [0.9, 0.8, 0.7], [0.95, 0.85, 0.75]
    truth, items, workers, votes = crowd(rng, 4000, sens, spec)
    result = fit_em(items, workers, votes, np.ones(len(items)), 4000, 3, *_flat(3), class_prior=BetaPrior(0.5, 2.0), max_iter=1000)
    assert result.converged
    assert result.class_prior == pytest.approx(truth.mean(), abs=0.02)
    # everyone labels every item, so there is no silence: the coins are the textbook ones
    assert result.sensitivity == pytest.approx(sens, abs=0.03)
    assert result.legit_sensitivity == pytest.approx(spec, abs=0.03)  # P(labels legitimate | legitimate)
    assert result.specificity == pytest.approx(spec, abs=0.03)
    assert ((result.posterior > 0.5) == truth).mean() > 0.92  # (the Bayes rule with the true matrices: 0.93)


def test_gold_anchoring_decides_what_votes_alone_cannot():
    # A and B contradict each other on every item: the votes alone cannot tell who is right
    n = 200
    truth = np.arange(n) % 2 == 0
    items = np.repeat(np.arange(n), 2)
    sources = np.tile([0, 1], n)
    votes = np.stack([truth, ~truth], axis=1).reshape(-1).astype(int)  # A right, B wrong
    priors = _flat(2)
    blind = fit_em(items, sources, votes, np.ones(2 * n), n, 2, *priors)
    assert np.allclose(blind.posterior, blind.posterior[0])  # undecided: every item alike
    gold = np.arange(0, n, 10)  # a tenth confirmed by the regulator
    anchored = fit_em(items, sources, votes, np.ones(2 * n), n, 2, *priors, gold_items=gold, gold_values=truth[gold].astype(float))
    assert anchored.posterior[gold].tolist() == truth[gold].astype(float).tolist()  # fixed during EM
    assert ((anchored.posterior > 0.5) == truth).all()  # and the rest follows the source the gold vindicates
    assert anchored.spam_precision[0] > 0.85 and anchored.spam_precision[1] < 0.15


def test_regulator_labels_are_gold_in_a_refit():
    labels, flags, truth = history()
    model = TrustModel(ROLES)
    snap = model.refit(labels, flags=flags, now=NOW)
    regulated = {lb.number for lb in labels if lb.issuer == "ftc"}
    assert snap.gold == len(regulated) > 0
    without = TrustModel(ROLES).refit(labels, flags=flags, now=NOW, regulator_gold=False)
    assert without.gold == 0
    reported = sorted({lb.number for lb in labels})[:50]
    explicit = TrustModel(ROLES).refit(labels, {n: truth[n] for n in reported}, flags=flags, now=NOW, regulator_gold=False)
    assert explicit.gold == 50
    unknown = TrustModel(ROLES).refit(labels, {"+19999999999": True}, flags=flags, now=NOW, regulator_gold=False)
    assert unknown.gold == 0  # gold about a number nobody reported is no evidence


def test_a_refit_learns_who_to_trust():
    labels, flags, _ = history()
    snap = TrustModel(ROLES).refit(labels, flags=flags, now=NOW)
    assert snap.epoch == 1 and snap.converged
    assert snap.sources["app-b"].spam_llr == 0.0  # the liar's spam labels count for nothing
    for carrier in ("carrier-a", "carrier-b", "carrier-c"):
        rel = snap.sources[carrier]
        assert rel.spam_precision > 0.9 and rel.specificity > 0.98 and rel.sensitivity < 0.5  # precise, modest recall
    assert snap.sources["app-a/flags"].spam_llr > 1.0  # the users' flags, as one learned source
    assert snap.reporters  # reporter reputations


def test_refit_on_the_same_data_in_any_order_gives_the_same_fit():
    labels, flags, _ = history()
    first = TrustModel(ROLES).refit(labels, flags=flags, now=NOW)
    shuffled_labels, shuffled_flags = labels[:], flags[:]
    random.Random(5).shuffle(shuffled_labels)
    random.Random(6).shuffle(shuffled_flags)
    model = TrustModel(ROLES)
    model.refit(labels[:100], now=NOW)  # an earlier epoch must not leak into the next refit
    second = model.refit(iter(shuffled_labels), flags=iter(shuffled_flags), now=NOW)
    assert second.epoch == 2
    assert second.sources == first.sources
    assert second.reporters == first.reporters
    assert (second.class_prior, second.base_probability, second.iterations) == (first.class_prior, first.base_probability, first.iterations)


def test_em_stops_at_max_iter_or_tolerance():
    rng = np.random.default_rng(2)
    _, items, workers, votes = crowd(rng, 500, [0.8, 0.7, 0.6], [0.9, 0.8, 0.7])
    capped = fit_em(items, workers, votes, np.ones(len(items)), 500, 3, *_flat(3), max_iter=2)
    assert capped.iterations == 2 and not capped.converged
    loose = fit_em(items, workers, votes, np.ones(len(items)), 500, 3, *_flat(3), tol=1e-2)
    tight = fit_em(items, workers, votes, np.ones(len(items)), 500, 3, *_flat(3), tol=1e-9, max_iter=1000)
    assert loose.converged and tight.converged and loose.iterations < tight.iterations


def test_a_refit_without_data_keeps_the_priors():
    model = TrustModel(ROLES)
    snap = model.refit([], now=NOW)
    assert snap.epoch == 1 and snap.sources == {} and snap.base_probability == TrustConfig().class_prior.mean


def test_silence_of_a_source_that_reports_much_of_the_spam_counts():
    labels, flags, _ = history()
    snap = TrustModel(ROLES).refit(labels, flags=flags, now=NOW)
    assert snap.sources["carrier-a"].silence_llr < 0  # a carrier that saw it would likely have said so
    assert snap.sources["ftc"].silence_llr == 0.0  # the regulator confirms what it is asked about: its silence says nothing
    assert snap.sources["app-b"].silence_llr == 0.0 or snap.sources["app-b"].silence_llr > -0.05


def test_roles_come_from_a_registry_callable_too():
    from numrep.core.model import Participant

    registry = {pid: Participant(pid, role) for pid, role in ROLES.items()}
    labels, _, _ = history()
    by_callable = TrustModel(registry.get).refit(labels, now=NOW)
    by_mapping = TrustModel(ROLES).refit(labels, now=NOW)
    assert by_callable.sources == by_mapping.sources
    assert by_callable.sources["ftc"].prior == Role.REGULATOR.value
