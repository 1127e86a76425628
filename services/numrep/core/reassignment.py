"""Evidence filters shared by fitting and verdicts: number reassignment.

When a number is reassigned to a new subscriber, what was said about the old
one must stop counting. Both reconcilers and the trust fit use these filters:

* an explicit ``reassigned_at`` (from wherever the exchange learns it: a
  carrier's porting/reassignment feed, the regulator's reassigned-numbers
  database) drops every label issued and every flag made before it;
* a label whose category is ``reassigned`` published by a carrier or the
  regulator is such a marker itself; the latest marker wins. It is not a spam or
  legitimate vote (the exchange refuses the category from other roles).
"""

from __future__ import annotations

from datetime import datetime
from typing import Callable, Iterable, Sequence, TypeVar

from numrep.core.categories import REASSIGNED, VOTING_CATEGORIES
from numrep.core.model import Evidence, Flag, FlagTally, Label, Role

REASSIGNED_CODE = REASSIGNED.code
MARKER_ROLES = frozenset({Role.CARRIER, Role.REGULATOR})


def is_vote(code: str) -> bool:
    """Whether a label or flag with this category says spam or legitimate (a
    known category, and not a reassignment marker)."""
    return code in VOTING_CATEGORIES


def spam_codes() -> dict[str, bool]:
    """Every voting category code: True for spam, False for legitimate."""
    return {code: cat.is_spam for code, cat in VOTING_CATEGORIES.items()}

T = TypeVar("T", Label, Flag)


def reassignment_marker(labels: Iterable[Label], role_of: Callable[[str], Role | None]) -> datetime | None:
    """The latest reassignment marker among ``labels`` from a carrier or the regulator."""
    latest: datetime | None = None
    for label in labels:
        if label.category == REASSIGNED_CODE and role_of(label.issuer) in MARKER_ROLES:
            if latest is None or label.issued_at > latest:
                latest = label.issued_at
    return latest


def latest_of(*times: datetime | None) -> datetime | None:
    known = [t for t in times if t is not None]
    return max(known) if known else None


def after_reassignment(labels: Sequence[Label], reassigned_at: datetime | None) -> tuple[Label, ...]:
    """The labels that still speak about the current subscriber (markers dropped)."""
    return tuple(
        lb for lb in labels
        if lb.category != REASSIGNED_CODE and (reassigned_at is None or lb.issued_at >= reassigned_at)
    )


def flags_after(flags: Sequence[Flag], reassigned_at: datetime | None) -> tuple[Flag, ...]:
    return tuple(f for f in flags if reassigned_at is None or f.time >= reassigned_at)


def filter_reassigned(evidence: Evidence, reassigned_at: datetime | None) -> Evidence:
    """``evidence`` without what predates ``reassigned_at``. A flag tally holds
    only counts and its newest time, so a tally whose newest flag predates the
    reassignment is dropped whole and a newer one is kept whole (the engine
    filters individual flags when it is given them)."""
    if reassigned_at is None:
        return evidence
    tallies: tuple[FlagTally, ...] = tuple(t for t in evidence.flags if t.latest >= reassigned_at)
    return Evidence(evidence.number, after_reassignment(evidence.labels, reassigned_at), tallies)
