"""Value objects of the exchange. All frozen; times are timezone-aware UTC datetimes."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from functools import cached_property
from datetime import datetime
from typing import NamedTuple


class Role(enum.Enum):
    CARRIER = "carrier"
    HANDSET_VENDOR = "handset_vendor"
    APP_VENDOR = "app_vendor"
    REGULATOR = "regulator"


class Action(enum.Enum):
    UNKNOWN = "unknown"
    ALLOW = "allow"
    WARN = "warn"
    BLOCK = "block"


@dataclass(frozen=True)
class PublicKeyRecord:
    kid: str
    jwk: str  # public JWK, JSON text
    added_at: datetime
    revoked_at: datetime | None = None

    def valid_at(self, when: datetime) -> bool:
        return self.revoked_at is None or when < self.revoked_at


@dataclass(frozen=True)
class Participant:
    id: str
    role: Role
    display_name: str = ""
    keys: tuple[PublicKeyRecord, ...] = ()

    def key(self, kid: str) -> PublicKeyRecord | None:
        return next((k for k in self.keys if k.kid == kid), None)

    @cached_property
    def has_revoked_keys(self) -> bool:
        """Asked for every label behind every verdict answered: computed once."""
        return any(k.revoked_at is not None for k in self.keys)


@dataclass(frozen=True)
class Label:
    """A verified signed label as the exchange stores it: the token verbatim plus
    the claims it was verified to carry."""

    id: str  # "issuer/jti": unique per issuer, so one issuer cannot squat another's ids
    issuer: str
    number: str  # E.164
    category: str
    confidence: float
    issued_at: datetime
    expires_at: datetime
    token: str
    evidence: str = ""


class LabelVote(NamedTuple):
    """What a trust refit reads of a live label (a store scans these, not whole labels)."""

    number: str
    issuer: str
    category: str
    confidence: float
    issued_at: float  # epoch seconds

    @classmethod
    def of(cls, label: "Label") -> "LabelVote":
        return cls(label.number, label.issuer, label.category, label.confidence, label.issued_at.timestamp())


class FlagVote(NamedTuple):
    """What a trust refit reads of a stored flag."""

    number: str
    app_id: str
    reporter: str  # pseudonymised, as stored
    category: str
    time: float  # epoch seconds

    @classmethod
    def of(cls, flag: "Flag") -> "FlagVote":
        return cls(flag.number, flag.app_id, flag.reporter, flag.category, flag.time.timestamp())


@dataclass(frozen=True)
class Flag:
    """One end-user flag as stored: the reporter id is already pseudonymised."""

    number: str
    app_id: str
    reporter: str  # keyed hash, never the app's own id
    category: str
    time: datetime
    comment: str = ""


@dataclass(frozen=True)
class FlagTally:
    """An app's flags on one number: distinct reporters per category (one vote each)."""

    app_id: str
    reporters_by_category: tuple[tuple[str, int], ...]
    latest: datetime

    @property
    def reporters(self) -> int:
        return sum(n for _, n in self.reporters_by_category)


@dataclass(frozen=True)
class Evidence:
    """Everything the exchange knows about a number; the input of reconciliation."""

    number: str
    labels: tuple[Label, ...] = ()
    flags: tuple[FlagTally, ...] = ()


@dataclass(frozen=True)
class Contribution:
    participant_id: str
    role: Role
    category: str
    weight: float
    kind: str  # "label" | "flags"
    label_id: str = ""
    reporter_count: int = 0
    explanation: str = ""


@dataclass(frozen=True)
class Verdict:
    number: str
    action: Action
    category: str
    spam_probability: float
    confidence: float
    contributions: tuple[Contribution, ...]
    computed_at: datetime
    expires_at: datetime
    version: int = 0
    explanation: str = ""
    label_count: int = 0
    flag_count: int = 0
    valid_until: datetime | None = None  # when the first label behind it expires: recompute then
    caller_id_authentication: str = ""   # per call, never stored: see numrep.shaken
    caller_id_risk: float = 0.0
    trust_epoch: int = 0  # which learned-trust epoch produced it (0: role priors only)

    def is_stale(self, now: datetime) -> bool:
        return self.valid_until is not None and self.valid_until <= now

    def with_expiry(self, expires_at: datetime) -> "Verdict":
        """This verdict with another cache expiry (every lookup sets one)."""
        return self.copied(expires_at=expires_at)

    def copied(self, **changes: object) -> "Verdict":
        """``dataclasses.replace`` for fields known to be valid: the fields are copied
        directly instead of re-running ``__init__`` (about 10x cheaper), for the
        per-lookup copies of an already built verdict."""
        copy = object.__new__(Verdict)
        copy.__dict__.update(self.__dict__, **changes)
        return copy

    @property
    def is_listed(self) -> bool:
        """Whether a handset should hold this number (it warns or blocks)."""
        return self.action in (Action.WARN, Action.BLOCK)


class Listing(NamedTuple):
    """A listed number as a Sync snapshot carries it: the verdict's summary (a
    handset gets no contributions or explanation) and the signed tokens of its
    live labels, in label-id order. A named tuple, not a dataclass: a snapshot
    makes millions of them."""

    number: str
    action: Action
    category: str
    spam_probability: float
    version: int
    valid_until: datetime | None
    tokens: tuple[str, ...]

    def is_stale(self, now: datetime) -> bool:
        return self.valid_until is not None and self.valid_until <= now

    @property
    def is_listed(self) -> bool:
        return self.action in (Action.WARN, Action.BLOCK)


@dataclass(frozen=True)
class SyncEntry:
    """What a handset should now hold for one number: the verdict and the live
    labels' signed tokens, verbatim."""

    number: str
    verdict: Verdict | None
    tokens: tuple[str, ...] = ()
    removed_label_ids: tuple[str, ...] = ()

    @property
    def tombstone(self) -> bool:
        return self.verdict is None or not self.verdict.is_listed


@dataclass(frozen=True)
class SyncPage:
    entries: tuple[SyncEntry, ...]
    cursor: str
    snapshot: bool
    caught_up: bool
    extra: dict[str, str] = field(default_factory=dict)
    # More entries, already in the wire format (a snapshot's fresh entries, as the
    # store keeps them): ``encoded_count`` of them, opaque here, streamed verbatim.
    encoded: bytes = b""
    encoded_count: int = 0
