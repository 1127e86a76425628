"""Run the trust engine and the baselines over a simulated world and score them."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from numrep.core.model import Action, Evidence, Flag, Label, Role
from numrep.trust import TrustConfig, TrustModel, TrustReconciler
from numrep.trust.baselines import MajorityReconciler, MeanReconciler
from numrep.trust.replay import Metrics, _tallies
from sim.world import World

METHODS = ("trust", "majority", "mean")


@dataclass(frozen=True)
class Result:
    method: str
    metrics: Metrics
    attacked_blocked: int  # legitimate numbers under a flag attack that were blocked
    attacked_listed: int
    seconds: float
    epoch: int = 0


def gold_numbers(world: World) -> set[str]:
    return {lb.number for lb in world.labels if world.roles.get(lb.issuer) is Role.REGULATOR}


def fit(world: World, config: TrustConfig | None = None) -> TrustModel:
    model = TrustModel(world.roles, config)
    cut = world.fit_before
    if cut is None:
        model.refit(world.labels, flags=world.flags, now=world.now)
    else:
        model.refit([lb for lb in world.labels if lb.issued_at < cut], flags=[f for f in world.flags if f.time < cut], now=cut)
    return model


def evaluate(world: World, methods: tuple[str, ...] = METHODS, config: TrustConfig | None = None) -> list[Result]:
    labels: dict[str, list[Label]] = {}
    for lb in world.labels:
        labels.setdefault(lb.number, []).append(lb)
    flags: dict[str, list[Flag]] = {}
    for f in world.flags:
        flags.setdefault(f.number, []).append(f)
    gold = gold_numbers(world)
    index = {n: i for i, n in enumerate(world.numbers)}
    judged = sorted(n for n in (set(labels) | set(flags)) if n not in gold)
    evidence = {n: Evidence(n, tuple(labels.get(n, ())), _tallies(flags.get(n, []))) for n in judged}
    truth = [bool(world.spam[index[n]]) for n in judged]
    attacked = attacked_numbers(world)

    results = []
    for method in methods:
        started = time.perf_counter()
        epoch = 0
        reconciler: Any
        if method == "trust":
            model = fit(world, config)
            epoch = model.epoch
            reconciler = TrustReconciler(world.roles, model)
        elif method == "majority":
            reconciler = MajorityReconciler()
        else:
            reconciler = MeanReconciler()
        verdicts = {n: reconciler.reconcile(evidence[n], world.now, flags=flags.get(n, [])) for n in judged}
        metrics = Metrics.of(truth, [verdicts[n].is_listed for n in judged], [verdicts[n].action is Action.BLOCK for n in judged])
        results.append(Result(
            method, metrics,
            attacked_blocked=sum(1 for n in attacked if n in verdicts and verdicts[n].action is Action.BLOCK),
            attacked_listed=sum(1 for n in attacked if n in verdicts and verdicts[n].is_listed),
            seconds=time.perf_counter() - started, epoch=epoch,
        ))
    return results


def attacked_numbers(world: World) -> set[str]:
    """Legitimate numbers under attack: flooded by sybils, or a competitor's labelled fraud."""
    chosen = set(world.attacked) | {i for targets in world.targets.values() for i in targets}
    return {world.numbers[i] for i in chosen}


def describe_trust(world: World, config: TrustConfig | None = None) -> str:
    """The learned reliabilities, one line per source (for --verbose)."""
    model = fit(world, config)
    snap = model.snapshot
    bad = {p.id for p in world.participants if p.adversarial}
    lines = [f"  epoch {snap.epoch}: {snap.numbers} numbers, {snap.labels} labels, {snap.flags} flags, {snap.gold} gold, "
             f"{snap.iterations} EM iterations, base rate {snap.base_probability:.2f}"]
    for rel in sorted(snap.sources.values(), key=lambda r: r.source):
        mark = " (adversarial)" if rel.source.split("/")[0] in bad else ""
        lines.append(f"    {rel.source:<16} spam right {rel.spam_precision:6.1%} (llr {rel.spam_llr:5.2f})  legit right "
                     f"{rel.legit_precision:6.1%} (llr {rel.legit_llr:6.2f})  sens {rel.sensitivity:.3f} spec {rel.specificity:.4f} "
                     f"indep {rel.independence:.2f}{mark}")
    return "\n".join(lines)
