"""The label taxonomy: the campaign's three kinds of unwanted call, their
sub-categories, ``legitimate`` for labels that say a number is not spam, and
``reassigned``: a carrier's (or the regulator's) notice that a number has a new
subscriber, so its history starts afresh. A notice is not a vote."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from numrep.core.errors import InvalidArgument


class Kind(enum.Enum):
    MARKETING = "marketing"
    HARASSMENT = "harassment"
    FRAUD = "fraud"
    LEGITIMATE = "legitimate"
    ADMINISTRATIVE = "administrative"

SPAM_KINDS = frozenset({Kind.MARKETING, Kind.HARASSMENT, Kind.FRAUD})


@dataclass(frozen=True)
class Category:
    code: str
    kind: Kind
    title: str

    @property
    def is_spam(self) -> bool:
        return self.kind in SPAM_KINDS

    @property
    def is_vote(self) -> bool:
        """Whether a label of this category says spam or legitimate."""
        return self.kind is not Kind.ADMINISTRATIVE


_ALL = [
    Category("marketing", Kind.MARKETING, "Commercial marketing"),
    Category("marketing.loans", Kind.MARKETING, "Loans and debt relief"),
    Category("marketing.investment", Kind.MARKETING, "Stocks and investment"),
    Category("marketing.insurance", Kind.MARKETING, "Insurance"),
    Category("marketing.real_estate", Kind.MARKETING, "Real estate"),
    Category("marketing.medical", Kind.MARKETING, "Medical services"),
    Category("marketing.health_products", Kind.MARKETING, "Health products"),
    Category("marketing.recruitment", Kind.MARKETING, "Recruitment"),
    Category("marketing.travel", Kind.MARKETING, "Travel and timeshare"),
    Category("marketing.education", Kind.MARKETING, "Education and training"),
    Category("marketing.telecom", Kind.MARKETING, "Telecom offers"),
    Category("marketing.warranty", Kind.MARKETING, "Warranties and protection plans"),
    Category("marketing.robocall", Kind.MARKETING, "Robocall (recorded message)"),
    Category("harassment", Kind.HARASSMENT, "Malicious harassment"),
    Category("harassment.debt_collection", Kind.HARASSMENT, "Aggressive debt collection"),
    Category("harassment.silent", Kind.HARASSMENT, "Silent or dropped calls"),
    Category("fraud", Kind.FRAUD, "Fraud or crime"),
    Category("fraud.impersonation", Kind.FRAUD, "Impersonation of officials or businesses"),
    Category("fraud.one_ring", Kind.FRAUD, "One-ring (wangiri) callback fraud"),
    Category("fraud.investment", Kind.FRAUD, "Investment scam"),
    Category("legitimate", Kind.LEGITIMATE, "Legitimate caller"),
    Category("reassigned", Kind.ADMINISTRATIVE, "Number reassigned to a new subscriber"),
]

CATEGORIES: dict[str, Category] = {c.code: c for c in _ALL}
LEGITIMATE = CATEGORIES["legitimate"]
REASSIGNED = CATEGORIES["reassigned"]
VOTING_CATEGORIES: dict[str, Category] = {c.code: c for c in _ALL if c.is_vote}


def category(code: str) -> Category:
    """The category for ``code`` or ``InvalidArgument`` naming the known codes."""
    found = CATEGORIES.get(code)
    if found is None:
        raise InvalidArgument(
            f"unknown category {code!r}; known: {', '.join(sorted(CATEGORIES))}",
            reason="unknown_category",
        )
    return found
