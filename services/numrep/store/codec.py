"""Serialisation of value objects for stores that keep them as text."""

from __future__ import annotations

import functools
import json
from datetime import datetime, timezone
from typing import Any

from numrep.core.model import Action, Contribution, Listing, Role, Verdict


def to_epoch_ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


def from_epoch_ms(value: int) -> datetime:
    return datetime.fromtimestamp(value / 1000, tz=timezone.utc)


def verdict_to_json(verdict: Verdict) -> str:
    data: dict[str, Any] = {
        "n": verdict.number,
        "a": verdict.action.value,
        "c": verdict.category,
        "p": verdict.spam_probability,
        "f": verdict.confidence,
        "t": to_epoch_ms(verdict.computed_at),
        "x": to_epoch_ms(verdict.expires_at),
        "v": verdict.version,
        "e": verdict.explanation,
        "lc": verdict.label_count,
        "fc": verdict.flag_count,
        "u": None if verdict.valid_until is None else to_epoch_ms(verdict.valid_until),
        "te": verdict.trust_epoch,
        "k": [
            [c.participant_id, c.role.value, c.category, c.weight, c.kind, c.label_id, c.reporter_count, c.explanation]
            for c in verdict.contributions
        ],
    }
    return json.dumps(data, separators=(",", ":"))


_ACTIONS = {action.value: action for action in Action}  # a dict lookup costs a quarter of Enum(value)
_ROLES = {role.value: role for role in Role}


# Decoding is most of what reading a stored verdict costs (JSON, datetimes, frozen
# dataclasses). Verdicts are immutable and a number's stored text changes only
# when its verdict does, so the same text may share one decoded object: hot
# numbers (a robocaller dials thousands of people a minute) decode once.
VERDICT_MEMO = 16_384


@functools.lru_cache(maxsize=VERDICT_MEMO)
def verdict_from_json(text: str) -> Verdict:
    d = json.loads(text)
    return Verdict(
        number=d["n"],
        action=_ACTIONS[d["a"]],
        category=d["c"],
        spam_probability=d["p"],
        confidence=d["f"],
        contributions=tuple(
            Contribution(pid, _ROLES[role], cat, weight, kind, lid, count, text)
            for pid, role, cat, weight, kind, lid, count, text in d["k"]
        ),
        computed_at=from_epoch_ms(d["t"]),
        expires_at=from_epoch_ms(d["x"]),
        version=d["v"],
        explanation=d["e"],
        label_count=d["lc"],
        flag_count=d["fc"],
        valid_until=None if d.get("u") is None else from_epoch_ms(d["u"]),
        trust_epoch=d.get("te", 0),
    )


# Where a listing's fields sit in the stored verdict text (see ``verdict_to_json``),
# for stores that can read them without decoding the rest (SQLite's json_extract).
LISTING_PATHS = ("$.a", "$.c", "$.p", "$.v", "$.u")


def listing(number: str, action: str, category: str, probability: float, version: int, valid_until_ms: int | None,
            tokens: tuple[str, ...]) -> Listing:
    """A ``Listing`` from the fields at ``LISTING_PATHS``."""
    return Listing(number, _ACTIONS[action], category, probability, version,
                   None if valid_until_ms is None else from_epoch_ms(valid_until_ms), tokens)


def listing_of(verdict: Verdict, tokens: tuple[str, ...]) -> Listing:
    return Listing(verdict.number, verdict.action, verdict.category, verdict.spam_probability, verdict.version,
                   verdict.valid_until, tokens)
