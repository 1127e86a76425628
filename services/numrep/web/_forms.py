"""The page's four forms: decoding a POST body and checking each field before
anything reaches the exchange. A bad field is a ``FieldError`` naming it, so
the page can show the message next to that input."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qsl

from numrep.core.categories import CATEGORIES
from numrep.core.errors import InvalidArgument

MAX_FIELDS = 16
FIELD_LIMITS = {
    "number": 64,
    "category": 64,
    "occurred_at": 32,
    "tz": 8,
    "text": 4000,
    "contact": 200,
    "evidence": 4000,
    "case_id": 128,
    "submission": 64,
}
# UTC offsets offered next to the complaint's date and time (a page without
# JavaScript cannot read the browser's zone).
TIME_ZONES = (
    "-12:00", "-11:00", "-10:00", "-09:30", "-09:00", "-08:00", "-07:00", "-06:00", "-05:00", "-04:00", "-03:30",
    "-03:00", "-02:00", "-01:00", "+00:00", "+01:00", "+02:00", "+03:00", "+03:30", "+04:00", "+04:30", "+05:00",
    "+05:30", "+05:45", "+06:00", "+06:30", "+07:00", "+08:00", "+09:00", "+09:30", "+10:00", "+11:00", "+12:00",
    "+13:00", "+14:00",
)
CLOCK_SKEW = timedelta(minutes=5)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


class FieldError(InvalidArgument):
    """A form field is missing or malformed; ``field`` names it ("" for the whole form)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message, reason="invalid_field")
        self.field = field


def parse_form(body: bytes) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body as field -> value; unknown
    fields are ignored, repeated or over-long ones refused."""
    try:
        text = body.decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, max_num_fields=MAX_FIELDS, errors="strict")
    except UnicodeDecodeError:
        raise FieldError("", "The form was not sent as UTF-8 text.") from None
    except ValueError:
        raise FieldError("", "The form has too many fields.") from None
    form: dict[str, str] = {}
    for name, value in pairs:
        limit = FIELD_LIMITS.get(name)
        if limit is None:
            continue
        if name in form:
            raise FieldError("", f"The field {name!r} was sent twice.")
        value = value.replace("\r\n", "\n")
        if len(value) > limit:
            raise FieldError(name, f"This field is too long: at most {limit} characters.")
        if _CONTROL.search(value):
            raise FieldError(name, "This field contains control characters.")
        form[name] = value
    return form


def required(form: dict[str, str], name: str, what: str) -> str:
    value = form.get(name, "").strip()
    if not value:
        raise FieldError(name, f"Please enter {what}.")
    return value


@dataclass(frozen=True)
class ComplaintInput:
    number: str
    category: str
    occurred_at: datetime | None
    text: str


@dataclass(frozen=True)
class DisputeInput:
    number: str
    contact: str
    evidence: str


def complaint_input(form: dict[str, str], now: datetime) -> ComplaintInput:
    number = required(form, "number", "the number that called you")
    category = required(form, "category", "what kind of call it was")
    known = CATEGORIES.get(category)
    if known is None or not known.is_spam:
        raise FieldError("category", "Please choose one of the listed kinds of call.")
    when = occurred_at(form, now)
    return ComplaintInput(number, category, when, required(form, "text", "a few words about the call"))


def occurred_at(form: dict[str, str], now: datetime) -> datetime | None:
    raw = form.get("occurred_at", "").strip()
    if not raw:
        return None
    offset = form.get("tz", "+00:00")
    if offset not in TIME_ZONES:
        raise FieldError("tz", "Please choose a time zone from the list.")
    try:
        local = datetime.fromisoformat(raw)
    except ValueError:
        raise FieldError("occurred_at", "Please give the date and time as YYYY-MM-DD HH:MM.") from None
    if local.tzinfo is not None:
        raise FieldError("occurred_at", "Please give the date and time without a time zone; choose the zone below.")
    sign = 1 if offset[0] == "+" else -1
    hours, minutes = int(offset[1:3]), int(offset[4:6])
    zone = timezone(sign * timedelta(hours=hours, minutes=minutes))
    when = local.replace(tzinfo=zone).astimezone(timezone.utc)
    if when > now + CLOCK_SKEW:
        raise FieldError("occurred_at", "That time is in the future.")
    return when


def dispute_input(form: dict[str, str]) -> DisputeInput:
    return DisputeInput(
        number=required(form, "number", "your phone number"),
        contact=required(form, "contact", "how we can reach you"),
        evidence=required(form, "evidence", "why the label is wrong"),
    )


def case_id_input(form: dict[str, str]) -> str:
    return required(form, "case_id", "the case id you were given")
