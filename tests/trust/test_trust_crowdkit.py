"""Agreement with crowd-kit's reference DawidSkene on a crowd with known truth.

crowd-kit is a test-only dependency; the test is skipped only when it cannot be
imported. (crowd-kit 1.4.2 with pandas 3 warns about a deprecated pandas
keyword; the warnings are silenced here, not errors.)
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from numrep.core.model import Evidence, Role
from numrep.trust import TrustModel, TrustReconciler
from numrep.trust.dawid_skene import BetaPrior, fit_em

from trust_testkit import NOW, crowd, label

WORKERS = 12
ITEMS = 1500


@pytest.fixture(scope="module")
def reference():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        aggregation = pytest.importorskip("crowdkit.aggregation")
        import pandas as pd
    rng = np.random.default_rng(0)
    sensitivity = rng.uniform(0.55, 0.95, WORKERS)
    specificity = rng.uniform(0.55, 0.95, WORKERS)
    truth, items, workers, votes = crowd(rng, ITEMS, list(sensitivity), list(specificity), per_item=5)
    frame = pd.DataFrame({"task": items, "worker": workers, "label": votes})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        predicted = aggregation.DawidSkene(n_iter=200, tol=1e-6).fit_predict(frame).sort_index().to_numpy()
    return truth, items, workers, votes, predicted


@pytest.mark.filterwarnings("ignore")
def test_the_dawid_skene_core_agrees_with_crowdkit(reference):
    truth, items, workers, votes, theirs = reference
    prior = BetaPrior(0.7, 2.0)
    a, b = np.full(WORKERS, prior.a), np.full(WORKERS, prior.b)
    # who labels what is assigned at random in this crowd: silence is no evidence here
    fit = fit_em(items, workers, votes, np.ones(len(items)), ITEMS, WORKERS, a, b, a, b,
                 class_prior=BetaPrior(0.5, 2.0), max_iter=1000, silent_sources=np.zeros(WORKERS, dtype=bool))
    ours = fit.posterior > 0.5
    accuracy, reference_accuracy = (ours == truth).mean(), (theirs == truth).mean()
    assert abs(accuracy - reference_accuracy) <= 0.005
    assert (ours == theirs).mean() >= 0.99  # the same answers, item by item


@pytest.mark.filterwarnings("ignore")
def test_the_whole_engine_agrees_with_crowdkit(reference):
    truth, items, workers, votes, theirs = reference
    roles = {f"app-{w:02d}": Role.APP_VENDOR for w in range(WORKERS)}
    labels = [label(i, f"app-{w:02d}", "fraud" if v else "legitimate", number=f"+1555{it:07d}")
              for i, (it, w, v) in enumerate(zip(items.tolist(), workers.tolist(), votes.tolist()))]
    model = TrustModel(roles)
    model.refit(labels, now=NOW)
    engine = TrustReconciler(roles, model)
    by_number: dict[str, list] = {}
    for lb in labels:
        by_number.setdefault(lb.number, []).append(lb)
    ours = np.array([engine.reconcile(Evidence(n, tuple(by_number[n])), NOW).spam_probability >= 0.5 for n in sorted(by_number)])
    assert abs((ours == truth).mean() - (theirs == truth).mean()) <= 0.005
