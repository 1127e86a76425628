"""The verdict of a number nobody has reported is reconciled once per trust
snapshot (or configuration) and copied: every copy must be exactly what
reconciling that number's empty evidence at that moment gives."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from numrep.core.model import Evidence, Verdict
from numrep.core.reconcile import RoleWeightedReconciler
from numrep.trust import TrustModel, TrustReconciler

from trust_testkit import NOW, ROLES, history

numbers = st.from_regex(r"\+1[2-9]\d{2}[2-9]\d{6}", fullmatch=True)
moments = st.floats(-1e6, 1e7).map(lambda seconds: NOW + timedelta(seconds=seconds))
asks = st.lists(st.tuples(numbers, moments), min_size=1, max_size=6)


def reconciled(reconciler: object, number: str, now) -> Verdict:
    return reconciler.reconcile(Evidence(number), now, previous_version=-1)  # type: ignore[attr-defined]


def engine() -> TrustReconciler:
    return TrustReconciler(ROLES, TrustModel(ROLES))


def _refitted() -> TrustModel:
    model = TrustModel(ROLES)
    labels, flags, _ = history()
    model.refit(labels, flags=flags, now=NOW)
    return model


FITTED = _refitted()  # every participant's silence counts on an unreported number


def fitted_engine() -> TrustReconciler:
    return TrustReconciler(ROLES, FITTED)


def v1() -> RoleWeightedReconciler:
    return RoleWeightedReconciler(lambda _: None)


@settings(max_examples=60, deadline=None)
@given(asks, st.sampled_from([engine, fitted_engine, v1]))
def test_each_unreported_verdict_is_what_reconciling_no_evidence_gives(calls, make) -> None:
    reconciler = make()
    for number, now in calls:
        assert reconciler.unreported(number, now) == reconciled(reconciler, number, now)


def test_after_a_refit_the_unreported_verdict_rests_on_the_new_snapshot() -> None:
    model = TrustModel(ROLES)
    reconciler = TrustReconciler(ROLES, model)
    before = reconciler.unreported("+12025550143", NOW)
    labels, flags, _ = history()

    model.refit(labels, flags=flags, now=NOW)
    after = reconciler.unreported("+12025550177", NOW + timedelta(minutes=1))

    assert after == reconciled(reconciler, "+12025550177", NOW + timedelta(minutes=1))
    assert (before.trust_epoch, after.trust_epoch) == (0, model.epoch) and model.epoch > 0
    assert after.explanation != before.explanation


def test_a_copy_does_not_change_the_verdicts_handed_out_before_it() -> None:
    reconciler = engine()
    first = reconciler.unreported("+12025550143", NOW)
    kept = (first.number, first.computed_at, first.expires_at)

    reconciler.unreported("+13105550100", NOW + timedelta(hours=2))

    assert (first.number, first.computed_at, first.expires_at) == kept


def test_a_changed_configuration_is_used_at_once() -> None:
    reconciler = engine()
    reconciler.unreported("+12025550143", NOW)

    reconciler.config = replace(reconciler.config, verdict_ttl=timedelta(hours=1))
    after = reconciler.unreported("+12025550177", NOW)

    assert after == reconciled(reconciler, "+12025550177", NOW)
    assert after.expires_at == NOW + timedelta(hours=1)


def test_an_exchange_whose_reconciler_predates_unreported_reconciles_the_empty_evidence(tmp_path) -> None:
    from numrep.core.pseudonym import Pseudonymizer
    from numrep.exchange import Exchange
    from numrep.store.sqlite import SqliteStore

    class OnlyReconcile:
        def __init__(self) -> None:
            self.inner = v1()

        def reconcile(self, evidence: Evidence, now, previous_version: int = 0) -> Verdict:
            return self.inner.reconcile(evidence, now, previous_version)

    reconciler = OnlyReconcile()
    exchange = Exchange(SqliteStore(tmp_path / "db.sqlite3"), Pseudonymizer(b"0" * 32), clock=lambda: NOW, reconciler=reconciler)

    assert exchange.lookup("+12025550143") == reconciled(reconciler.inner, "+12025550143", NOW)
