"""Helpers for the trust engine's tests: a small federation, labels, flags, and
synthetic data with known truth."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np

from numrep.core.categories import CATEGORIES
from numrep.core.model import Flag, Label, Role

NOW = datetime(2025, 6, 1, tzinfo=timezone.utc)
NUMBER = "+12025550143"
ROLES: dict[str, Role] = {
    "ftc": Role.REGULATOR,
    "carrier-a": Role.CARRIER,
    "carrier-b": Role.CARRIER,
    "carrier-c": Role.CARRIER,
    "handset-co": Role.HANDSET_VENDOR,
    "app-a": Role.APP_VENDOR,
    "app-b": Role.APP_VENDOR,
}
SPAM_CODES = sorted(code for code, c in CATEGORIES.items() if c.is_spam)
ALL_CODES = sorted(CATEGORIES)


def label(index: int, issuer: str, code: str, confidence: float = 1.0, age_days: float = 1.0, ttl_days: float = 365.0,
          number: str = NUMBER, now: datetime = NOW) -> Label:
    issued = now - timedelta(days=age_days)
    return Label(
        id=f"{issuer}/j{index}",
        issuer=issuer,
        number=number,
        category=code,
        confidence=confidence,
        issued_at=issued,
        expires_at=issued + timedelta(days=ttl_days),
        token=f"token-{index}",
    )


def flag(app: str, reporter: str, code: str, age_days: float = 1.0, number: str = NUMBER, now: datetime = NOW) -> Flag:
    return Flag(number, app, reporter, code, now - timedelta(days=age_days))


def history(seed: int = 3, n_numbers: int = 600, now: datetime = NOW) -> tuple[list[Label], list[Flag], dict[str, bool]]:
    """A small labelled history of the ``ROLES`` federation with known truth: the
    carriers precise with modest recall, the handset vendor and app-a decent,
    app-b a liar (labels legitimate numbers fraud), app-a's users mostly right.
    Returns (labels, flags, truth by number)."""
    rng = np.random.default_rng(seed)
    spam = rng.random(n_numbers) < 0.4
    numbers = [f"+1303555{i:04d}" for i in range(n_numbers)]
    quality = {  # (coverage, P(spam label | spam), P(spam label | legit), P(legit label | legit))
        "ftc": (0.05, 1.0, 0.0, 1.0),
        "carrier-a": (0.6, 0.5, 0.005, 0.3),
        "carrier-b": (0.6, 0.5, 0.005, 0.3),
        "carrier-c": (0.6, 0.5, 0.005, 0.3),
        "handset-co": (0.6, 0.4, 0.03, 0.05),
        "app-a": (0.6, 0.4, 0.05, 0.05),
        "app-b": (0.6, 0.1, 0.6, 0.0),
    }
    labels: list[Label] = []
    for issuer, (coverage, hit, false_hit, legit) in sorted(quality.items()):
        for i, number in enumerate(numbers):
            if rng.random() >= coverage:
                continue
            u = rng.random()
            age = float(rng.uniform(1, 60))
            if u < (hit if spam[i] else false_hit):
                labels.append(label(len(labels), issuer, str(rng.choice(SPAM_CODES)), float(rng.uniform(0.7, 1.0)), age, number=number, now=now))
            elif not spam[i] and u < false_hit + legit:
                labels.append(label(len(labels), issuer, "legitimate", float(rng.uniform(0.7, 1.0)), age, number=number, now=now))
    flags: list[Flag] = []
    accuracy = rng.uniform(0.75, 0.98, 300)
    for i, number in enumerate(numbers):
        for _ in range(int(rng.poisson(2.0 if spam[i] else 0.4))):
            r = int(rng.integers(0, 300))
            says_spam = rng.random() < (accuracy[r] if spam[i] else 1 - accuracy[r])
            flags.append(flag("app-a", f"u{r}", "fraud" if says_spam else "legitimate", float(rng.uniform(1, 60)), number=number, now=now))
    return labels, flags, {n: bool(s) for n, s in zip(numbers, spam)}


def crowd(rng: np.random.Generator, n_items: int, sensitivity: list[float], specificity: list[float],
          per_item: int | None = None, spam_share: float = 0.4) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(truth per item, and item, worker, label arrays) of a crowd whose workers
    have the given two-coin confusion; every worker labels every item unless
    ``per_item`` picks that many at random."""
    truth = rng.random(n_items) < spam_share
    items, workers, votes = [], [], []
    for i in range(n_items):
        chosen = range(len(sensitivity)) if per_item is None else rng.choice(len(sensitivity), per_item, replace=False)
        for w in chosen:
            says = rng.random() < (sensitivity[w] if truth[i] else 1.0 - specificity[w])
            items.append(i)
            workers.append(int(w))
            votes.append(int(says))
    return truth, np.array(items), np.array(workers), np.array(votes)
