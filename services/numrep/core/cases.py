"""Complaints and disputes (redress) as plain domain rules: no gRPC, no storage.

A *complaint* says a number made an unwanted call; the regulator confirms or
rejects it, and a confirmed complaint is gold evidence that the number is spam.
A *dispute* is a number's owner saying it was labelled wrongly; it is linked to
the labels behind the verdict when it was filed, the publishers of those labels
see it, and the regulator upholds it (the labels are retracted) or rejects it.

    complaint: OPEN -> CONFIRMED | REJECTED
    dispute:   OPEN -> UPHELD    | REJECTED

Only an OPEN case can be resolved, and only once. Every case has a deadline
(``filed_at`` plus a period per kind, ``CaseConfig``) and an age.

What a complainant wrote, a dispute's contact details and evidence, and who
filed are personal data (``Particulars``): they are kept for the regulator and
never part of the ``Case`` that anyone holding the case id may read.
"""

from __future__ import annotations

import enum
import secrets
import unicodedata
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from numrep.core.categories import category as parse_category
from numrep.core.errors import FailedPrecondition, InvalidArgument

CASE_ID_BYTES = 18  # 24 URL-safe characters, 144 random bits: the complainant's only key
DEFAULT_COMPLAINT_PERIOD = timedelta(days=30)
DEFAULT_DISPUTE_PERIOD = timedelta(days=14)


class CaseKind(enum.Enum):
    COMPLAINT = "complaint"
    DISPUTE = "dispute"


class CaseStatus(enum.Enum):
    OPEN = "open"
    CONFIRMED = "confirmed"  # complaint: the regulator found it true
    REJECTED = "rejected"    # either kind: not substantiated
    UPHELD = "upheld"        # dispute: the labels were wrong and are retracted


OUTCOMES: dict[CaseKind, frozenset[CaseStatus]] = {
    CaseKind.COMPLAINT: frozenset({CaseStatus.CONFIRMED, CaseStatus.REJECTED}),
    CaseKind.DISPUTE: frozenset({CaseStatus.UPHELD, CaseStatus.REJECTED}),
}


@dataclass(frozen=True)
class CaseConfig:
    """Deadlines and input limits. The periods are how long the regulator has to
    resolve a case: 30 days for complaints, 14 for disputes (a wrongly blocked
    business loses calls every day, so redress is the more urgent)."""

    complaint_period: timedelta = DEFAULT_COMPLAINT_PERIOD
    dispute_period: timedelta = DEFAULT_DISPUTE_PERIOD
    max_text: int = 2000        # a complaint's free text
    max_contact: int = 200      # a dispute's contact details
    max_evidence: int = 4000    # a dispute's evidence
    max_message: int = 2000     # the regulator's outcome message
    max_filed_by: int = 128     # the reporter id before it is pseudonymised
    max_occurred_age: timedelta = timedelta(days=365)
    clock_skew: timedelta = timedelta(minutes=5)

    def period(self, kind: CaseKind) -> timedelta:
        return self.complaint_period if kind is CaseKind.COMPLAINT else self.dispute_period


@dataclass(frozen=True)
class Case:
    """What anyone holding the case id may read: no personal data."""

    case_id: str
    kind: CaseKind
    number: str                      # E.164
    category: str                    # complaint category, "" for disputes
    status: CaseStatus
    filed_at: datetime
    deadline: datetime
    resolved_at: datetime | None
    outcome: str                     # the regulator's words, "" while open
    label_ids: tuple[str, ...]       # disputes: the labels behind the verdict when filed
    occurred_at: datetime | None = None  # complaints: when the call happened, if told

    @property
    def is_open(self) -> bool:
        return self.status is CaseStatus.OPEN

    def age(self, now: datetime) -> timedelta:
        """How long the case has been (or was, once resolved) with the regulator."""
        end = self.resolved_at if self.resolved_at is not None else now
        return max(timedelta(0), end - self.filed_at)

    def overdue(self, now: datetime) -> bool:
        """An open case past its deadline."""
        return self.is_open and now > self.deadline


@dataclass(frozen=True)
class Particulars:
    """Personal data of a case, for the regulator only. ``repr`` hides the values
    so that a stray log line or traceback cannot leak them."""

    text: str = field(default="", repr=False)       # complaint: what happened
    contact: str = field(default="", repr=False)    # dispute: how to reach the owner
    evidence: str = field(default="", repr=False)   # dispute: why the labels are wrong
    filed_by: str = field(default="", repr=False)   # pseudonymised reporter id, "" if none
    filed_via: str = ""                             # participant that filed it ("" for the web page)


@dataclass(frozen=True)
class CaseRecord:
    """A case as stored: the public case and its particulars."""

    case: Case
    particulars: Particulars

    @property
    def case_id(self) -> str:
        return self.case.case_id


@dataclass(frozen=True)
class GoldOutcome:
    """A regulator's decision about a number, as ground truth for the trust engine."""

    number: str
    is_spam: bool
    category: str
    decided_at: datetime
    case_id: str


def whole_millis(when: datetime) -> datetime:
    """``when`` cut to whole milliseconds: what every store keeps, so a case reads
    back exactly as it was filed."""
    return when.replace(microsecond=when.microsecond // 1000 * 1000)


def new_case_id() -> str:
    """A random id that does not start with '-' or '_': complainants type it on
    command lines (``numrep case show ID``), where a leading '-' reads as an option."""
    while True:
        case_id = secrets.token_urlsafe(CASE_ID_BYTES)
        if case_id[0].isalnum():
            return case_id


def new_case(
    kind: CaseKind,
    number: str,
    category: str,
    filed_at: datetime,
    config: CaseConfig,
    label_ids: tuple[str, ...] = (),
    occurred_at: datetime | None = None,
) -> Case:
    return Case(new_case_id(), kind, number, category, CaseStatus.OPEN, filed_at,
                filed_at + config.period(kind), None, "", label_ids, occurred_at)


def complaint_category(code: str) -> str:
    """A complaint names a kind of unwanted call: a spam category."""
    found = parse_category(code)
    if not found.is_spam:
        raise InvalidArgument(f"a complaint is about an unwanted call; {code!r} is not a spam category", "unknown_category")
    return found.code


def check_occurred_at(occurred_at: datetime | None, now: datetime, config: CaseConfig) -> datetime | None:
    if occurred_at is None:
        return None
    if occurred_at.tzinfo is None:
        raise InvalidArgument("occurred_at must carry a time zone", "bad_time")
    if occurred_at > now + config.clock_skew:
        raise InvalidArgument("occurred_at is in the future", "time_in_future")
    if occurred_at < now - config.max_occurred_age:
        raise InvalidArgument(f"occurred_at is more than {config.max_occurred_age.days} days ago", "too_old")
    return occurred_at


def clean_text(value: str | bytes | None, what: str, maximum: int, *, required: bool = True) -> str:
    """``value`` as valid UTF-8 text without control characters (newlines and tabs
    allowed), stripped, 1 (or 0 when optional) to ``maximum`` characters. The
    messages name the field, never its content: it may be personal data."""
    if value is None:
        value = ""
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidArgument(f"{what} is not valid UTF-8", "bad_text") from None
    if not isinstance(value, str):
        raise InvalidArgument(f"{what} must be text", "bad_text")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidArgument(f"{what} is not valid UTF-8", "bad_text") from None
    text = value.strip()
    if required and not text:
        raise InvalidArgument(f"{what} is empty", "empty_text")
    if len(text) > maximum:
        raise InvalidArgument(f"{what} is longer than {maximum} characters", "text_too_long")
    if any(unicodedata.category(c) == "Cc" and c not in "\n\t" for c in text):
        raise InvalidArgument(f"{what} contains control characters", "bad_text")
    return text


def check_resolution(case: Case, outcome: CaseStatus) -> None:
    """Raise unless ``case`` may be resolved with ``outcome``."""
    if not case.is_open:
        raise FailedPrecondition(
            f"case {case.case_id} is {case.status.value} already; only an open case can be resolved", "case_closed"
        )
    allowed = OUTCOMES[case.kind]
    if outcome not in allowed:
        names = " or ".join(sorted(s.value for s in allowed))
        raise InvalidArgument(f"a {case.kind.value} is resolved as {names}, not {outcome.value}", "bad_outcome")


def resolved(case: Case, outcome: CaseStatus, message: str, at: datetime) -> Case:
    check_resolution(case, outcome)
    return replace(case, status=outcome, resolved_at=at, outcome=message)


def gold_outcome(case: Case) -> GoldOutcome | None:
    """Confirmed complaints say spam (in the complaint's category); upheld disputes
    say legitimate. Rejections say nothing certain about the number."""
    if case.resolved_at is None:
        return None
    if case.kind is CaseKind.COMPLAINT and case.status is CaseStatus.CONFIRMED:
        return GoldOutcome(case.number, True, case.category, case.resolved_at, case.case_id)
    if case.kind is CaseKind.DISPUTE and case.status is CaseStatus.UPHELD:
        return GoldOutcome(case.number, False, "legitimate", case.resolved_at, case.case_id)
    return None


def publisher_of(label_id: str) -> str:
    """The issuer part of a label id (``issuer/jti``)."""
    return label_id.split("/", 1)[0]
