"""risk_adjustment: verified A lowers risk a little, failures raise it, spoofing most."""

from __future__ import annotations

import pytest

from numrep.shaken import (
    FAILURE_REASONS,
    INTERCEPT_REASONS,
    RISK_ADJUSTMENTS,
    VERIFIED_REASONS,
    ShakenResult,
    adjust_probability,
    risk_adjustment,
)


def result(reason: str) -> ShakenResult:
    return ShakenResult(verified=reason.startswith("verified_"), reason=reason)


def test_every_reason_has_a_documented_adjustment() -> None:
    assert set(RISK_ADJUSTMENTS) == set(FAILURE_REASONS) | set(VERIFIED_REASONS)


def test_verified_a_lowers_risk_a_little() -> None:
    assert -1.0 < risk_adjustment(result("verified_a")) < 0
    assert 0.1 < adjust_probability(0.2, result("verified_a")) < 0.2


def test_b_and_c_are_neutral_ish() -> None:
    for reason in ("verified_b", "verified_c"):
        assert abs(risk_adjustment(result(reason))) <= 0.25


@pytest.mark.parametrize("reason", FAILURE_REASONS)
def test_every_failure_raises_risk(reason: str) -> None:
    assert risk_adjustment(result(reason)) > 0
    assert risk_adjustment(result(reason)) > risk_adjustment(result("verified_b"))


def test_spoofing_signals_weigh_most() -> None:
    strongest = {r for r, v in RISK_ADJUSTMENTS.items() if v == max(RISK_ADJUSTMENTS.values())}
    assert strongest == {"bad_signature", "number_mismatch"}
    assert INTERCEPT_REASONS == {"bad_signature", "number_mismatch", "untrusted_certificate"}


@pytest.mark.parametrize("reason", sorted(INTERCEPT_REASONS))
def test_intercept_reasons_reach_warn_from_the_prior(reason: str) -> None:
    assert adjust_probability(0.2, result(reason)) >= 0.5  # default ReconcileConfig: prior 0.2, WARN at 0.5


def test_weaker_failures_alone_do_not_warn() -> None:
    for reason in set(FAILURE_REASONS) - INTERCEPT_REASONS:
        assert adjust_probability(0.2, result(reason)) < 0.5


def test_no_passport_changes_nothing() -> None:
    assert risk_adjustment(None) == 0.0
    assert adjust_probability(0.37, None) == pytest.approx(0.37)


def test_unknown_reason_counts_as_a_failure() -> None:
    assert risk_adjustment(ShakenResult(verified=False, reason="something_new")) > 0


def test_probability_stays_inside_zero_and_one() -> None:
    assert 0 < adjust_probability(0.0, result("verified_a")) < 1e-6
    assert adjust_probability(1.0, result("number_mismatch")) == pytest.approx(1.0)
