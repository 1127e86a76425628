"""The learned trust engine: who to believe, learned from the federation's own data.

* ``numrep.trust.dawid_skene`` - two-coin Dawid-Skene fitted by EM (numpy),
  Beta priors by role, gold anchoring;
* ``numrep.trust.reporters`` - end users' reputations and an app's aggregate vote;
* ``numrep.trust.model`` - ``TrustModel``: the current ``TrustSnapshot`` (an epoch of
  learned reliabilities), refit on demand;
* ``numrep.trust.engine`` - ``TrustReconciler``: the ``Reconciler`` that uses it;
* ``numrep.trust.baselines`` - majority vote and unweighted mean, for comparison;
* ``numrep.trust.replay`` - ``numrep replay FILE``: run labelled history through an engine.

Pure domain code: no gRPC, no storage; numpy is its one dependency. The
federation simulator that measures it lives in ``sim/`` (``python -m sim``).
"""

from numrep.trust.baselines import MajorityReconciler, MeanReconciler
from numrep.trust.config import TrustConfig
from numrep.trust.dawid_skene import ROLE_PRIORS, BetaPrior, EMResult, SourcePrior, fit_em
from numrep.trust.engine import TrustReconciler
from numrep.core.reassignment import REASSIGNED_CODE, filter_reassigned
from numrep.trust.model import SourceReliability, TrustModel, TrustSnapshot
from numrep.trust.replay import Metrics, ReplayReport, ReplayRow, replay
from numrep.trust.reporters import ReporterConfig, flags_source

__all__ = [
    "BetaPrior",
    "EMResult",
    "MajorityReconciler",
    "MeanReconciler",
    "Metrics",
    "REASSIGNED_CODE",
    "ROLE_PRIORS",
    "ReplayReport",
    "ReplayRow",
    "ReporterConfig",
    "SourcePrior",
    "SourceReliability",
    "TrustConfig",
    "TrustModel",
    "TrustReconciler",
    "TrustSnapshot",
    "filter_reassigned",
    "fit_em",
    "flags_source",
    "replay",
]
