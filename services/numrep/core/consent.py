"""Consent, refusals and calling hours: the rules a marketing call must obey.

A *consent record* says that a callee agreed to marketing calls from a caller
(one or more numbers, optionally an enterprise id) in some categories, within
some calling hours, until an expiry. A *refusal* says that a callee does not
want calls from a caller (or from any marketing caller, ``*``) any more. Both
arrive signed by a participant; here they are plain value objects whose callee
is already a keyed hash (the raw number never reaches a store).

The decision for one call (``decide``) answers the consent state (consented,
refused, none), whether the call's time lies inside the allowed hours in the
callee's local time, and whether that blocks the call: a *marketing* call to a
callee who refused, or outside the allowed hours, is blocked whatever the
caller's reputation. Calls that are not marketing are never blocked here.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Iterable, Sequence
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import timezone as phone_timezones

from numrep.core.categories import CATEGORIES, Kind
from numrep.core.errors import InvalidArgument

ANY_CALLER = "*"  # a refusal of every marketing caller
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MINUTES_PER_DAY = 24 * 60
UNKNOWN_ZONE = "Etc/Unknown"  # what phonenumbers answers for a number it cannot place


class ConsentState(enum.Enum):
    NONE = "none"
    CONSENTED = "consented"
    REFUSED = "refused"


class RecordKind(enum.Enum):
    CONSENT = "consent"
    REFUSAL = "refusal"


# --- calling hours ----------------------------------------------------------------
@dataclass(frozen=True)
class CallingWindow:
    """Local wall-clock minutes ``[start, end)`` on the given weekdays (0 = Monday)."""

    days: frozenset[int]
    start: int  # minutes after local midnight, inclusive
    end: int    # minutes after local midnight, exclusive; 1440 = midnight

    def contains(self, local: datetime) -> bool:
        minute = local.hour * 60 + local.minute
        return local.weekday() in self.days and self.start <= minute < self.end

    def describe(self) -> str:
        return f"{_describe_days(self.days)} {_hhmm(self.start)}-{_hhmm(self.end)}"


@dataclass(frozen=True)
class CallingHours:
    """Allowed calling hours: a call is inside when any window contains its local time.

    Text form (claims, CLI, configuration): windows separated by ``;``, each
    ``DAYS HH:MM-HH:MM`` where DAYS is a day (``mon``) or a range (``mon-fri``,
    ``sat-sun``); ``24:00`` ends a window at midnight. A window may not cross
    midnight: write ``fri 20:00-24:00; sat 00:00-02:00`` instead.
    """

    windows: tuple[CallingWindow, ...]

    def allows(self, local: datetime) -> bool:
        return any(w.contains(local) for w in self.windows)

    def describe(self) -> str:
        return "; ".join(w.describe() for w in self.windows)

    @classmethod
    def parse(cls, text: str) -> "CallingHours":
        """The hours in ``text`` or ``InvalidArgument`` (reason ``bad_hours``)."""
        if not isinstance(text, str) or not text.strip():
            raise InvalidArgument("calling hours are empty; write e.g. 'mon-fri 09:00-20:00; sat 10:00-14:00'", "bad_hours")
        if len(text) > 512:
            raise InvalidArgument("calling hours longer than 512 characters", "bad_hours")
        windows = tuple(_parse_window(part.strip()) for part in text.split(";") if part.strip())
        if not windows:
            raise InvalidArgument("calling hours name no window", "bad_hours")
        return cls(windows)


# 47 CFR 64.1200(c)(1) (TCPA): no telephone solicitation before 8 am or after 9 pm
# at the called party's location. Used when a consent record names no hours.
DEFAULT_CALLING_HOURS = CallingHours((CallingWindow(frozenset(range(7)), 8 * 60, 21 * 60),))

_WINDOW = re.compile(r"^([a-z]{3})(?:-([a-z]{3}))?\s+(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})$")


def _parse_window(text: str) -> CallingWindow:
    match = _WINDOW.match(text.lower())
    if not match:
        raise InvalidArgument(f"calling window {text!r} is not 'DAYS HH:MM-HH:MM' (e.g. 'mon-fri 09:00-20:00')", "bad_hours")
    first, last, h1, m1, h2, m2 = match.groups()
    for day in (first, last):
        if day is not None and day not in WEEKDAYS:
            raise InvalidArgument(f"unknown weekday {day!r} in {text!r}; use {', '.join(WEEKDAYS)}", "bad_hours")
    a, b = WEEKDAYS.index(first), WEEKDAYS.index(last or first)
    days = frozenset((a + i) % 7 for i in range((b - a) % 7 + 1))
    start, end = int(h1) * 60 + int(m1), int(h2) * 60 + int(m2)
    if int(m1) > 59 or int(m2) > 59 or start >= MINUTES_PER_DAY or end > MINUTES_PER_DAY:
        raise InvalidArgument(f"calling window {text!r} has a time outside 00:00-24:00", "bad_hours")
    if end <= start:
        raise InvalidArgument(f"calling window {text!r} ends before it starts (split windows that cross midnight)", "bad_hours")
    return CallingWindow(days, start, end)


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _describe_days(days: frozenset[int]) -> str:
    if len(days) == 7:
        return "mon-sun"
    ordered = sorted(days)
    # a contiguous run, possibly wrapping past Sunday (sat-mon)
    for start in ordered:
        run = [(start + i) % 7 for i in range(len(ordered))]
        if set(run) == days:
            return WEEKDAYS[start] if len(run) == 1 else f"{WEEKDAYS[run[0]]}-{WEEKDAYS[run[-1]]}"
    raise ValueError("days are not one contiguous run")  # parse() only builds runs; split others into windows


# --- time zones ----------------------------------------------------------------------
def time_zone(name: str) -> ZoneInfo:
    """The IANA zone ``name`` or ``InvalidArgument`` (reason ``unknown_time_zone``)."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidArgument(f"unknown time zone {name!r}; use an IANA name such as 'America/New_York'", "unknown_time_zone") from None


def callee_time_zones(e164: str) -> tuple[str, ...]:
    """The IANA zones the numbering plan places ``e164`` in (several for some
    mobile and non-geographic numbers; empty when it cannot place it)."""
    try:
        parsed = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return ()
    return tuple(z for z in phone_timezones.time_zones_for_number(parsed) if z != UNKNOWN_ZONE)


# --- records -----------------------------------------------------------------------
@dataclass(frozen=True)
class ConsentRecord:
    """A verified consent record or refusal, as stored: the callee only as a keyed hash."""

    id: str                      # "issuer/jti"
    kind: RecordKind
    issuer: str
    callers: tuple[str, ...]     # E.164 numbers; (ANY_CALLER,) in a refusal of every caller
    callee_hash: str             # HMAC of the callee's E.164 with the exchange's secret
    issued_at: datetime
    expires_at: datetime | None  # None: a refusal without end
    token_digest: str            # SHA-256 of the signed record (the signer keeps the token)
    enterprise: str = ""
    scope: tuple[str, ...] = ()  # consent: marketing category codes it covers
    evidence_hash: str = ""      # consent: "sha256:<hex>" of the proof the caller keeps
    hours: CallingHours | None = None  # consent: allowed hours (None: the default window)
    time_zone: str = ""          # consent: the callee's zone, when the record names it
    revoked_at: datetime | None = None

    def names(self, caller: str) -> bool:
        return caller in self.callers or ANY_CALLER in self.callers

    def covers(self, category: str) -> bool:
        """A scope entry covers itself and its sub-categories ("marketing" covers
        "marketing.loans"). A call of no specific marketing category ("marketing"
        or unknown) is covered by any marketing scope."""
        if category in ("", "marketing"):
            return bool(self.scope)
        return any(category == s or category.startswith(s + ".") for s in self.scope)

    def expired_at(self, at: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= at

    def revoked_by(self, at: datetime) -> bool:
        return self.revoked_at is not None and self.revoked_at <= at

    def live_at(self, at: datetime) -> bool:
        return self.issued_at <= at and not self.expired_at(at) and not self.revoked_by(at)


def is_marketing(category: str) -> bool:
    found = CATEGORIES.get(category)
    return found is not None and found.kind is Kind.MARKETING


# --- one call's decision --------------------------------------------------------------
@dataclass(frozen=True)
class CallFacts:
    """What a lookup knows about one call. ``callee`` is the raw E.164 number: it
    is used to hash and to find the callee's time zone, never stored."""

    caller: str
    callee: str
    at: datetime
    category: str  # the call's category: declared in the call context, else the caller's verdict


@dataclass(frozen=True)
class ConsentPolicy:
    default_hours: CallingHours = DEFAULT_CALLING_HOURS
    fallback_time_zone: str = "UTC"  # for a callee number no zone is known for
    max_consent_lifetime: timedelta = timedelta(days=3 * 366)
    max_refusal_lifetime: timedelta = timedelta(days=20 * 366)
    max_future_skew: timedelta = timedelta(minutes=5)
    max_callers: int = 100


@dataclass(frozen=True)
class ConsentCheck:
    state: ConsentState
    reason: str                 # why this state (see STATE_REASONS)
    within_allowed_hours: bool
    marketing: bool
    blocks: bool
    block_reason: str           # "callee_refused" | "outside_calling_hours" | ""
    explanation: str
    record_id: str = ""         # the consent or refusal that decided the state
    time_zones: tuple[str, ...] = ()
    allowed_hours: str = ""     # the window applied, in text form
    local_time: str = ""        # the call's time in the (first) callee zone


STATE_REASONS = {
    "consented": "a live consent covers this caller and category",
    "refused": "the callee refused this caller",
    "no_record": "no consent or refusal names this caller and callee",
    "consent_expired": "the consent expired",
    "consent_revoked": "the consent was revoked",
    "consent_out_of_scope": "the consent does not cover this category",
    "consent_not_yet_valid": "the consent was issued after the call's time",
}


def consent_state(records: Iterable[ConsentRecord], caller: str, category: str, at: datetime) -> tuple[ConsentState, str, ConsentRecord | None]:
    """The consent state between ``caller`` and one callee at ``at``, its reason, and the deciding record.

    A live refusal beats every consent issued at or before it; a consent issued
    after the latest live refusal re-opens calls (while it is live and in scope).
    """
    mine = [r for r in records if r.names(caller)]
    refusals = [r for r in mine if r.kind is RecordKind.REFUSAL and r.live_at(at)]
    refusal = max(refusals, key=lambda r: (r.issued_at, r.id), default=None)
    consents = [r for r in mine if r.kind is RecordKind.CONSENT and (refusal is None or r.issued_at > refusal.issued_at)]
    usable = [c for c in consents if c.live_at(at) and c.covers(category)]
    if usable:
        best = max(usable, key=lambda r: (r.issued_at, r.id))
        return ConsentState.CONSENTED, "consented", best
    if refusal is not None:
        return ConsentState.REFUSED, "refused", refusal
    for reason, test in (
        ("consent_out_of_scope", lambda c: c.live_at(at)),
        ("consent_revoked", lambda c: c.revoked_by(at)),
        ("consent_expired", lambda c: c.expired_at(at)),
        ("consent_not_yet_valid", lambda c: c.issued_at > at),
    ):
        found = [c for c in consents if test(c)]
        if found:
            return ConsentState.NONE, reason, max(found, key=lambda r: (r.issued_at, r.id))
    return ConsentState.NONE, "no_record", None


def decide(records: Sequence[ConsentRecord], call: CallFacts, policy: ConsentPolicy = ConsentPolicy()) -> ConsentCheck:
    """Consent state, calling hours and their effect for one call."""
    marketing = is_marketing(call.category)
    state, reason, record = consent_state(records, call.caller, call.category, call.at)
    consent = record if state is ConsentState.CONSENTED else None
    hours = consent.hours if consent is not None and consent.hours is not None else policy.default_hours
    if consent is not None and consent.time_zone:
        zones: tuple[str, ...] = (consent.time_zone,)
    else:
        zones = callee_time_zones(call.callee) or (policy.fallback_time_zone,)
    # Several candidate zones (a number the plan cannot place exactly): inside only if inside in all.
    within = all(hours.allows(call.at.astimezone(time_zone(z))) for z in zones)
    local = call.at.astimezone(time_zone(zones[0]))
    if marketing and state is ConsentState.REFUSED:
        block_reason = "callee_refused"
    elif marketing and not within:
        block_reason = "outside_calling_hours"
    else:
        block_reason = ""
    where = f"{local:%a %H:%M} {zones[0]}" + (f" (and {len(zones) - 1} more zones)" if len(zones) > 1 else "")
    parts = [f"Consent: {state.value} ({STATE_REASONS[reason]})",
             f"{'inside' if within else 'outside'} the allowed hours {hours.describe()} at {where}"]
    if block_reason == "callee_refused":
        parts.append("a marketing call to a callee who refused is blocked")
    elif block_reason:
        parts.append("a marketing call outside the allowed hours is blocked")
    elif not marketing:
        parts.append("not a marketing call, so consent does not change the action")
    return ConsentCheck(
        state=state,
        reason=reason,
        within_allowed_hours=within,
        marketing=marketing,
        blocks=bool(block_reason),
        block_reason=block_reason,
        explanation="; ".join(parts) + ".",
        record_id=record.id if record is not None else "",
        time_zones=zones,
        allowed_hours=hours.describe(),
        local_time=local.strftime("%Y-%m-%dT%H:%M%z"),
    )


__all__ = [
    "ANY_CALLER", "CallFacts", "CallingHours", "CallingWindow", "ConsentCheck", "ConsentPolicy", "ConsentRecord",
    "ConsentState", "DEFAULT_CALLING_HOURS", "RecordKind", "STATE_REASONS", "callee_time_zones", "consent_state",
    "decide", "is_marketing", "time_zone",
]
