"""Reconciliation v1: a verdict per number from its labels and flags.

Each participant's evidence counts with its trust weight (a prior by role),
the label's own confidence, and a time decay. Within one participant only its
strongest spam label and its strongest ``legitimate`` label count, so nobody
gains weight by repeating itself. Spam and legitimate evidence are combined in
log-odds; the learned trust engine (its own issue) replaces the weights behind
the same ``Reconciler`` interface.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Callable, Protocol

from numrep.core.categories import CATEGORIES, category
from numrep.core.reassignment import filter_reassigned, is_vote, reassignment_marker
from numrep.core.model import (
    Action,
    Contribution,
    Evidence,
    Label,
    Participant,
    Role,
    Verdict,
)

ROLE_TRUST: dict[Role, float] = {
    Role.REGULATOR: 1.5,
    Role.CARRIER: 0.8,
    Role.HANDSET_VENDOR: 0.6,
    Role.APP_VENDOR: 0.5,
}


class Reconciler(Protocol):
    def reconcile(self, evidence: Evidence, now: datetime, previous_version: int = 0) -> Verdict:
        """The verdict for ``evidence.number`` at ``now``."""
        ...

    def unreported(self, number: str, now: datetime) -> Verdict:
        """``reconcile(Evidence(number), now, previous_version=-1)``: the verdict of a
        number nobody has reported (most numbers a carrier asks about)."""
        ...


class UnreportedVerdicts:
    """A reconciler's verdict of no evidence, reconciled once per ``basis`` (what it
    rests on, compared by identity: a trust snapshot, a configuration) and copied
    for each number and moment after that. With no evidence, nothing in the verdict
    depends on the number or the time but the number itself and the verdict's two
    times."""

    def __init__(self, reconcile: Callable[[Evidence, datetime, int], Verdict]) -> None:
        self._reconcile = reconcile
        self._held: tuple[tuple[object, ...], Verdict] | None = None

    def __call__(self, number: str, now: datetime, *basis: object) -> Verdict:
        held = self._held
        if held is None or len(held[0]) != len(basis) or any(a is not b for a, b in zip(held[0], basis)):
            verdict = self._reconcile(Evidence(number), now, -1)
            self._held = (basis, verdict)
            return verdict
        template = held[1]
        return template.copied(number=number, computed_at=now, expires_at=now + (template.expires_at - template.computed_at))


@dataclass(frozen=True)
class ReconcileConfig:
    prior_spam_probability: float = 0.2
    evidence_scale: float = 3.0  # log-odds added by one unit of weight
    label_half_life: timedelta = timedelta(days=180)
    flag_half_life: timedelta = timedelta(days=60)
    flag_saturation: float = 10.0  # distinct reporters for ~63% of an app's weight
    warn_at: float = 0.5
    block_at: float = 0.9
    block_min_confidence: float = 0.6
    verdict_ttl: timedelta = timedelta(minutes=5)
    role_trust: dict[Role, float] = field(default_factory=lambda: dict(ROLE_TRUST))


@dataclass(frozen=True)
class _Vote:
    participant: str
    role: Role
    category: str
    weight: float
    kind: str
    label_id: str = ""
    reporters: int = 0


class RoleWeightedReconciler:
    """Reconciliation v1 (see module docstring)."""

    def __init__(
        self,
        participants: Callable[[str], Participant | None],
        config: ReconcileConfig | None = None,
    ) -> None:
        self._participants = participants
        self.config = config or ReconcileConfig()
        self._unreported = UnreportedVerdicts(self.reconcile)

    def unreported(self, number: str, now: datetime) -> Verdict:
        return self._unreported(number, now, self.config)

    def reconcile(self, evidence: Evidence, now: datetime, previous_version: int = 0) -> Verdict:
        cfg = self.config
        live = [lb for lb in evidence.labels if lb.expires_at > now]
        evidence = filter_reassigned(evidence, reassignment_marker(live, self._role))  # a new subscriber starts afresh
        live = [lb for lb in evidence.labels if lb.expires_at > now]
        votes = self._label_votes(live, now) + self._flag_votes(evidence, now)
        spam = _strongest_per_participant([v for v in votes if category(v.category).is_spam])
        legit = _strongest_per_participant([v for v in votes if not category(v.category).is_spam])
        spam_mass = math.fsum(sorted(spam.values()))
        legit_mass = math.fsum(sorted(legit.values()))
        total = spam_mass + legit_mass

        prior = math.log(cfg.prior_spam_probability / (1 - cfg.prior_spam_probability))
        probability = _sigmoid(prior + cfg.evidence_scale * (spam_mass - legit_mass))
        confidence = 1 - math.exp(-total)
        top = _top_category(votes)
        if total == 0:  # no evidence: the prior, and no action either way
            action, probability, top = Action.UNKNOWN, cfg.prior_spam_probability, ""
        elif probability >= cfg.block_at and confidence >= cfg.block_min_confidence:
            action = Action.BLOCK
        elif probability >= cfg.warn_at:
            action = Action.WARN
        else:
            action = Action.ALLOW
        if action is Action.ALLOW and legit_mass > 0:
            top = "legitimate"

        valid_until = min((lb.expires_at for lb in live), default=None)
        expiry = now + cfg.verdict_ttl if valid_until is None else min(now + cfg.verdict_ttl, valid_until)
        contributions = tuple(_contribution(v) for v in sorted(votes, key=lambda v: (-v.weight, v.participant, v.category, v.label_id)))
        return Verdict(
            number=evidence.number,
            action=action,
            category=top,
            spam_probability=round(probability, 6),
            confidence=round(confidence, 6),
            contributions=contributions,
            computed_at=now,
            expires_at=expiry,
            version=previous_version + 1,
            explanation=_summary(action, top, probability, contributions),
            label_count=len(live),
            flag_count=sum(t.reporters for t in evidence.flags),
            valid_until=valid_until,
        )

    def _role(self, participant_id: str) -> Role | None:
        participant = self._participants(participant_id)
        return None if participant is None else participant.role

    def _trust(self, participant_id: str) -> tuple[Role, float]:
        participant = self._participants(participant_id)
        if participant is None:
            return Role.APP_VENDOR, 0.0
        return participant.role, self.config.role_trust.get(participant.role, 0.0)

    def _label_votes(self, labels: list[Label], now: datetime) -> list[_Vote]:
        votes = []
        for label in labels:
            if not is_vote(label.category):
                continue
            role, trust = self._trust(label.issuer)
            decay = _decay(now - label.issued_at, self.config.label_half_life)
            votes.append(_Vote(label.issuer, role, label.category, trust * label.confidence * decay, "label", label_id=label.id))
        return votes

    def _flag_votes(self, evidence: Evidence, now: datetime) -> list[_Vote]:
        votes = []
        for tally in evidence.flags:
            role, trust = self._trust(tally.app_id)
            total = tally.reporters
            if total == 0:
                continue
            strength = trust * (1 - math.exp(-total / self.config.flag_saturation))
            strength *= _decay(now - tally.latest, self.config.flag_half_life)
            for code, count in sorted(tally.reporters_by_category):
                if is_vote(code) and count > 0:
                    votes.append(_Vote(tally.app_id, role, code, strength * count / total, "flags", reporters=count))
        return votes


def _strongest_per_participant(votes: list[_Vote]) -> dict[str, float]:
    best: dict[str, float] = {}
    for vote in votes:
        best[vote.participant] = max(best.get(vote.participant, 0.0), vote.weight)
    return best


def _top_category(votes: list[_Vote]) -> str:
    strongest: dict[tuple[str, str], float] = {}  # one vote per (participant, category): repeating adds nothing
    for vote in votes:
        if category(vote.category).is_spam:
            key = (vote.participant, vote.category)
            strongest[key] = max(strongest.get(key, 0.0), vote.weight)
    mass: dict[str, float] = {}
    for (_, code), weight in sorted(strongest.items()):
        mass[code] = mass.get(code, 0.0) + weight
    if not mass:
        return ""
    return min(mass, key=lambda code: (-round(mass[code], 12), code))


def _decay(age: timedelta, half_life: timedelta) -> float:
    seconds = max(age.total_seconds(), 0.0)
    return 0.5 ** (seconds / half_life.total_seconds())


def _sigmoid(x: float) -> float:
    if x >= 0:
        return 1 / (1 + math.exp(-x))
    z = math.exp(x)
    return z / (1 + z)


def _contribution(vote: _Vote) -> Contribution:
    title = CATEGORIES[vote.category].title.lower()
    if vote.kind == "label":
        text = f"{vote.participant} ({vote.role.value}) labelled it {title}; counted {vote.weight:.2f}"
    else:
        text = f"{vote.reporters} users of {vote.participant} flagged it {title}; counted {vote.weight:.2f}"
    return Contribution(
        participant_id=vote.participant,
        role=vote.role,
        category=vote.category,
        weight=round(vote.weight, 6),
        kind=vote.kind,
        label_id=vote.label_id,
        reporter_count=vote.reporters,
        explanation=text,
    )


def _summary(action: Action, top: str, probability: float, contributions: tuple[Contribution, ...]) -> str:
    if action is Action.UNKNOWN:
        return "No participant has reported this number."
    sources = sorted({c.participant_id for c in contributions})
    who = f"from {len(sources)} participant(s): {', '.join(sources)}"
    if action is Action.ALLOW:
        return f"Allow: only {probability:.0%} likely spam, {who}."
    what = CATEGORIES[top].title.lower() if top else "spam"
    verb = "Block" if action is Action.BLOCK else "Warn"
    return f"{verb}: {probability:.0%} likely {what}, {who}."
