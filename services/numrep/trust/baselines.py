"""Naive reconcilers to compare the trust engine with (replay, simulator).

* ``MajorityReconciler``: every participant, and every app's users taken
  together, cast one vote: spam if its strongest evidence is spam. The spam
  probability is the share of spam votes.
* ``MeanReconciler``: the unweighted mean over every label and every single
  user flag (1 for spam, 0 for legitimate), nobody deduplicated or weighted.

Both use v1's thresholds (WARN at 50%, BLOCK at 90%) and, as their confidence
rule, block only with at least two votes behind the number.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Sequence

from numrep.core.categories import CATEGORIES
from numrep.core.model import Action, Contribution, Evidence, Flag, Role, Verdict
from numrep.core.reassignment import is_vote

_TTL = timedelta(minutes=5)


class _Counting:
    name = ""
    prior = 0.2
    warn_at = 0.5
    block_at = 0.9
    min_block_votes = 2

    def reconcile(self, evidence: Evidence, now: datetime, previous_version: int = 0, *, flags: Sequence[Flag] | None = None,
                  reassigned_at: datetime | None = None) -> Verdict:
        live = [lb for lb in evidence.labels if lb.expires_at > now and is_vote(lb.category)
                and (reassigned_at is None or lb.issued_at >= reassigned_at)]
        votes = self._votes(live, evidence, flags, reassigned_at)  # (voter, category, spam)
        spam_votes = sum(1 for _, _, spam in votes if spam)
        total = len(votes)
        if total == 0:
            probability, action, top = self.prior, Action.UNKNOWN, ""
        else:
            probability = spam_votes / total
            if probability >= self.block_at and total >= self.min_block_votes:
                action = Action.BLOCK
            elif probability >= self.warn_at:
                action = Action.WARN
            else:
                action = Action.ALLOW
            if action is Action.ALLOW:
                top = "legitimate" if spam_votes < total else ""
            else:
                top = _top([code for _, code, spam in votes if spam])
        valid_until = min((lb.expires_at for lb in live), default=None)
        return Verdict(
            number=evidence.number,
            action=action,
            category=top,
            spam_probability=round(probability, 6),
            confidence=round(1.0 - 1.0 / (1 + total), 6),
            contributions=tuple(
                Contribution(voter, Role.APP_VENDOR, code, 1.0, "vote", explanation=f"{voter} voted {code}")
                for voter, code, _ in sorted(votes)[:50]
            ),
            computed_at=now,
            expires_at=now + _TTL if valid_until is None else min(now + _TTL, valid_until),
            version=previous_version + 1,
            explanation=f"{self.name}: {spam_votes} of {total} votes say spam",
            label_count=len(live),
            flag_count=sum(t.reporters for t in evidence.flags),
            valid_until=valid_until,
        )

    def _votes(self, labels, evidence, flags, reassigned_at) -> list[tuple[str, str, bool]]:
        raise NotImplementedError


class MajorityReconciler(_Counting):
    name = "majority"

    def _votes(self, labels, evidence, flags, reassigned_at):
        votes = []
        by_issuer: dict[str, list] = {}
        for lb in labels:
            by_issuer.setdefault(lb.issuer, []).append(lb)
        for issuer, own in sorted(by_issuer.items()):
            best = max(own, key=lambda lb: (lb.confidence, lb.issued_at, lb.id))
            votes.append((issuer, best.category, CATEGORIES[best.category].is_spam))
        for app, counts in sorted(_flag_counts(evidence, flags, reassigned_at).items()):
            spam = sum(n for code, n in counts.items() if CATEGORIES[code].is_spam)
            legit = sum(counts.values()) - spam
            if spam or legit:
                code = _top([c for c, n in counts.items() for _ in range(n) if CATEGORIES[c].is_spam]) if spam > legit else "legitimate"
                votes.append((app + "/flags", code, spam > legit))
        return votes


class MeanReconciler(_Counting):
    name = "mean"

    def _votes(self, labels, evidence, flags, reassigned_at):
        votes = [(lb.issuer, lb.category, CATEGORIES[lb.category].is_spam) for lb in labels]
        for app, counts in sorted(_flag_counts(evidence, flags, reassigned_at).items()):
            for code, n in sorted(counts.items()):
                votes.extend([(app + "/flags", code, CATEGORIES[code].is_spam)] * n)
        return votes


def _flag_counts(evidence: Evidence, flags: Sequence[Flag] | None, reassigned_at: datetime | None) -> dict[str, dict[str, int]]:
    counts: dict[str, dict[str, int]] = {}
    if flags is not None:
        latest: dict[tuple[str, str], Flag] = {}
        for f in flags:
            if is_vote(f.category) and (reassigned_at is None or f.time >= reassigned_at):
                held = latest.get((f.app_id, f.reporter))
                if held is None or (f.time, f.category) > (held.time, held.category):
                    latest[(f.app_id, f.reporter)] = f
        for (app, _), f in latest.items():
            by = counts.setdefault(app, {})
            by[f.category] = by.get(f.category, 0) + 1
        return counts
    for tally in evidence.flags:
        if reassigned_at is not None and tally.latest < reassigned_at:
            continue
        by = counts.setdefault(tally.app_id, {})
        for code, n in tally.reporters_by_category:
            if is_vote(code) and n > 0:
                by[code] = by.get(code, 0) + n
    return counts


def _top(codes: list[str]) -> str:
    if not codes:
        return ""
    tally: dict[str, int] = {}
    for code in codes:
        tally[code] = tally.get(code, 0) + 1
    return min(tally, key=lambda c: (-tally[c], c))
