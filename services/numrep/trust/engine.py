"""``TrustReconciler``: verdicts from learned reliabilities, a drop-in for
``numrep.core.reconcile.RoleWeightedReconciler`` (same ``Reconciler`` protocol).

For one number:

1. live labels (not expired, each id once), minus whatever predates the
   number's reassignment (``reassigned_at`` provider or keyword, or a marker
   label from a carrier or the regulator);
2. every label is a vote of its participant, spam or legitimate, as strong as
   its confidence times a time decay (half-life ``label_half_life``); only a
   participant's strongest spam and strongest legitimate label count;
3. an app's users' flags are one vote per polarity of the pseudo-source
   ``app-x/flags``, from its reporters' reputations (saturating; newcomers
   capped together), or, given only a ``FlagTally``, all as newcomers;
4. a vote adds ``strength * llr`` to the log-odds, ``llr`` from the current
   ``TrustSnapshot`` (for a spam label ``log(sensitivity / (1 - specificity))``);
   a label never counts against what it says, so a participant found to lie
   counts for nothing;
5. the silence of those who did not report it counts against spam, as much as
   their record says (a carrier that reports much of the spam it sees and did
   not report this number), once the others have had time to report;
6. bounded influence: a participant's total (its labels, its users' flags,
   its silence) is capped at what lifts a number from the base rate to
   ``single_source_max`` (0.85: WARN, never BLOCK), and BLOCK also needs the
   number to stay at WARN or above with any one participant taken out, so no
   participant can turn ALLOW into BLOCK against the rest of the evidence;
7. WARN at 50%, BLOCK at 90% with confidence at least 60%, as v1.

The model is read once per verdict, so a refit takes effect on the next
verdict; the verdict's explanation names the trust epoch it used, and every
contribution says in words what counted and why.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable, Sequence

from numrep.core.categories import CATEGORIES
from numrep.core.model import Action, Contribution, Evidence, Flag, FlagTally, Label, Role, Verdict
from numrep.core.reconcile import UnreportedVerdicts
from numrep.trust.config import TrustConfig
from numrep.core.reassignment import after_reassignment, flags_after, is_vote, latest_of, reassignment_marker
from numrep.trust.model import Participants, TrustModel, TrustSnapshot, role_resolver
from numrep.trust.reporters import flags_source, reporter_weight, vote_strength


@dataclass
class _Vote:
    source: str
    principal: str
    role: Role | None
    category: str
    spam: bool
    strength: float  # in [0, 1] now: confidence x decay, or an app's saturated (decayed) reporter weight share
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
    silence: float = 0.0  # what this source's silence would have counted (<= 0)
    presence: float = 0.0  # how firmly it spoke at all (strength before decay): that much of it is not silent
    time: datetime | None = None  # when (an app's vote: its newest flag of the category)

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
        self._roles = _Roles(self.role_of)
        self._flags_for = flags_for
        self._reassigned_at = reassigned_at
        self._silent: tuple[TrustSnapshot, dict[str, float]] | None = None
        self._unreported = UnreportedVerdicts(self.reconcile)

    def unreported(self, number: str, now: datetime) -> Verdict:
        return self._unreported(number, now, self.model.snapshot, self.config)

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
        role_of = self._roles
        live = list({lb.id: lb for lb in sorted(evidence.labels, key=lambda lb: lb.id) if lb.expires_at > now}.values())
        cutoff = latest_of(
            reassignment_marker(live, role_of),
            reassigned_at,
            self._reassigned_at(evidence.number) if self._reassigned_at is not None else None,
        )
        labels = [lb for lb in after_reassignment(live, cutoff) if is_vote(lb.category)]
        if flags is None and evidence.flags and self._flags_for is not None:
            flags = self._flags_for(evidence.number)
        votes = self._label_votes(labels, now, snap, role_of)
        if flags is not None:
            votes += self._flag_votes(flags_after(flags, cutoff), now, snap, role_of)
            flag_count = len({(f.app_id, f.reporter) for f in flags_after(flags, cutoff)})
        else:
            tallies = [t for t in evidence.flags if cutoff is None or t.latest >= cutoff]
            votes += self._tally_votes(tallies, now, snap, role_of)
            flag_count = sum(t.reporters for t in tallies)

        whole = self._combine(votes, now, snap, role_of)
        counted, raw = whole.counted, whole.raw
        capped = {p for p, value in raw.items() if counted[p] != value}
        scale = {p: (counted[p] / raw[p] if raw[p] else 1.0) for p in raw}
        probability = _sigmoid(whole.logit)
        evidence_mass = math.fsum(sorted(abs(v) for v in counted.values()))
        confidence = 1.0 - math.exp(-evidence_mass / cfg.evidence_scale)
        voters = whole.voters
        silent = math.fsum(sorted(c for p, c in counted.items() if p not in voters))
        top = _top_category(votes, scale)
        blockable = probability >= cfg.block_at and confidence >= cfg.block_min_confidence
        # bounded influence: BLOCK only if the number would still be at WARN or above
        # without any one participant (each in turn taken out, as if it had said nothing)
        decisive = [] if not blockable else [
            p for p in voters
            if counted.get(p, 0.0) > 0 and role_of(p) not in cfg.exempt_roles
            and _sigmoid(self._combine([v for v in votes if v.principal != p], now, snap, role_of).logit) < cfg.warn_at
        ]
        if not voters:  # nobody (registered, with any weight) reported it
            action, confidence, top = Action.UNKNOWN, 0.0, ""
        elif blockable and not decisive:
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
            explanation=_summary(action, top, probability, voters, silent, snap, decisive),
            label_count=len(live),
            flag_count=flag_count,
            valid_until=valid_until,
            trust_epoch=snap.epoch,
        )

    def _combine(self, votes: list[_Vote], now: datetime, snap: TrustSnapshot, role_of: Callable[[str], Role | None]) -> "_Combined":
        """Every participant's total log-odds (its votes, its silence where it said
        nothing), each bounded, and the number's log-odds."""
        voters = sorted({v.principal for v in votes if v.registered and v.raw != 0})
        if not voters:  # nobody reported it: everyone is silent
            silence = self._silence(1.0, snap, role_of)
            cap = self._cap(snap)
            counted = {p: self._bounded(p, v, cap, role_of) for p, v in silence.items()}
            return _Combined(silence, counted, snap.base_logit + math.fsum(sorted(counted.values())), [])
        exposure = self._exposure(votes, now)
        parts: dict[str, list[float]] = {p: [v] for p, v in self._silence(exposure, snap, role_of).items()}
        presence: dict[tuple[str, bool], float] = {}
        silence_of: dict[str, tuple[str, float]] = {}
        for vote in votes:
            if not vote.registered:
                continue
            parts.setdefault(vote.principal, []).append(vote.raw)
            key = (vote.source, vote.spam)
            held = presence.get(key, 0.0)
            # a label's source spoke as firmly as its firmest label; an app's users' vote is shared out over categories
            presence[key] = held + vote.presence if vote.kind == "flags" else max(held, vote.presence)
            silence_of[vote.source] = (vote.principal, vote.silence)
        for source, (principal, silence) in sorted(silence_of.items()):
            spoke = min(presence.get((source, True), 0.0) + presence.get((source, False), 0.0), 1.0)
            parts[principal].append(-spoke * exposure * silence)  # that much of it is not silent
        raw = {p: math.fsum(sorted(values)) for p, values in parts.items()}
        cap = self._cap(snap)
        counted = {p: self._bounded(p, value, cap, role_of) for p, value in raw.items()}
        return _Combined(raw, counted, snap.base_logit + math.fsum(sorted(counted.values())), voters)

    def _cap(self, snap: TrustSnapshot) -> float:
        return _logit(self.config.single_source_max) - snap.base_logit

    def _exposure(self, votes: list[_Vote], now: datetime) -> float:
        """How much the silence of those who did not report counts, in [0, 1].

        Silence argues against a spam report only once the others have had time
        to confirm it (``silence_delay`` from the newest spam report), and it fades
        as the spam reports it stands beside fade (as much as the most faded).
        Both only fall as spam reports are added, so a spam report never makes
        the others' silence weigh more: adding one never lowers the probability.
        """
        said = [v for v in votes if v.spam and v.registered and v.llr > 0 and v.presence > 0]
        if not said:
            return 1.0
        newest = max(v.time for v in said)
        waited = -math.expm1(-max((now - newest).total_seconds(), 0.0) / self.config.silence_delay.total_seconds())
        return max(self.config.silence_floor, waited * min(v.strength / v.presence for v in said))

    def unreported_probability(self, snap: TrustSnapshot | None = None) -> float:
        """P(spam) of a number nobody has reported: every participant silent."""
        snap = snap or self.model.snapshot
        return _sigmoid(self._combine([], datetime.min, snap, self._roles).logit)

    def _silence(self, exposure: float, snap: TrustSnapshot, role_of: Callable[[str], Role | None]) -> dict[str, float]:
        """Per registered participant, what its silence counts on this number."""
        if exposure <= 0:
            return {}
        held = self._silent
        if held is None or held[0] is not snap:  # participants are never unregistered: once per snapshot
            held = self._silent = (snap, {p: v for p, v in sorted(snap.silence_by_principal.items()) if v != 0 and role_of(p) is not None})
        return {p: exposure * v for p, v in held[1].items()}

    def _bounded(self, principal: str, value: float, cap: float, role_of: Callable[[str], Role | None]) -> float:
        if self.config.exempt_roles and role_of(principal) in self.config.exempt_roles:
            return value
        return max(-cap, min(cap, value))

    # --- votes -------------------------------------------------------------------------------
    def _label_votes(self, labels: list[Label], now: datetime, snap: TrustSnapshot, role_of: Callable[[str], Role | None]) -> list[_Vote]:
        cfg = self.config
        votes: list[_Vote] = []
        for label in labels:
            role = role_of(label.issuer)
            spam = CATEGORIES[label.category].is_spam
            rel = snap.reliability(label.issuer, role, cfg)
            registered = role is not None
            llr = (rel.spam_llr if spam else rel.legit_llr) * rel.independence if registered else 0.0
            confidence = min(max(label.confidence, 0.0), 1.0)
            votes.append(_Vote(
                label.issuer, label.issuer, role, label.category, spam,
                confidence * _decay(now - label.issued_at, cfg.label_half_life), llr, "label",
                rel.spam_precision if spam else rel.legit_precision, rel.fitted, rel.independence,
                label_id=label.id, registered=registered, silence=rel.silence_llr, presence=confidence, time=label.issued_at,
            ))
        # only a participant's strongest spam and strongest legitimate label count
        best: dict[tuple[str, bool], _Vote] = {}
        for vote in sorted(votes, key=lambda v: (-v.strength, v.label_id, v.category)):
            best.setdefault((vote.source, vote.spam), vote)
        chosen = {id(v) for v in best.values()}
        for vote in votes:
            vote.counted = id(vote) in chosen
        return votes

    def _flag_votes(self, flags: Sequence[Flag], now: datetime, snap: TrustSnapshot, role_of: Callable[[str], Role | None]) -> list[_Vote]:
        """One vote per (app, polarity) from the app's reporters' reputations."""
        rcfg = self.config.reporters
        latest: dict[tuple[str, str], Flag] = {}
        for flag in flags:
            if not is_vote(flag.category):
                continue
            key = (flag.app_id, flag.reporter)
            held = latest.get(key)
            if held is None or (flag.time, flag.category) > (held.time, held.category):
                latest[key] = flag
        sums: dict[tuple[str, bool], _Weights] = {}
        cats: dict[tuple[str, str], _Group] = {}
        for (app, reporter), flag in sorted(latest.items()):
            agree, disagree = snap.reporters.get((app, reporter), (0.0, 0.0))
            full, established = reporter_weight(agree, disagree, rcfg)
            weight = full * _decay(now - flag.time, rcfg.half_life)
            sums.setdefault((app, CATEGORIES[flag.category].is_spam), _Weights()).add(weight, full, established)
            cats.setdefault((app, flag.category), _Group()).add(weight, full, 1, int(established), flag.time)
        return self._app_votes(sums, cats, snap, role_of)

    def _tally_votes(self, tallies: list[FlagTally], now: datetime, snap: TrustSnapshot, role_of: Callable[[str], Role | None]) -> list[_Vote]:
        """Tallies carry no reporter identities: every reporter counts as a newcomer."""
        rcfg = self.config.reporters
        sums: dict[tuple[str, bool], _Weights] = {}
        cats: dict[tuple[str, str], _Group] = {}
        for tally in sorted(tallies, key=lambda t: t.app_id):
            decay = _decay(now - tally.latest, rcfg.half_life)
            for code, count in sorted(tally.reporters_by_category):
                if not is_vote(code) or count <= 0:
                    continue
                full = count * rcfg.newcomer_weight
                sums.setdefault((tally.app_id, CATEGORIES[code].is_spam), _Weights()).add(full * decay, full, False)
                cats.setdefault((tally.app_id, code), _Group()).add(full * decay, full, count, 0, tally.latest)
        return self._app_votes(sums, cats, snap, role_of)

    def _app_votes(self, sums: dict[tuple[str, bool], "_Weights"], cats: dict[tuple[str, str], "_Group"], snap: TrustSnapshot,
                   role_of: Callable[[str], Role | None]) -> list[_Vote]:
        """An app's vote per polarity (saturating in its reporters' weights, newcomers
        capped together), shared out over the categories its reporters named."""
        rcfg = self.config.reporters
        votes: list[_Vote] = []
        for (app, code), group in sorted(cats.items()):
            spam = CATEGORIES[code].is_spam
            total = sums[(app, spam)]
            strength = vote_strength(total.established, total.newcomers, rcfg) * _share(group.weight, total.established + total.newcomers)
            presence = vote_strength(total.established_full, total.newcomers_full, rcfg) * _share(group.full, total.established_full + total.newcomers_full)
            role = role_of(app)
            rel = snap.reliability(flags_source(app), role, self.config)
            registered = role is not None
            votes.append(_Vote(
                flags_source(app), app, role, code, spam, strength,
                ((rel.spam_llr if spam else rel.legit_llr) if registered else 0.0), "flags",
                rel.spam_precision if spam else rel.legit_precision, rel.fitted,
                reporters=group.reporters, established=group.established, registered=registered, silence=rel.silence_llr,
                presence=presence, time=group.newest,
            ))
        return votes


@dataclass(frozen=True)
class _Combined:
    raw: dict[str, float]  # per participant, before bounding
    counted: dict[str, float]  # per participant, bounded
    logit: float
    voters: list[str]  # participants whose reports count


@dataclass
class _Weights:
    """An app's reporters on one polarity: weight now (decayed) and undecayed."""

    established: float = 0.0
    newcomers: float = 0.0
    established_full: float = 0.0
    newcomers_full: float = 0.0

    def add(self, weight: float, full: float, established: bool) -> None:
        if established:
            self.established += weight
            self.established_full += full
        else:
            self.newcomers += weight
            self.newcomers_full += full


@dataclass
class _Group:
    """An app's reporters who named one category."""

    weight: float = 0.0
    full: float = 0.0
    reporters: int = 0
    established: int = 0
    newest: datetime | None = None

    def add(self, weight: float, full: float, reporters: int, established: int, when: datetime) -> None:
        self.weight += weight
        self.full += full
        self.reporters += reporters
        self.established += established
        self.newest = when if self.newest is None else max(self.newest, when)


def _share(part: float, whole: float) -> float:
    return part / whole if whole > 0 else 0.0


class _Roles(dict):
    """A memo of registered participants' roles (a role never changes and nobody
    is unregistered); an unknown id is asked again next time (it may register)."""

    def __init__(self, lookup: Callable[[str], Role | None]) -> None:
        super().__init__()
        self._lookup = lookup

    def __missing__(self, key: str) -> Role | None:
        value = self._lookup(key)
        if value is not None:
            self[key] = value
        return value

    def __call__(self, key: str) -> Role | None:
        return self[key]


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


def _summary(action: Action, top: str, probability: float, voters: list[str], silent: float, snap: TrustSnapshot, decisive: list[str]) -> str:
    epoch = f"trust epoch {snap.epoch}"
    if action is Action.UNKNOWN:
        return f"No participant has reported this number ({epoch})."
    who = f"from {len(voters)} participant(s): {', '.join(voters)}"
    if silent < -0.005:
        who += f"; the others' silence counted {-silent:.2f} against spam"
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
