"""Every knob of the trust engine, fitting and verdicts alike, in one frozen object."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Mapping

from numrep.core.model import Role
from numrep.trust.dawid_skene import ROLE_PRIORS, BetaPrior, SourcePrior
from numrep.trust.reporters import ReporterConfig


@dataclass(frozen=True)
class TrustConfig:
    # --- fitting (TrustModel.refit) ---------------------------------------------------
    priors: Mapping[str, SourcePrior] = field(default_factory=lambda: dict(ROLE_PRIORS))
    class_prior: BetaPrior = BetaPrior(0.2, 10.0)  # P(spam) among reported numbers, before data
    tol: float = 1e-6  # EM stops when no log-likelihood ratio (nor the class prior) moves more than this
    max_iter: int = 200
    fit_half_life: timedelta = timedelta(days=90)  # a source's older votes weigh less in judging it: quality changes show
    silence_delay: timedelta = timedelta(days=7)  # silence counts 1 - exp(-age / this) of a report's age: others need time to report
    reputation_rounds: int = 2  # EM, then reporter reputations, then EM again ...
    # copying: a participant that is almost never among the first to report what
    # it reports (within copy_window of the first report) counts less
    copy_window: timedelta = timedelta(days=1)
    copy_min_votes: int = 30  # fewer votes than this: not judged
    copy_ratio: float = 0.25  # first-report rate below this fraction of the median: discounted in proportion
    reporters: ReporterConfig = field(default_factory=ReporterConfig)

    # --- verdicts (TrustReconciler) --------------------------------------------------------
    base_bounds: tuple[float, float] = (0.02, 0.4)  # the fitted base rate is kept inside these
    label_half_life: timedelta = timedelta(days=180)
    # the others' silence counts from silence_floor to fully: less while the newest spam
    # report is fresh (silence_delay) and as the oldest one fades; never below the floor,
    # so that a fresh report cannot switch the others' silence off
    silence_floor: float = 0.7
    warn_at: float = 0.5
    block_at: float = 0.9
    block_min_confidence: float = 0.6
    # bounded influence: one participant (with its users' flags) moves a number's
    # log-odds by at most as much as it takes to go from the base rate to this
    single_source_max: float = 0.85
    evidence_scale: float = 3.0  # nats of (capped) evidence for 63% confidence, as v1's scale
    verdict_ttl: timedelta = timedelta(minutes=5)
    exempt_roles: frozenset[Role] = frozenset()  # roles whose influence is not capped (none by default)

    def __post_init__(self) -> None:
        lo, hi = self.base_bounds
        if not 0.0 < lo <= hi < self.warn_at:
            raise ValueError("base_bounds must lie in (0, warn_at)")
        if not self.warn_at <= self.single_source_max < self.block_at:
            raise ValueError("single_source_max must be at least warn_at and below block_at: one participant alone reaches at most WARN")
