"""TrustReconciler and TrustModel: explanations, epochs, bounded influence, end
users' flags and sybil floods, reassignment, copying, drift, persistence, and
the engine as a drop-in reconciler of the exchange."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta

import pytest

from numrep.core.model import Action, Evidence, FlagTally, Participant, Role
from numrep.trust import REASSIGNED_CODE, TrustConfig, TrustModel, TrustReconciler, TrustSnapshot, filter_reassigned

from trust_testkit import NOW, NUMBER, ROLES, flag, history, label


@pytest.fixture(scope="module")
def fitted() -> TrustModel:
    labels, flags, _ = history()
    model = TrustModel(ROLES)
    model.refit(labels, flags=flags, now=NOW)
    return model


def test_contributions_explain_in_words_what_counted_and_why(fitted):
    engine = TrustReconciler(ROLES, fitted)
    v = engine.reconcile(Evidence(NUMBER, (label(1, "carrier-a", "fraud"), label(2, "app-b", "fraud.one_ring"),
                                           label(3, "carrier-b", "fraud.impersonation", age_days=3))), NOW)
    words = {c.participant_id: c.explanation for c in v.contributions}
    precision = fitted.snapshot.sources["carrier-a"].spam_precision
    assert words["carrier-a"].startswith(f"carrier-a (carrier) labelled it fraud or crime; its spam labels are right {precision:.0%} of the time (trust epoch 1); counted ")
    assert "no better than the base rate; counted 0.00" in words["app-b"]  # the liar, found out
    assert v.action is Action.BLOCK and v.category.startswith("fraud")
    assert v.explanation.startswith("Block: ") and "trust epoch 1" in v.explanation and "carrier-a, carrier-b" in v.explanation
    assert "silence counted" in v.explanation


def test_before_any_refit_participants_count_as_their_role_is_expected_to():
    engine = TrustReconciler(ROLES)
    v = engine.reconcile(Evidence(NUMBER, (label(1, "carrier-a", "marketing"),)), NOW)
    assert v.action is Action.WARN  # one carrier alone: at most WARN
    assert "expected to be right 95% of the time (its role's prior; not yet learned)" in v.contributions[0].explanation
    assert "capped: one participant alone can at most warn" in v.contributions[0].explanation
    assert "trust epoch 0" in v.explanation


def test_a_refit_takes_effect_on_the_next_verdict():
    labels, flags, _ = history()
    model = TrustModel(ROLES)
    engine = TrustReconciler(ROLES, model)  # made once, as the exchange would
    evidence = Evidence(NUMBER, (label(1, "app-b", "fraud"), label(2, "handset-co", "fraud")))
    before = engine.reconcile(evidence, NOW)
    model.refit(labels, flags=flags, now=NOW)
    after = engine.reconcile(evidence, NOW)
    assert model.epoch == 1 and "trust epoch 0" in before.explanation and "trust epoch 1" in after.explanation
    app_b_before = next(c for c in before.contributions if c.participant_id == "app-b")
    app_b_after = next(c for c in after.contributions if c.participant_id == "app-b")
    assert app_b_before.weight > 0 and app_b_after.weight == 0  # it learned app-b lies
    assert after.spam_probability < before.spam_probability


def test_one_trusted_participant_reaches_warn_two_reach_block():
    engine = TrustReconciler(ROLES)
    one = engine.reconcile(Evidence(NUMBER, (label(1, "carrier-a", "fraud"), label(2, "carrier-a", "fraud.one_ring"))), NOW)
    two = engine.reconcile(Evidence(NUMBER, (label(1, "carrier-a", "fraud"), label(2, "carrier-b", "fraud"))), NOW)
    assert one.action is Action.WARN and one.spam_probability <= TrustConfig().single_source_max
    assert two.action is Action.BLOCK


def test_the_regulator_alone_warns_unless_its_role_is_exempt():
    evidence = Evidence(NUMBER, (label(1, "ftc", "fraud"),))
    assert TrustReconciler(ROLES).reconcile(evidence, NOW).action is Action.WARN
    exempt = TrustConfig(exempt_roles=frozenset({Role.REGULATOR}))
    assert TrustReconciler(ROLES, TrustModel(ROLES, exempt)).reconcile(evidence, NOW).action is Action.BLOCK


@pytest.mark.parametrize("which", ["priors", "fitted", "refit with the flood"])
def test_a_sybil_flood_of_new_reporters_does_not_move_a_legitimate_number(fitted, which):
    swarm = [flag("app-a", f"sybil-{i}", "fraud", age_days=0.5) for i in range(1000)]
    honest = [label(1, "carrier-a", "legitimate", age_days=30)]
    if which == "priors":
        model = TrustModel(ROLES)
    elif which == "fitted":
        model = fitted
    else:
        labels, flags, _ = history()
        model = TrustModel(ROLES)
        model.refit(labels + honest, flags=flags + swarm, now=NOW)
    engine = TrustReconciler(ROLES, model)
    quiet = engine.reconcile(Evidence(NUMBER, tuple(honest)), NOW, flags=[])
    flooded = engine.reconcile(Evidence(NUMBER, tuple(honest)), NOW, flags=swarm)
    assert flooded.action is quiet.action is Action.ALLOW
    assert flooded.spam_probability - quiet.spam_probability < 0.05
    alone = engine.reconcile(Evidence(NUMBER), NOW, flags=swarm)  # nothing else known about the number
    assert alone.action is Action.ALLOW and alone.spam_probability < 0.5
    swarm_words = next(c.explanation for c in flooded.contributions if c.kind == "flags")
    assert "1000 user(s) of app-a flagged it fraud or crime (0 with a confirmed record, 1000 new)" in swarm_words
    # with one more participant's (false) label on top, still no BLOCK
    framed = engine.reconcile(Evidence(NUMBER, (label(2, "handset-co", "fraud"),)), NOW, flags=swarm)
    assert framed.action is not Action.BLOCK


def test_a_tally_without_reporters_counts_them_all_as_new(fitted):
    engine = TrustReconciler(ROLES, fitted)
    tally = FlagTally("app-a", (("fraud", 1000),), NOW - timedelta(hours=1))
    v = engine.reconcile(Evidence(NUMBER, (), (tally,)), NOW)
    assert v.action is Action.ALLOW and v.flag_count == 1000
    asked = []
    with_provider = TrustReconciler(ROLES, fitted, flags_for=lambda n: asked.append(n) or [flag("app-a", "u1", "fraud")])
    with_provider.reconcile(Evidence(NUMBER, (), (tally,)), NOW)
    assert asked == [NUMBER]  # given a provider, the engine reads the individual flags


def test_reporters_with_a_confirmed_record_count_more_than_new_ones(fitted):
    engine = TrustReconciler(ROLES, fitted)
    good = sorted((k for k, (a, d) in fitted.snapshot.reporters.items() if k[0] == "app-a" and a >= 3 and d == 0))[:5]
    assert len(good) == 5
    known = engine.reconcile(Evidence(NUMBER), NOW, flags=[flag(app, rep, "fraud") for app, rep in good])
    new = engine.reconcile(Evidence(NUMBER), NOW, flags=[flag("app-a", f"new-{i}", "fraud") for i in range(5)])
    assert known.spam_probability > new.spam_probability
    assert "5 with a confirmed record, 0 new" in known.contributions[0].explanation


def test_evidence_from_before_a_reassignment_is_ignored():
    engine = TrustReconciler(ROLES)
    old = (label(1, "carrier-a", "fraud", age_days=40), label(2, "carrier-b", "fraud", age_days=35))
    flags = [flag("app-a", "u1", "fraud", age_days=38)]
    assert engine.reconcile(Evidence(NUMBER, old), NOW, flags=flags).action is Action.BLOCK
    cut = NOW - timedelta(days=30)
    assert engine.reconcile(Evidence(NUMBER, old), NOW, flags=flags, reassigned_at=cut).action is Action.UNKNOWN
    provided = TrustReconciler(ROLES, reassigned_at=lambda n: cut if n == NUMBER else None)
    assert provided.reconcile(Evidence(NUMBER, old), NOW).action is Action.UNKNOWN
    # a reassignment marker label from a carrier does the same (once the taxonomy has the code)
    marker = label(3, "carrier-c", REASSIGNED_CODE, age_days=30)
    assert engine.reconcile(Evidence(NUMBER, old + (marker,)), NOW).action is Action.UNKNOWN
    newer = label(4, "app-b", "marketing", age_days=2)
    after = engine.reconcile(Evidence(NUMBER, old + (marker, newer)), NOW)
    assert [c.participant_id for c in after.contributions] == ["app-b"]
    # ... but not from an app
    from_app = label(5, "app-a", REASSIGNED_CODE, age_days=30)
    assert engine.reconcile(Evidence(NUMBER, old + (from_app,)), NOW).action is Action.BLOCK
    filtered = filter_reassigned(Evidence(NUMBER, old, (FlagTally("app-a", (("fraud", 3),), NOW - timedelta(days=31)),)), cut)
    assert filtered.labels == () and filtered.flags == ()


def test_a_refit_ignores_labels_from_before_a_reassignment():
    labels, flags, _ = history()
    numbers = sorted({lb.number for lb in labels})[:20]
    whole = TrustModel(ROLES).refit(labels, flags=flags, now=NOW)
    cut = TrustModel(ROLES).refit(labels, flags=flags, now=NOW, reassigned={n: NOW for n in numbers})
    assert cut.labels < whole.labels and cut.flags <= whole.flags


def test_a_participant_that_only_repeats_others_counts_little():
    labels, flags, _ = history()
    copies = [replace(lb, id=f"copycat/{i}", issuer="copycat", issued_at=lb.issued_at + timedelta(days=2))
              for i, lb in enumerate(labels) if lb.issuer in ("carrier-a", "handset-co")]
    roles = {**ROLES, "copycat": Role.HANDSET_VENDOR}
    model = TrustModel(roles)
    snap = model.refit(labels + copies, flags=flags, now=NOW)
    assert snap.sources["copycat"].independence < 0.2
    assert min(snap.sources[p].independence for p in ROLES if p != "ftc") == 1.0
    v = TrustReconciler(roles, model).reconcile(Evidence(NUMBER, (label(1, "copycat", "fraud"), label(2, "carrier-a", "fraud", age_days=3))), NOW)
    words = next(c.explanation for c in v.contributions if c.participant_id == "copycat")
    assert "it mostly repeats what others reported first" in words


def test_a_participant_whose_quality_drops_is_trusted_less_after_a_refit():
    labels, flags, truth = history()
    later = NOW + timedelta(days=120)
    # months after its honest record, carrier-c starts labelling legitimate numbers fraud
    fresh = [n for n in sorted(truth) if not truth[n]][-120:]
    lies = [label(10_000 + i, "carrier-c", "fraud", age_days=(i % 20) + 0.5, number=n, now=later) for i, n in enumerate(fresh)]
    lies += [label(20_000 + i, "carrier-a", "legitimate", age_days=(i % 20) + 1.5, number=n, now=later) for i, n in enumerate(fresh[::2])]
    before = TrustModel(ROLES).refit(labels, flags=flags, now=later).sources["carrier-c"]
    after = TrustModel(ROLES).refit(labels + lies, flags=flags, now=later).sources["carrier-c"]
    assert after.spam_precision < before.spam_precision - 0.2
    forgetful = TrustConfig(fit_half_life=timedelta(days=10_000))
    slow = TrustModel(ROLES, forgetful).refit(labels + lies, flags=flags, now=later).sources["carrier-c"]
    assert after.spam_precision < slow.spam_precision  # its recent record weighs more than its old one


def test_unknown_numbers_and_the_exchange_unknown_verdict(fitted):
    engine = TrustReconciler(ROLES, fitted)
    v = engine.reconcile(Evidence(NUMBER), NOW, previous_version=-1)
    assert v.action is Action.UNKNOWN and v.version == 0 and v.category == "" and v.confidence == 0
    assert v.spam_probability == pytest.approx(engine.unreported_probability(), abs=1e-6)
    assert v.spam_probability < fitted.snapshot.base_probability  # nobody reported it: everyone's silence counts
    assert v.expires_at == NOW + engine.config.verdict_ttl


def test_unregistered_issuers_count_for_nothing(fitted):
    engine = TrustReconciler(ROLES, fitted)
    v = engine.reconcile(Evidence(NUMBER, (label(1, "stranger", "fraud"),)), NOW)
    assert v.action is Action.UNKNOWN
    assert "stranger is not a registered participant; counted 0.00" in v.contributions[0].explanation


def test_a_snapshot_survives_json_and_a_model_can_load_it(fitted):
    snap = fitted.snapshot
    again = TrustSnapshot.from_json(snap.to_json())
    assert again == snap
    model = TrustModel(ROLES)
    model.load(again)
    evidence = Evidence(NUMBER, (label(1, "carrier-a", "fraud"), label(2, "app-a", "fraud")))
    assert TrustReconciler(ROLES, model).reconcile(evidence, NOW) == TrustReconciler(ROLES, fitted).reconcile(evidence, NOW)
    assert json.loads(snap.to_json())["epoch"] == 1


def test_a_registry_callable_works_as_the_exchange_passes_it(fitted):
    registry = {pid: Participant(pid, role) for pid, role in ROLES.items()}
    engine = TrustReconciler(registry.get, fitted)
    by_mapping = TrustReconciler(ROLES, fitted)
    evidence = Evidence(NUMBER, (label(1, "carrier-a", "fraud"), label(2, "app-a", "marketing")))
    assert engine.reconcile(evidence, NOW) == by_mapping.reconcile(evidence, NOW)


def test_the_exchange_runs_on_the_trust_engine(tmp_path):
    from numrep.core.pseudonym import Pseudonymizer
    from numrep.exchange import Exchange, FlagInput
    from numrep.signing.keys import generate_identity
    from numrep.signing.labels import sign_label
    from numrep.store.sqlite import SqliteStore

    exchange = Exchange(SqliteStore(tmp_path / "db.sqlite3"), Pseudonymizer(b"t" * 32))
    model = TrustModel(exchange.participant)
    exchange.reconciler = TrustReconciler(exchange.participant, model)
    ids = {}
    for pid, role in [("carrier-a", Role.CARRIER), ("carrier-b", Role.CARRIER), ("app-a", Role.APP_VENDOR)]:
        ids[pid] = generate_identity(pid, role)
        exchange.register_participant(pid, role, "", [json.dumps(ids[pid].public_jwk())])
    number = "+12025550143"
    assert exchange.lookup(number).action is Action.UNKNOWN
    outcome = exchange.publish(exchange.participant("carrier-a"), [sign_label(ids["carrier-a"], number, "fraud", 0.9)])
    assert outcome[0].status == "accepted"
    warned = exchange.lookup(number)
    assert warned.action is Action.WARN and "trust epoch 0" in warned.explanation
    exchange.publish(exchange.participant("carrier-b"), [sign_label(ids["carrier-b"], number, "fraud.one_ring", 0.9)])
    exchange.submit_flags(exchange.participant("app-a"), "b1", [FlagInput(number, "fraud", f"user-{i}", None) for i in range(50)])
    blocked = exchange.lookup(number)
    assert blocked.action is Action.BLOCK and blocked.category.startswith("fraud")
    # a refit from what the store holds; the next recomputation uses the new epoch
    model.refit(exchange.store.evidence(number).labels)
    exchange.publish(exchange.participant("carrier-a"), [sign_label(ids["carrier-a"], number, "fraud", 1.0)])
    assert "trust epoch 1" in exchange.lookup(number).explanation
