"""The store contract. Every backend passes the same conformance suite
(``tests/store/test_conformance.py``).

Contract, for every method that writes: it returns only after the write is
durable (an acknowledged write survives a crash of the process), and it is
atomic (either all of it is stored or none of it). Reads return ``None`` or an
empty result for what does not exist; they never raise for "not found".

The change feed is the sync contract: an ordered log of *which number changed*
(and which label ids were retracted), not of the new state. A syncing handset
re-reads the number's current state, so replaying a part of the feed twice is
harmless and a reader can resume from any position the feed handed out.
"""

from __future__ import annotations

import asyncio
import enum
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime
from typing import Callable, Iterable, Iterator, Mapping, Sequence

from numrep.core.model import Evidence, Flag, FlagVote, Label, LabelVote, Listing, Participant, PublicKeyRecord, Verdict
from numrep.store.wire import entry_field

#: Given the stored verdicts (numbers without one left out) and the evidence of some numbers, the
#: verdicts to store and the label ids each one's change carries as retracted.
Recompute = Callable[[Mapping[str, Verdict], Mapping[str, Evidence]], list[tuple[Verdict, Sequence[str]]]]


class AddOutcome(enum.Enum):
    ADDED = "added"
    DUPLICATE = "duplicate"      # the same id is stored already
    RETRACTED = "retracted"      # the id was stored and later retracted: it stays retracted


@dataclass(frozen=True)
class Change:
    position: str                # opaque; pass to ``changes_after`` to resume after it
    number: str
    removed_label_id: str = ""


@dataclass(frozen=True)
class WirePage:
    """A page of the snapshot with its entries already encoded (``numrep.store.wire``)."""

    entries: bytes               # encoded SyncChunk.entries elements, ready to stream
    count: int                   # how many entries ``entries`` holds
    stale: tuple[str, ...]       # listed numbers of this page to recompute and send the slow way
    after: str                   # as ``listed_page``: where to continue, "" at the end


class Store(ABC):
    #: True when a read is a short local call (an embedded file with its page
    #: cache) that may run on the server's event loop; a networked store's reads
    #: wait on the network and must stay in worker threads.
    reads_are_local: bool = False
    #: True when the change feed shows every write the moment it commits, so a
    #: cache that follows the feed is never behind the store (``VerdictCache``).
    prompt_feed: bool = False
    #: True when ``rewrite_verdicts`` has no other write, from any process, between its
    #: read and its write (SQLite: one writer at a time); elsewhere only the calling
    #: process's own locks order rewrites of a number.
    serial_rewrites: bool = False

    # --- registry -------------------------------------------------------
    @abstractmethod
    def add_participant(self, participant: Participant) -> None:
        """Create a participant with its keys; ``AlreadyExists`` if the id is taken."""

    @abstractmethod
    def get_participant(self, participant_id: str) -> Participant | None: ...

    @abstractmethod
    def list_participants(self) -> list[Participant]: ...

    @abstractmethod
    def add_key(self, participant_id: str, key: PublicKeyRecord) -> None:
        """Add a key; ``NotFound`` for an unknown participant, ``AlreadyExists`` for a used kid."""

    @abstractmethod
    def revoke_key(self, participant_id: str, kid: str, at: datetime) -> None:
        """Mark a key revoked from ``at`` on; ``NotFound`` if there is no such key.
        Revoking a revoked key keeps the first revocation time."""

    # --- evidence ---------------------------------------------------------
    @abstractmethod
    def add_labels(self, labels: Sequence[Label]) -> list[AddOutcome]:
        """Store new labels atomically; one outcome per label, in order. A label
        whose id is stored already is left as it is."""

    @abstractmethod
    def get_label(self, label_id: str) -> Label | None:
        """A stored label that has not been retracted."""

    @abstractmethod
    def was_retracted(self, label_id: str) -> bool:
        """True when the label was stored and later retracted."""

    @abstractmethod
    def retract_label(self, label_id: str, at: datetime) -> bool:
        """Retract a stored label; False if it was not there or already retracted."""

    @abstractmethod
    def add_flags(self, app_id: str, batch_id: str, flags: Iterable[Flag], at: datetime) -> bool:
        """Store a batch of flags atomically, one vote per (number, app, reporter):
        a reporter's later flag replaces its earlier one. Returns False, storing
        nothing, when ``batch_id`` was already stored for ``app_id``."""

    @abstractmethod
    def evidence(self, number: str) -> Evidence:
        """Live labels (not retracted) and per-app flag tallies of ``number``."""

    def evidence_many(self, numbers: Sequence[str]) -> dict[str, Evidence]:
        """``evidence`` of each of ``numbers`` (duplicates read once), read
        together: a Publish batch recomputes its numbers from one read, not one
        per number. Stores that can read many numbers at once override this."""
        return {number: self.evidence(number) for number in dict.fromkeys(numbers)}

    # --- verdicts and the change feed ---------------------------------------
    @abstractmethod
    def get_verdict(self, number: str) -> Verdict | None:
        """The stored verdict: the per-call lookup is this one read."""

    async def get_verdict_async(self, number: str) -> Verdict | None:
        """``get_verdict`` for a server's event loop, without holding it up: a
        local store reads in place, others in a worker thread unless their
        driver can wait asynchronously (they override this)."""
        if self.reads_are_local:
            return self.get_verdict(number)
        return await asyncio.to_thread(self.get_verdict, number)

    @abstractmethod
    def get_verdicts(self, numbers: Sequence[str]) -> dict[str, Verdict]:
        """The stored verdicts of ``numbers`` by number, read together (a batch
        lookup's one query); numbers without a verdict are left out, duplicates
        are read once. Same answers as ``get_verdict`` per number."""

    @abstractmethod
    def put_verdicts(self, updates: Sequence[tuple[Verdict, Sequence[str]]]) -> None:
        """Store new verdicts atomically and append one change per number to the
        feed, carrying the label ids retracted with it."""

    def put_verdict(self, verdict: Verdict, removed_label_ids: Sequence[str] = ()) -> None:
        self.put_verdicts([(verdict, removed_label_ids)])

    def rewrite_verdicts(self, numbers: Sequence[str], recompute: Recompute) -> list[Verdict]:
        """Read the stored verdicts and the evidence of ``numbers``, and store (as
        ``put_verdicts``) the updates ``recompute`` makes of them; returns the verdicts
        stored. With ``serial_rewrites`` no other write lands between the read and the write."""
        updates = recompute(self.get_verdicts(numbers), self.evidence_many(numbers))
        if updates:
            self.put_verdicts(updates)
        return [verdict for verdict, _ in updates]

    @abstractmethod
    def feed_head(self) -> str:
        """The position of the newest change now (``changes_after`` it returns nothing new)."""

    @abstractmethod
    def changes_after(self, position: str, limit: int) -> list[Change]:
        """Up to ``limit`` changes after ``position`` (``""`` = the beginning), oldest first."""

    @abstractmethod
    def listed_page(self, after: str, limit: int) -> tuple[list[Listing], str]:
        """A page of the snapshot: numbers a handset should hold (verdict WARN or
        BLOCK), each as a ``Listing`` (the stored verdict's summary and its live
        labels' tokens in label-id order), in a stable order, after the opaque
        position ``after`` (``""`` = first page). Returns the page and the position
        to continue from, ``""`` when there is nothing more."""

    def listed_wire_page(self, after: str, limit: int, now: datetime) -> WirePage:
        """``listed_page`` with each listing whose verdict is still fresh at ``now``
        already encoded; the others are named in ``stale``. A store that keeps
        the encoded entries next to its verdicts serves them without decoding."""
        page, following = self.listed_page(after, limit)
        fresh = [listing for listing in page if not listing.is_stale(now)]
        stale = tuple(listing.number for listing in page if listing.is_stale(now))
        return WirePage(b"".join(entry_field(listing) for listing in fresh), len(fresh), stale, following)

    @abstractmethod
    def listed_in_hash_range(self, low: int, high: int, limit: int) -> list[Verdict]:
        """Listed verdicts whose ``numrep.core.privacy.hash32`` of the number lies
        in [low, high], at most ``limit``, in hash order (privacy-preserving lookup)."""

    # --- learned trust -----------------------------------------------------------
    @abstractmethod
    def flags_of(self, number: str) -> list[Flag]:
        """The number's individual flags (reporters already pseudonymised), one per
        (app, reporter): the input of a reporter-aware verdict."""

    @abstractmethod
    def label_as_published(self, label_id: str) -> Label | None:
        """The label, retracted or not (a refit judges its publisher by labels a
        decided dispute overturned too)."""

    @abstractmethod
    def scan_label_votes(self) -> Iterator[LabelVote]:
        """What a trust refit reads of every live (unretracted) label, once each, in no
        particular order: a few fields, never the tokens, so that a refit over millions
        of labels reads and holds little."""

    @abstractmethod
    def scan_flag_votes(self) -> Iterator[FlagVote]:
        """What a trust refit reads of every stored flag, in no particular order."""

    @abstractmethod
    def scan_verdict_numbers(self) -> Iterator[str]:
        """Every number that has a stored verdict (to recompute them after a refit)."""

    @abstractmethod
    def put_trust_snapshot(self, epoch: int, body: str, at: datetime) -> bool:
        """Store a trust epoch's snapshot (JSON). False when that epoch exists
        already (another replica fitted it first); nothing is overwritten."""

    @abstractmethod
    def latest_trust_epoch(self) -> int | None:
        """The newest stored trust epoch's number, without its snapshot (which can be tens of MB)."""

    @abstractmethod
    def latest_trust_snapshot(self) -> tuple[int, str] | None:
        """The newest stored trust epoch and its snapshot, if any."""

    @abstractmethod
    def trust_epochs(self) -> list[int]:
        """The trust epochs stored, newest first."""

    @abstractmethod
    def forget_trust_snapshots(self, before_epoch: int) -> int:
        """Remove the snapshots of the epochs before ``before_epoch`` (and on a store
        that writes a snapshot in parts, every part written for them); how many epochs."""

    # --- lifecycle -------------------------------------------------------------
    def ping(self) -> None:
        """Raise ``StoreUnavailable`` when the store cannot answer."""

    def close(self) -> None:
        """Release connections."""
