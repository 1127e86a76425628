"""A synthetic federation with ground truth: numbers, participants that label
them, apps whose users flag them, and the ways participants go wrong.

Everything is drawn from one ``numpy.random.Generator`` so a seed fixes a world.
Times run over ``DAYS`` days from ``START``; verdicts are taken at the end.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import numpy as np

from numrep.core.categories import CATEGORIES
from numrep.core.model import Flag, Label, Role

START = datetime(2025, 1, 1, tzinfo=timezone.utc)
DAYS = 150.0
REGIONS = 3  # carriers are regional: each sees mostly the numbers of its own region
SPAM_CODES = sorted(code for code, c in CATEGORIES.items() if c.is_spam)
FRAUD_CODES = [c for c in SPAM_CODES if c.startswith("fraud")]
_LABEL_TTL = timedelta(days=730)


def at(day: float) -> datetime:
    return START + timedelta(days=float(day))


# --- behaviours ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Honest:
    """Labels a share ``coverage`` of numbers it sees; of spam it labels ``recall``
    spam (and ``legit_err`` legitimate by mistake); of legitimate numbers ``fpr``
    spam by mistake and ``legit_rate`` legitimate."""

    coverage: float
    recall: float
    fpr: float
    legit_rate: float
    legit_err: float
    delay: float = 5.0  # mean days after a number becomes active
    category_accuracy: float = 0.8
    home_region: int | None = None  # a regional carrier sees numbers of its region ...
    away_coverage: float = 0.0  # ... and only this share of the others


@dataclass(frozen=True)
class Flipper:
    """Says the opposite: legitimate for spam it sees, fraud for legitimate numbers."""

    coverage: float = 0.3
    rate: float = 0.6
    delay: float = 5.0


@dataclass(frozen=True)
class RandomLabeller:
    """Labels what it sees spam with probability ``spam_share``, whatever the truth."""

    coverage: float = 0.3
    spam_share: float = 0.5
    delay: float = 5.0


@dataclass(frozen=True)
class Targeter:
    """Honest elsewhere, but labels a competitor's legitimate numbers fraud."""

    honest: Honest
    targets: int = 300
    target_group: str = ""  # numbers of one competitor; several targeters with one group collude


@dataclass(frozen=True)
class Copier:
    """Publishes nothing of its own: re-publishes others' labels after a delay."""

    share: float = 0.5
    min_delay: float = 1.0
    max_delay: float = 10.0


@dataclass(frozen=True)
class Drifting:
    """Behaves as ``before`` until ``switch_day``, then as ``after``."""

    before: Honest
    after: Honest
    switch_day: float


@dataclass(frozen=True)
class Crowd:
    """An app's users: ``reporters`` people, a share of them noisy; each active
    spam number meets ``spam_encounters`` of them on average, a legitimate one
    ``legit_encounters``."""

    reporters: int = 2500
    noisy_share: float = 0.2
    spam_encounters: float = 1.5
    legit_encounters: float = 0.5


@dataclass(frozen=True)
class SimParticipant:
    id: str
    role: Role
    behaviour: object
    crowd: Crowd | None = None
    adversarial: bool = False


@dataclass
class World:
    numbers: list[str]
    spam: np.ndarray
    category: list[str]
    start_day: np.ndarray
    participants: list[SimParticipant]
    region: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    labels: list[Label] = field(default_factory=list)
    flags: list[Flag] = field(default_factory=list)
    now: datetime = field(default_factory=lambda: at(DAYS))
    targets: dict[str, list[int]] = field(default_factory=dict)
    attacked: list[int] = field(default_factory=list)  # legitimate numbers under a flag attack
    fit_before: datetime | None = None  # the last refit happened before this (streaming attack)

    @property
    def roles(self) -> dict[str, Role]:
        return {p.id: p.role for p in self.participants}


# --- generation -----------------------------------------------------------------------------------
def make_numbers(rng: np.random.Generator, n: int, spam_share: float) -> tuple[list[str], np.ndarray, list[str], np.ndarray]:
    spam = rng.random(n) < spam_share
    cats = rng.choice(np.array(SPAM_CODES), size=n)
    category = [str(c) if s else "legitimate" for c, s in zip(cats, spam)]
    start_day = rng.uniform(0.0, DAYS - 20.0, size=n)
    numbers = [f"+1202{1000000 + i:07d}" for i in range(n)]
    return numbers, spam, category, start_day


def build_world(
    rng: np.random.Generator,
    participants: list[SimParticipant],
    n_numbers: int = 12000,
    spam_share: float = 0.35,
) -> World:
    numbers, spam, category, start_day = make_numbers(rng, n_numbers, spam_share)
    world = World(numbers, spam, category, start_day, participants, region=rng.integers(0, REGIONS, n_numbers))
    legit_idx = np.flatnonzero(~spam)
    groups: dict[str, np.ndarray] = {}
    for p in participants:
        b = p.behaviour
        if isinstance(b, Targeter):
            group = b.target_group or p.id
            if group not in groups:
                groups[group] = rng.choice(legit_idx, size=min(b.targets, len(legit_idx)), replace=False)
            world.targets[p.id] = sorted(groups[group].tolist())
    for p in participants:  # copiers last: they copy what the others published
        if not isinstance(p.behaviour, Copier):
            world.labels += _labels(rng, world, p)
        if p.crowd is not None:
            world.flags += _flags(rng, world, p.id, p.crowd)
    for p in participants:
        if isinstance(p.behaviour, Copier):
            world.labels += _copies(rng, world, p)
    return world


def _label(world: World, issuer: str, index: int, code: str, day: float, confidence: float, serial: int) -> Label:
    issued = at(day)
    return Label(
        id=f"{issuer}/s{serial}",
        issuer=issuer,
        number=world.numbers[index],
        category=code,
        confidence=round(float(confidence), 3),
        issued_at=issued,
        expires_at=issued + _LABEL_TTL,
        token="",
    )


def _decide_honest(rng: np.random.Generator, world: World, b: Honest) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = len(world.numbers)
    coverage = b.coverage if b.home_region is None else np.where(world.region == b.home_region, b.coverage, b.away_coverage)
    sees = rng.random(n) < coverage
    u = rng.random(n)
    spam = world.spam
    says_spam = sees & np.where(spam, u < b.recall, u < b.fpr)
    says_legit = sees & ~says_spam & np.where(spam, u < b.recall + b.legit_err, u < b.fpr + b.legit_rate)
    day = report_day(rng, world.start_day, b.delay)
    return says_spam, says_legit, day


def report_day(rng: np.random.Generator, start: np.ndarray, delay: float) -> np.ndarray:
    """When a report is made: a number stays in use from its start to the end, a
    source meets it at a random moment of that and reports after its own delay."""
    return start + rng.uniform(0.0, 1.0, size=len(start)) * (DAYS - start) + rng.exponential(delay, size=len(start))


def _spam_code(rng: np.random.Generator, world: World, index: int, accuracy: float) -> str:
    if world.spam[index] and rng.random() < accuracy:
        return world.category[index]
    return str(rng.choice(SPAM_CODES))


def _labels(rng: np.random.Generator, world: World, p: SimParticipant) -> list[Label]:
    b = p.behaviour
    out: list[Label] = []
    if isinstance(b, Drifting):
        s1, l1, day = _decide_honest(rng, world, b.before)
        s2, l2, _ = _decide_honest(rng, world, b.after)
        late = day >= b.switch_day
        says_spam, says_legit = np.where(late, s2, s1), np.where(late, l2, l1)
        accuracy = b.before.category_accuracy
    elif isinstance(b, Honest):
        says_spam, says_legit, day = _decide_honest(rng, world, b)
        accuracy = b.category_accuracy
    elif isinstance(b, Targeter):
        says_spam, says_legit, day = _decide_honest(rng, world, b.honest)
        accuracy = b.honest.category_accuracy
        targets = np.array(world.targets[p.id], dtype=np.int64)
        says_spam[targets] = True
        says_legit[targets] = False
    elif isinstance(b, Flipper):
        n = len(world.numbers)
        sees = (rng.random(n) < b.coverage) & (rng.random(n) < b.rate)
        says_spam, says_legit = sees & ~world.spam, sees & world.spam
        day = report_day(rng, world.start_day, b.delay)
        accuracy = 0.0
    elif isinstance(b, RandomLabeller):
        n = len(world.numbers)
        sees = rng.random(n) < b.coverage
        coin = rng.random(n) < b.spam_share
        says_spam, says_legit = sees & coin, sees & ~coin
        day = report_day(rng, world.start_day, b.delay)
        accuracy = 0.0
    else:
        raise TypeError(f"unknown behaviour {b!r}")
    confidence = rng.uniform(0.7, 1.0, size=len(world.numbers))
    serial = 0
    for index in np.flatnonzero((says_spam | says_legit) & (day < DAYS)).tolist():
        code = _spam_code(rng, world, index, accuracy) if says_spam[index] else "legitimate"
        if isinstance(b, Targeter) and index in world.targets.get(p.id, ()):
            code, conf = str(rng.choice(FRAUD_CODES)), 1.0
        else:
            conf = confidence[index]
        out.append(_label(world, p.id, index, code, day[index], conf, serial))
        serial += 1
    return out


def _copies(rng: np.random.Generator, world: World, p: SimParticipant) -> list[Label]:
    b: Copier = p.behaviour  # type: ignore[assignment]
    roles = world.roles
    out: list[Label] = []
    seen: set[tuple[str, str]] = set()
    index_of = {n: i for i, n in enumerate(world.numbers)}
    for label in sorted(world.labels, key=lambda lb: lb.id):
        if roles.get(label.issuer) is Role.REGULATOR or rng.random() >= b.share:
            continue
        day = (label.issued_at - at(0)).total_seconds() / 86400 + rng.uniform(b.min_delay, b.max_delay)
        key = (label.number, label.category)
        if day >= DAYS or key in seen:
            continue
        seen.add(key)
        out.append(_label(world, p.id, index_of[label.number], label.category, day, label.confidence, len(out)))
    return out


def _flags(rng: np.random.Generator, world: World, app: str, crowd: Crowd) -> list[Flag]:
    n = len(world.numbers)
    accuracy = np.where(rng.random(crowd.reporters) < crowd.noisy_share,
                        rng.uniform(0.5, 0.7, crowd.reporters), rng.beta(12.0, 1.5, crowd.reporters))
    encounters = rng.poisson(np.where(world.spam, crowd.spam_encounters, crowd.legit_encounters))
    number = np.repeat(np.arange(n), encounters)
    reporter = rng.integers(0, crowd.reporters, size=len(number))
    acc = accuracy[reporter]
    u = rng.random(len(number))
    is_spam = world.spam[number]
    flag_spam = np.where(is_spam, u < acc, u < (1.0 - acc) * 0.4)
    flag_legit = ~flag_spam & np.where(is_spam, u < acc + 0.1 * (1.0 - acc), u < (1.0 - acc) * 0.4 + 0.15)
    day = report_day(rng, world.start_day[number], 4.0)
    keep = (flag_spam | flag_legit) & (day < DAYS)
    right_cat = rng.random(len(number)) < 0.6
    out = []
    for i in np.flatnonzero(keep).tolist():
        idx = int(number[i])
        if flag_spam[i]:
            code = world.category[idx] if (is_spam[i] and right_cat[i]) else str(rng.choice(SPAM_CODES))
        else:
            code = "legitimate"
        out.append(Flag(world.numbers[idx], app, f"u{int(reporter[i])}", code, at(day[i])))
    return out


def sybil_flood(rng: np.random.Generator, world: World, app: str, reporters: int = 1000, targets: int = 100,
                warm_up: int = 0) -> None:
    """``reporters`` brand-new users of ``app`` all flag ``targets`` legitimate numbers
    as fraud during the last two days. With ``warm_up`` each first flags that many
    numbers the federation already knows as spam, to build a record."""
    legit_idx = np.flatnonzero(~world.spam)
    chosen = rng.choice(legit_idx, size=targets, replace=False)
    world.attacked = sorted(chosen.tolist())
    spam_known = sorted({lb.number for lb in world.labels if world.roles[lb.issuer] is Role.CARRIER
                         and CATEGORIES[lb.category].is_spam and (lb.issued_at - START).days < DAYS - 30})
    for r in range(reporters):
        who = f"sybil-{r}"
        if warm_up:
            for number in rng.choice(np.array(spam_known), size=warm_up, replace=False):
                world.flags.append(Flag(str(number), app, who, "fraud", at(rng.uniform(DAYS - 30, DAYS - 20))))
        for idx in chosen.tolist():
            world.flags.append(Flag(world.numbers[idx], app, who, "fraud", at(rng.uniform(DAYS - 2.0, DAYS - 0.01))))
    world.fit_before = at(DAYS - 3.0)
