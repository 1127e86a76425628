"""``TrustReconciler``: verdicts from learned reliabilities, a drop-in for
``numrep.core.reconcile.RoleWeightedReconciler`` (same ``Reconciler`` protocol).

For one number:

1. live labels (not expired), minus whatever predates the number's
   reassignment (``reassigned_at`` provider, keyword, or a marker label);
2. every label is a vote of its participant: spam or legitimate, weighted by
   its confidence and a time decay (half-life ``label_half_life``); only a
   participant's strongest spam and strongest legitimate label count;
3. an app's users' flags are one vote per polarity of the pseudo-source
   ``app-x/flags``, from its reporters' reputations (saturating; newcomers
   capped together), or, given only a ``FlagTally``, as newcomers;
4. each vote adds ``weight * llr`` to the log-odds, ``llr`` from the current
   ``TrustSnapshot`` (a spam label adds ``logit(precision) - logit(base)``);
5. bounded influence: a participant's total (its labels and its users' flags)
   is capped at what lifts a number from the base rate to
   ``single_source_max`` (0.85: WARN, never BLOCK), and BLOCK also needs the
   number to stay at WARN or above without any single participant (so one
   participant cannot turn ALLOW into BLOCK against the rest of the evidence);
6. WARN at 50%, BLOCK at 90% with confidence at least 60%, as v1.

The model is read once per verdict, so a refit takes effect on the next
verdict; the verdict's explanation names the trust epoch it used.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable, Sequence

from numrep.core.categories import CATEGORIES
from numrep.core.model import Action, Contribution, Evidence, Flag, FlagTally, Label, Role, Verdict
from numrep.trust.config import TrustConfig
from numrep.trust.evidence import after_reassignment, flags_after, latest_of, reassignment_marker
from numrep.trust.model import Participants, TrustModel, TrustSnapshot, role_resolver
from numrep.trust.reporters import flags_source, reporter_weight, vote_strength


@dataclass
class _Vote:
    source: str
    principal: str
    role: Role | None
    category: str
    spam: bool
    strength: float  # in [0, 1]: confidence x decay, or an app's saturated reporter weight share
    llr: float  # log-odds of one full vote from this source
    kind: str  # "label" | "flags"
    precision: float
    fitted: bool
    independence: float = 1.0
    label_id: str = ""
    reporters: int = 0
    established: int = 0
    counted: bool = True
    registered: bool = True

    @property
    def raw(self) -> float:
        return self.strength * self.llr if self.counted else 0.0


class TrustReconciler:
    """Verdicts from the current ``TrustModel`` snapshot (see module docstring)."""

    def __init__(
        self,
        participants: Participants | None = None,
        model: TrustModel | None = None,
        config: TrustConfig | None = None,
        *,
        flags_for: Callable[[str], Sequence[Flag]] | None = None,
        reassigned_at: Callable[[str], datetime | None] | None = None,
    ) -> None:
        self.model = model or TrustModel(participants, config)
        self.config = config or self.model.config
        self.role_of = role_resolver(participants) if participants is not None else self.model.role_of
        self._flags_for = flags_for
        self._reassigned_at = reassigned_at

    def reconcile(
        self,
        evidence: Evidence,
        now: datetime,
        previous_version: int = 0,
        *,
        flags: Sequence[Flag] | None = None,
        reassigned_at: datetime | None = None,
    ) -> Verdict:
        """The verdict for ``evidence.number`` at ``now``. ``flags`` (the
        number's individual flags) replaces the tallies in ``evidence`` when
        given (otherwise the ``flags_for`` provider is asked when there are
        tallies); ``reassigned_at`` drops evidence older than it."""
        cfg = self.config
        snap = self.model.snapshot
        role_of = self.role_of
        live = [lb for lb in evidence.labels if lb.expires_at > now]
        cutoff = latest_of(
            reassignment_marker(live, role_of),
            reassigned_at,
            self._reassigned_at(evidence.number) if self._reassigned_at is not None else None,
        )
        labels = [lb for lb in after_reassignment(live, cutoff) if lb.category in CATEGORIES]
        if flags is None and evidence.flags and self._flags_for is not None:
            flags = self._flags_for(evidence.number)
        votes = self._label_votes(labels, now, snap)
        if flags is not None:
            votes += self._flag_votes(flags_after(flags, cutoff), now, snap)
            flag_count = len({(f.app_id, f.reporter) for f in flags_after(flags, cutoff)})
        else:
            tallies = [t for t in evidence.flags if cutoff is None or t.latest >= cutoff]
            votes += self._tally_votes(tallies, now, snap)
            flag_count = sum(t.reporters for t in tallies)

        base = snap.base_logit
        cap = _logit(cfg.single_source_max) - base
        raw: dict[str, float] = {}
        for vote in votes:
            raw[vote.principal] = raw.get(vote.principal, 0.0) + vote.raw
        counted: dict[str, float] = {}
        capped: set[str] = set()
        for principal, value in raw.items():
            exempt = role_of(principal) in cfg.exempt_roles
            counted[principal] = value if exempt else max(-cap, min(cap, value))
            if counted[principal] != value:
                capped.add(principal)
        scale = {p: (counted[p] / raw[p] if raw[p] else 1.0) for p in raw}

        total = math.fsum(sorted(counted.values()))
        evidence_mass = math.fsum(sorted(abs(v) for v in counted.values()))
        logit = base + total
        probability = _sigmoid(logit)
        confidence = 1.0 - math.exp(-evidence_mass / cfg.evidence_scale)
        decisive = sorted(
            p for p, c in counted.items()
            if c > 0 and role_of(p) not in cfg.exempt_roles and _sigmoid(logit - c) < cfg.warn_at
        )
        top = _top_category(votes, scale)
        if evidence_mass == 0:
            action, probability, top = Action.UNKNOWN, snap.base_probability, ""
        elif probability >= cfg.block_at and confidence >= cfg.block_min_confidence and not decisive:
            action = Action.BLOCK
        elif probability >= cfg.warn_at:
            action = Action.WARN
        else:
            action = Action.ALLOW
        if action is Action.ALLOW and any(not v.spam and v.raw != 0 for v in votes):
            top = "legitimate"

        valid_until = min((lb.expires_at for lb in live), default=None)
        expiry = now + cfg.verdict_ttl if valid_until is None else min(now + cfg.verdict_ttl, valid_until)
        contributions = tuple(
            sorted(
                (_contribution(v, scale.get(v.principal, 1.0), v.principal in capped, snap.epoch) for v in votes),
                key=lambda c: (-c.weight, c.participant_id, c.category, c.label_id, c.kind),
            )
        )
        blocked_by_rule = (
            action is Action.WARN and probability >= cfg.block_at and confidence >= cfg.block_min_confidence and decisive
        )
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
            explanation=_summary(action, top, probability, counted, snap, decisive if blocked_by_rule else []),
            label_count=len(live),
            flag_count=flag_count,
            valid_until=valid_until,
        )

    # --- votes -------------------------------------------------------------------------------
    def _label_votes(self, labels: list[Label], now: datetime, snap: TrustSnapshot) -> list[_Vote]:
        cfg = self.config
        votes: list[_Vote] = []
        for label in labels:
            role = self.role_of(label.issuer)
            spam = CATEGORIES[label.category].is_spam
            rel = snap.reliability(label.issuer, role, cfg)
            registered = role is not None
            llr = (rel.spam_llr if spam else rel.legit_llr) * rel.independence if registered else 0.0
            strength = min(max(label.confidence, 0.0), 1.0) * _decay(now - label.issued_at, cfg.label_half_life)
            votes.append(_Vote(
                label.issuer, label.issuer, role, label.category, spam, strength, llr, "label",
                rel.spam_precision if spam else rel.legit_precision, rel.fitted, rel.independence,
                label_id=label.id, registered=registered,
            ))
        # only a participant's strongest spam and strongest legitimate label count
        best: dict[tuple[str, bool], _Vote] = {}
        for vote in sorted(votes, key=lambda v: (-v.strength, v.label_id, v.category)):
            best.setdefault((vote.source, vote.spam), vote)
        chosen = {id(v) for v in best.values()}
        for vote in votes:
            vote.counted = id(vote) in chosen
        return votes

    def _flag_votes(self, flags: Sequence[Flag], now: datetime, snap: TrustSnapshot) -> list[_Vote]:
        """One vote per (app, polarity) from the app's reporters' reputations."""
        rcfg = self.config.reporters
        latest: dict[tuple[str, str], Flag] = {}
        for flag in flags:
            if flag.category not in CATEGORIES:
                continue
            key = (flag.app_id, flag.reporter)
            held = latest.get(key)
            if held is None or (flag.time, flag.category) > (held.time, held.category):
                latest[key] = flag
        # per (app, polarity): established and newcomer weight; per (app, category): weight, reporters, established
        sums: dict[tuple[str, bool], list[float]] = {}
        cats: dict[tuple[str, str], list[float]] = {}
        for (app, reporter), flag in sorted(latest.items()):
            agree, disagree = snap.reporters.get((app, reporter), (0.0, 0.0))
            weight, established = reporter_weight(agree, disagree, rcfg)
            weight *= _decay(now - flag.time, rcfg.half_life)
            spam = CATEGORIES[flag.category].is_spam
            s = sums.setdefault((app, spam), [0.0, 0.0])
            s[0 if established else 1] += weight
            c = cats.setdefault((app, flag.category), [0.0, 0, 0])
            c[0] += weight
            c[1] += 1
            c[2] += int(established)
        return self._app_votes(sums, cats, snap)

    def _tally_votes(self, tallies: list[FlagTally], now: datetime, snap: TrustSnapshot) -> list[_Vote]:
        """Tallies carry no reporter identities: every reporter counts as a newcomer."""
        rcfg = self.config.reporters
        sums: dict[tuple[str, bool], list[float]] = {}
        cats: dict[tuple[str, str], list[float]] = {}
        for tally in sorted(tallies, key=lambda t: t.app_id):
            decay = _decay(now - tally.latest, rcfg.half_life)
            for code, count in sorted(tally.reporters_by_category):
                if code not in CATEGORIES or count <= 0:
                    continue
                spam = CATEGORIES[code].is_spam
                weight = count * rcfg.newcomer_weight * decay
                sums.setdefault((tally.app_id, spam), [0.0, 0.0])[1] += weight
                c = cats.setdefault((tally.app_id, code), [0.0, 0, 0])
                c[0] += weight
                c[1] += count
        return self._app_votes(sums, cats, snap)

    def _app_votes(self, sums: dict[tuple[str, bool], list[float]], cats: dict[tuple[str, str], list[float]], snap: TrustSnapshot) -> list[_Vote]:
        rcfg = self.config.reporters
        votes: list[_Vote] = []
        for (app, code), (weight, reporters, established) in sorted(cats.items()):
            spam = CATEGORIES[code].is_spam
            est, new = sums[(app, spam)]
            strength = vote_strength(est, new, rcfg)
            polarity_weight = est + new
            share = weight / polarity_weight if polarity_weight > 0 else 0.0
            role = self.role_of(app)
            source = flags_source(app)
            rel = snap.reliability(source, role, self.config)
            registered = role is not None
            llr = (rel.spam_llr if spam else rel.legit_llr) if registered else 0.0
            votes.append(_Vote(
                source, app, role, code, spam, strength * share, llr, "flags",
                rel.spam_precision if spam else rel.legit_precision, rel.fitted,
                reporters=int(reporters), established=int(established), registered=registered,
            ))
        return votes


def _top_category(votes: list[_Vote], scale: dict[str, float]) -> str:
    strongest: dict[tuple[str, str], float] = {}  # one vote per (source, category): repeating adds nothing
    for vote in votes:
        if vote.spam and vote.llr > 0:
            key = (vote.source, vote.category)
            strongest[key] = max(strongest.get(key, 0.0), vote.strength * vote.llr * scale.get(vote.principal, 1.0))
    mass: dict[str, float] = {}
    for (_, code), weight in sorted(strongest.items()):
        mass[code] = mass.get(code, 0.0) + weight
    mass = {code: m for code, m in mass.items() if m > 0}
    if not mass:
        return ""
    return min(mass, key=lambda code: (-round(mass[code], 12), code))


def _contribution(vote: _Vote, scale: float, capped: bool, epoch: int) -> Contribution:
    weight = abs(vote.raw * scale)
    title = "a legitimate caller" if not vote.spam else CATEGORIES[vote.category].title.lower()
    role = vote.role.value if vote.role is not None else "unregistered"
    kind_words = "spam" if vote.spam else "legitimate"
    if vote.kind == "label":
        who = f"{vote.source} ({role}) labelled it {title}"
    else:
        newcomers = vote.reporters - vote.established
        who = (f"{vote.reporters} user(s) of {vote.principal} flagged it {title} "
               f"({vote.established} with a confirmed record, {newcomers} new)")
    if not vote.registered:
        text = f"{who}; {vote.principal} is not a registered participant; counted 0.00"
    elif not vote.counted:
        text = f"{who} again; only its strongest {kind_words} label counts; counted 0.00"
    else:
        whose = f"{vote.principal}'s users' flags" if vote.kind == "flags" else f"its {kind_words} labels"
        if vote.fitted:
            record = f"{whose} are right {vote.precision:.0%} of the time (trust epoch {epoch})"
        else:
            record = f"{whose} are expected to be right {vote.precision:.0%} of the time (its role's prior; not yet learned)"
        if vote.llr == 0:
            record += ", no better than the base rate"
        direction = "" if vote.spam else " against spam"
        text = f"{who}; {record}; counted {weight:.2f}{direction}"
        if vote.independence < 1.0:
            text += f" (it mostly repeats what others reported first: counts {vote.independence:.0%})"
        if capped:
            text += " (capped: one participant alone can at most warn)"
    return Contribution(
        participant_id=vote.principal,
        role=vote.role or Role.APP_VENDOR,
        category=vote.category,
        weight=round(weight, 6),
        kind=vote.kind,
        label_id=vote.label_id,
        reporter_count=vote.reporters,
        explanation=text,
    )


def _summary(action: Action, top: str, probability: float, counted: dict[str, float], snap: TrustSnapshot, decisive: list[str]) -> str:
    epoch = f"trust epoch {snap.epoch}"
    if action is Action.UNKNOWN:
        return f"No participant has reported this number ({epoch})."
    sources = sorted(counted)
    who = f"from {len(sources)} participant(s): {', '.join(sources)}"
    if action is Action.ALLOW:
        return f"Allow: only {probability:.0%} likely spam, {who} ({epoch})."
    what = CATEGORIES[top].title.lower() if top else "spam"
    verb = "Block" if action is Action.BLOCK else "Warn"
    text = f"{verb}: {probability:.0%} likely {what}, {who} ({epoch})."
    if decisive:
        text += f" Not blocked: it rests on {', '.join(decisive)} alone; blocking needs another participant to agree."
    return text


def _decay(age: timedelta, half_life: timedelta) -> float:
    seconds = max(age.total_seconds(), 0.0)
    return 0.5 ** (seconds / half_life.total_seconds())


def _logit(p: float) -> float:
    return math.log(p / (1.0 - p))


def _sigmoid(x: float) -> float:
    if x >= 0:
        return 1 / (1 + math.exp(-x))
    z = math.exp(x)
    return z / (1 + z)
