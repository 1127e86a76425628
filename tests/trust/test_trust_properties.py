"""Properties of the trust engine, checked with hypothesis over generated
evidence, with the role priors (epoch 0) and with a fitted model."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from numrep.core.categories import CATEGORIES
from numrep.core.model import Action, Evidence, Label
from numrep.trust import TrustModel, TrustReconciler

from trust_testkit import ALL_CODES, NOW, NUMBER, ROLES, SPAM_CODES, flag, history, label

EVIDENCE = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
ISSUERS = sorted(ROLES) + ["unregistered"]  # an issuer the registry does not know counts for nothing
APPS = ["app-a", "app-b"]


def _fitted() -> TrustModel:
    labels, flags, _ = history()
    model = TrustModel(ROLES)
    model.refit(labels, flags=flags, now=NOW)
    return model


MODELS = {"priors": TrustModel(ROLES), "fitted": _fitted()}


@pytest.fixture(params=sorted(MODELS))
def engine(request) -> TrustReconciler:
    return TrustReconciler(ROLES, MODELS[request.param])


confidences = st.floats(0.0, 1.0, allow_nan=False)
ages = st.floats(0.0, 300.0)
label_specs = st.tuples(st.sampled_from(ISSUERS), st.sampled_from(ALL_CODES), confidences, ages, st.floats(1.0, 400.0))
# reporters: some with a record in the fitted model (u0..u299 of app-a), some new
flag_specs = st.tuples(st.sampled_from(APPS), st.sampled_from([f"u{i}" for i in range(0, 300, 7)] + ["new-1", "new-2", "new-3"]),
                       st.sampled_from(ALL_CODES), st.floats(0.0, 200.0))


@st.composite
def evidence(draw, min_labels: int = 0):
    """(labels, flags) on ``NUMBER``."""
    specs = draw(st.lists(label_specs, min_size=min_labels, max_size=8))
    labels = tuple(label(i, *spec) for i, spec in enumerate(specs))
    flags = tuple(flag(app, reporter, code, age) for app, reporter, code, age in draw(st.lists(flag_specs, max_size=10)))
    return labels, flags


def verdict(engine: TrustReconciler, labels, flags):
    return engine.reconcile(Evidence(NUMBER, tuple(labels)), NOW, flags=list(flags))


def decision(v):
    return v.action, v.spam_probability, v.confidence


@EVIDENCE
@given(st.data())
def test_the_order_of_labels_and_flags_does_not_change_the_verdict(engine, data):
    labels, flags = data.draw(evidence())
    shuffled_labels = data.draw(st.permutations(labels))
    shuffled_flags = data.draw(st.permutations(flags))
    assert verdict(engine, shuffled_labels, shuffled_flags) == verdict(engine, labels, flags)


@EVIDENCE
@given(st.data())
def test_a_duplicate_label_or_flag_changes_nothing(engine, data):
    labels, flags = data.draw(evidence(min_labels=1))
    base = verdict(engine, labels, flags)
    again = data.draw(st.sampled_from(labels))
    assert verdict(engine, labels + (again,), flags) == base
    if flags:
        assert verdict(engine, labels, flags + (data.draw(st.sampled_from(flags)),)) == base


@EVIDENCE
@given(st.data())
def test_repeating_a_claim_under_a_new_id_changes_no_decision(engine, data):
    labels, flags = data.draw(evidence(min_labels=1))
    original = data.draw(st.sampled_from(labels))
    repeat = Label(f"{original.issuer}/again", original.issuer, NUMBER, original.category, original.confidence,
                   original.issued_at, original.expires_at, "token-again")
    assert decision(verdict(engine, labels + (repeat,), flags)) == decision(verdict(engine, labels, flags))


@EVIDENCE
@given(evidence(), st.sampled_from(sorted(ROLES)), st.sampled_from(SPAM_CODES), confidences, ages)
def test_a_spam_label_from_a_trusted_participant_never_lowers_spam_probability(engine, base, issuer, code, confidence, age):
    labels, flags = base
    added = label(99, issuer, code, confidence, age)
    assert engine.model.snapshot.reliability(issuer, ROLES[issuer], engine.config).spam_llr >= 0
    before = verdict(engine, labels, flags)
    after = verdict(engine, labels + (added,), flags)
    assert after.spam_probability >= before.spam_probability


@EVIDENCE
@given(st.data(), st.sampled_from(sorted(ROLES)))
def test_one_participant_alone_never_blocks(engine, data, participant):
    # everything one participant can say: any labels, and if it is an app any of its users' flags,
    # its users with a record as well as a swarm of new ones
    specs = data.draw(st.lists(st.tuples(st.sampled_from(ALL_CODES), confidences, ages), min_size=1, max_size=10))
    labels = tuple(label(i, participant, *spec) for i, spec in enumerate(specs))
    flags: tuple = ()
    if participant.startswith("app-"):
        known = data.draw(st.lists(st.integers(0, 299), max_size=40, unique=True))
        flags = tuple(flag(participant, f"u{r}", "fraud", 1.0) for r in known)
        flags += tuple(flag(participant, f"swarm-{i}", "fraud", 0.5) for i in range(data.draw(st.integers(0, 1000))))
    assert verdict(engine, labels, flags).action is not Action.BLOCK


@EVIDENCE
@given(st.data(), st.sampled_from(sorted(ROLES)))
def test_one_participant_cannot_turn_allow_into_block(engine, data, participant):
    others = [p for p in ISSUERS if p != participant]
    labels, flags = data.draw(evidence())
    labels = tuple(lb for lb in labels if lb.issuer in others)
    flags = tuple(f for f in flags if f.app_id != participant)
    before = verdict(engine, labels, flags)
    assume(before.action in (Action.ALLOW, Action.UNKNOWN))
    specs = data.draw(st.lists(st.tuples(st.sampled_from(SPAM_CODES), confidences, ages), min_size=1, max_size=5))
    added = tuple(label(50 + i, participant, *spec) for i, spec in enumerate(specs))
    extra = tuple(flag(participant, f"u{r}", "fraud", 1.0) for r in range(0, 300, 3)) if participant.startswith("app-") else ()
    assert verdict(engine, labels + added, flags + extra).action is not Action.BLOCK


@EVIDENCE
@given(evidence())
def test_a_verdict_is_well_formed(engine, base):
    labels, flags = base
    v = engine.reconcile(Evidence(NUMBER, tuple(labels)), NOW, previous_version=4, flags=list(flags))
    assert 0.0 <= v.spam_probability <= 1.0 and 0.0 <= v.confidence <= 1.0
    assert v.version == 5 and v.expires_at > NOW
    assert v.category == "" or v.category in CATEGORIES
    assert f"trust epoch {engine.model.epoch}" in v.explanation
    if v.action is Action.UNKNOWN:
        assert v.category == "" and v.spam_probability == pytest.approx(engine.unreported_probability(), abs=1e-6)
    if v.action is Action.BLOCK:
        assert v.spam_probability >= 0.9 and v.confidence >= 0.6
        assert len({c.participant_id for c in v.contributions if c.weight > 0 and CATEGORIES[c.category].is_spam}) >= 2
    if v.action in (Action.WARN, Action.BLOCK):
        assert CATEGORIES[v.category].is_spam
    assert [c.weight for c in v.contributions] == sorted((c.weight for c in v.contributions), reverse=True)


@settings(max_examples=4, deadline=None)
@given(st.randoms(use_true_random=False))
def test_a_refit_on_the_same_data_is_deterministic(rnd: random.Random):
    labels, flags, _ = history(seed=4, n_numbers=200)
    first = TrustModel(ROLES).refit(labels, flags=flags, now=NOW)
    shuffled_labels, shuffled_flags = labels[:], flags[:]
    rnd.shuffle(shuffled_labels)
    rnd.shuffle(shuffled_flags)
    second = TrustModel(ROLES).refit(shuffled_labels, flags=shuffled_flags, now=NOW)
    assert second == first  # every learned number, bit for bit
    later = TrustModel(ROLES).refit(labels, flags=flags, now=NOW + timedelta(days=1))
    assert later.fitted_at != first.fitted_at  # (and the fit does depend on when it is)
