"""The scenarios: one honest federation, then the ways it goes wrong."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

import numpy as np

from numrep.core.model import Role
from sim.world import (
    REGIONS,
    Copier,
    Crowd,
    Drifting,
    Flipper,
    Honest,
    RandomLabeller,
    SimParticipant,
    Targeter,
    World,
    build_world,
    sybil_flood,
)

REGULATOR = Honest(coverage=0.04, recall=1.0, fpr=0.0005, legit_rate=1.0, legit_err=0.0005, delay=20.0, category_accuracy=0.95)
CARRIER = Honest(coverage=0.8, recall=0.45, fpr=0.004, legit_rate=0.25, legit_err=0.005, delay=4.0, away_coverage=0.1)
HANDSET = Honest(coverage=0.5, recall=0.35, fpr=0.02, legit_rate=0.05, legit_err=0.01, delay=6.0)
APP = Honest(coverage=0.5, recall=0.4, fpr=0.04, legit_rate=0.08, legit_err=0.03, delay=5.0, category_accuracy=0.7)
SLOPPY_CARRIER = Honest(coverage=0.8, recall=0.3, fpr=0.2, legit_rate=0.05, legit_err=0.05, delay=4.0, away_coverage=0.1)


def federation(carriers: int = 6, handsets: int = 5, apps: int = 8) -> list[SimParticipant]:
    people = [SimParticipant("regulator", Role.REGULATOR, REGULATOR)]
    people += [SimParticipant(f"carrier-{i}", Role.CARRIER, replace(CARRIER, home_region=(i - 1) % REGIONS)) for i in range(1, carriers + 1)]
    people += [SimParticipant(f"handset-{i}", Role.HANDSET_VENDOR, HANDSET) for i in range(1, handsets + 1)]
    people += [SimParticipant(f"app-{i}", Role.APP_VENDOR, APP, crowd=Crowd()) for i in range(1, apps + 1)]
    return people


def swap(people: list[SimParticipant], pid: str, behaviour: object, adversarial: bool = True) -> list[SimParticipant]:
    return [replace(p, behaviour=behaviour, adversarial=adversarial) if p.id == pid else p for p in people]


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    build: Callable[[np.random.Generator, int], World]


def _honest(rng: np.random.Generator, n: int) -> World:
    return build_world(rng, federation(), n)


def _lazy(rng: np.random.Generator, n: int) -> World:
    return build_world(rng, swap(federation(), "handset-5", Copier(share=0.5), adversarial=False), n)


def _malicious(rng: np.random.Generator, n: int) -> World:
    return build_world(rng, swap(federation(), "carrier-6", Targeter(replace(CARRIER, home_region=2), targets=300)), n)


def _sybil(before_refit: bool, warm_up: int = 0) -> Callable[[np.random.Generator, int], World]:
    def build(rng: np.random.Generator, n: int) -> World:
        world = build_world(rng, federation(), n)
        sybil_flood(rng, world, "app-3", reporters=1000, targets=100, warm_up=warm_up)
        if not before_refit:
            world.fit_before = None
        return world

    return build


def _drift(rng: np.random.Generator, n: int) -> World:
    before, after = replace(CARRIER, home_region=1), replace(SLOPPY_CARRIER, home_region=1)
    return build_world(rng, swap(federation(), "carrier-2", Drifting(before, after, switch_day=90.0), adversarial=False), n)


def adversarial_federation(cartel: bool = False) -> list[SimParticipant]:
    """6 of 20 participants (30%) adversarial, each in its own way, or (``cartel``)
    three of them colluding on one competitor's numbers."""
    people = federation()
    people = swap(people, "carrier-5", Flipper(coverage=0.35, rate=0.7))
    people = swap(people, "carrier-6", Targeter(replace(CARRIER, home_region=2), targets=300, target_group="cartel" if cartel else ""))
    people = swap(people, "handset-4", RandomLabeller(coverage=0.35, spam_share=0.6))
    people = swap(people, "handset-5", Targeter(HANDSET, targets=300, target_group="cartel" if cartel else ""))
    people = swap(people, "app-7", Targeter(APP, targets=300, target_group="cartel") if cartel else Flipper(coverage=0.35, rate=0.7))
    people = swap(people, "app-8", RandomLabeller(coverage=0.35, spam_share=0.6))
    return people


def _adversarial(rng: np.random.Generator, n: int) -> World:
    world = build_world(rng, adversarial_federation(), n)
    sybil_flood(rng, world, "app-8", reporters=1000, targets=100)  # app-8 also floods its own users' flags
    world.fit_before = None
    return world


def _cartel(rng: np.random.Generator, n: int) -> World:
    return build_world(rng, adversarial_federation(cartel=True), n)


SCENARIOS: list[Scenario] = [
    Scenario("honest", "regional carriers (precise, low recall), national handset vendors, apps with noisy crowds", _honest),
    Scenario("lazy-copier", "handset-5 publishes nothing of its own: re-publishes half of the others' labels 1-10 days later", _lazy),
    Scenario("malicious", "carrier-6 labels 300 legitimate numbers of a competitor fraud (honest elsewhere)", _malicious),
    Scenario("sybil-stream", "1,000 new users of app-3 flag 100 legitimate numbers fraud after the last refit", _sybil(True)),
    Scenario("sybil-refit", "the same flood, with a refit that has seen it", _sybil(False)),
    Scenario("sybil-aged", "the flood from 1,000 users who first built a record flagging 5 known spam numbers each", _sybil(False, warm_up=5)),
    Scenario("drift", "carrier-2 turns sloppy on day 90 (20% of legitimate numbers it sees labelled spam)", _drift),
    Scenario("adversarial-30", "6 of 20 participants adversarial: 2 flippers, 2 competitor-targeters, 2 random labellers, one with a 1,000-user flag flood", _adversarial),
    Scenario("cartel", "stress beyond the targets: 3 participants collude on the same 300 legitimate numbers, 3 more adversarial", _cartel),
]
