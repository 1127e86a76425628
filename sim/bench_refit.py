"""Benchmark (not a test): a full refit of the trust model on 1,000,000 labels
from 50 participants.

    python -m sim.bench_refit [--labels 1000000] [--participants 50] [--flags 0] [--repeat 2]

Labels are generated with numpy (a regulator, carriers, handset vendors, app
vendors of varying quality over a universe of numbers, a third of them spam)
and handed to ``TrustModel.refit`` as lightweight ``Label``-like rows, as a
store scan would stream them. Reported: the time to collect the rows into
arrays, the EM time and iterations, the total, and how well the fit found the
participants' true precision. Generation time is not counted.
"""

from __future__ import annotations

import argparse
import time
from datetime import datetime, timedelta, timezone
from typing import Sequence

import numpy as np

from numrep.core.categories import CATEGORIES
from numrep.core.model import Role
from numrep.trust import TrustModel
import numrep.trust.model as trust_model

SPAM_CODES = sorted(code for code, c in CATEGORIES.items() if c.is_spam)
START = datetime(2025, 1, 1, tzinfo=timezone.utc)


class Row:
    """A label as a store scan yields it (only what the refit reads)."""

    __slots__ = ("number", "issuer", "category", "confidence", "issued_at")

    def __init__(self, number: str, issuer: str, category: str, confidence: float, issued_at: datetime) -> None:
        self.number = number
        self.issuer = issuer
        self.category = category
        self.confidence = confidence
        self.issued_at = issued_at


class FlagRow:
    __slots__ = ("number", "app_id", "reporter", "category", "time")

    def __init__(self, number: str, app_id: str, reporter: str, category: str, time: datetime) -> None:
        self.number = number
        self.app_id = app_id
        self.reporter = reporter
        self.category = category
        self.time = time


def participants(n: int) -> dict[str, Role]:
    roles = {"regulator": Role.REGULATOR}
    kinds = [Role.CARRIER, Role.HANDSET_VENDOR, Role.APP_VENDOR]
    for i in range(1, n):
        role = kinds[i % 3]
        roles[f"{role.value.split('_')[0]}-{i:02d}"] = role
    return roles


def generate(n_labels: int, n_participants: int, n_flags: int, seed: int) -> tuple[list[Row], list[FlagRow], dict[str, Role], dict[str, float]]:
    rng = np.random.default_rng(seed)
    roles = participants(n_participants)
    names = sorted(roles)
    n_numbers = max(n_labels // 4, 1000)
    spam = rng.random(n_numbers) < 0.35
    numbers = np.array([f"+1{2000000000 + i}" for i in range(n_numbers)])
    # each participant: share of the labels, and how precise it is
    share = rng.uniform(0.5, 1.5, len(names))
    share[names.index("regulator")] = 0.05
    share /= share.sum()
    precision = {name: {Role.REGULATOR: 0.999, Role.CARRIER: 0.98, Role.HANDSET_VENDOR: 0.92, Role.APP_VENDOR: 0.85}[roles[name]]
                 for name in names}
    for bad in [n for n in names if n != "regulator"][-5:]:  # a tenth of them bad
        precision[bad] = 0.3
    issuer = rng.choice(len(names), size=n_labels, p=share)
    prec = np.array([precision[n] for n in names])[issuer]
    says_spam = rng.random(n_labels) < 0.6
    # a spam label lands on a spam number with the issuer's precision; a legitimate label on a legitimate one likewise
    want_spam = np.where(says_spam, rng.random(n_labels) < prec, rng.random(n_labels) >= prec)
    spam_idx, legit_idx = np.flatnonzero(spam), np.flatnonzero(~spam)
    number = np.where(want_spam, spam_idx[rng.integers(0, len(spam_idx), n_labels)], legit_idx[rng.integers(0, len(legit_idx), n_labels)])
    code = np.where(says_spam, np.array(SPAM_CODES)[rng.integers(0, len(SPAM_CODES), n_labels)], "legitimate")
    confidence = np.round(rng.uniform(0.6, 1.0, n_labels), 3)
    seconds = rng.uniform(0, 180 * 86400, n_labels)
    times = [START + timedelta(seconds=float(s)) for s in seconds]
    number_s, code_s, name_s = numbers[number].tolist(), code.tolist(), [names[i] for i in issuer.tolist()]
    rows = [Row(n, i, c, float(f), t) for n, i, c, f, t in zip(number_s, name_s, code_s, confidence.tolist(), times)]
    flags: list[FlagRow] = []
    if n_flags:
        apps = [n for n in names if roles[n] is Role.APP_VENDOR]
        f_num = rng.integers(0, n_numbers, n_flags)
        f_spam = np.where(spam[f_num], rng.random(n_flags) < 0.9, rng.random(n_flags) < 0.1)
        f_app = rng.integers(0, len(apps), n_flags)
        f_rep = rng.integers(0, 50000, n_flags)
        f_sec = rng.uniform(0, 180 * 86400, n_flags)
        flags = [FlagRow(str(numbers[i]), apps[a], f"u{r}", "fraud" if s else "legitimate", START + timedelta(seconds=float(t)))
                 for i, a, r, s, t in zip(f_num.tolist(), f_app.tolist(), f_rep.tolist(), f_spam.tolist(), f_sec.tolist())]
    return rows, flags, roles, {n: precision[n] for n in names}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sim.bench_refit", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--labels", type=int, default=1_000_000)
    parser.add_argument("--participants", type=int, default=50)
    parser.add_argument("--flags", type=int, default=0, help="also this many user flags (default none)")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)

    started = time.perf_counter()
    rows, flags, roles, truth = generate(args.labels, args.participants, args.flags, args.seed)
    print(f"generated {len(rows):,} labels, {len(flags):,} flags from {len(roles)} participants in {time.perf_counter() - started:.1f} s (not counted)")

    timings: dict[str, float] = {}
    original_fit = trust_model.fit_em
    original_collect = trust_model._collect_labels

    def timed_fit(*a, **k):
        t = time.perf_counter()
        try:
            return original_fit(*a, **k)
        finally:
            timings["em"] = timings.get("em", 0.0) + time.perf_counter() - t

    def timed_collect(*a, **k):
        t = time.perf_counter()
        try:
            return original_collect(*a, **k)
        finally:
            timings["collect"] = timings.get("collect", 0.0) + time.perf_counter() - t

    trust_model.fit_em, trust_model._collect_labels = timed_fit, timed_collect
    try:
        model = TrustModel(roles)
        snapshots = []
        for attempt in range(1, args.repeat + 1):
            timings.clear()
            t = time.perf_counter()
            snap = model.refit(rows, flags=flags)
            total = time.perf_counter() - t
            snapshots.append(snap)
            print(f"refit {attempt}: {total:6.2f} s total  (collect rows {timings.get('collect', 0):5.2f} s, "
                  f"EM {timings.get('em', 0):5.2f} s, {snap.iterations} iterations, "
                  f"{'converged' if snap.converged else 'NOT converged'}; {snap.numbers:,} numbers, {snap.gold:,} gold)")
    finally:
        trust_model.fit_em, trust_model._collect_labels = original_fit, original_collect

    same = all(a.sources == snapshots[0].sources for a in snapshots[1:])
    print(f"deterministic across refits: {same}")
    snap = snapshots[-1]
    errors = [abs(snap.sources[n].spam_precision - truth[n]) for n in truth if n in snap.sources and n != "regulator"]
    print(f"true spam precision recovered within {max(errors):.3f} (mean error {np.mean(errors):.4f}) over {len(errors)} participants")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
