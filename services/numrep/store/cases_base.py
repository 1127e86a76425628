"""The case store contract: complaints and disputes, with their particulars.

Every backend passes ``tests/store/test_cases_conformance.py``. As for the main
store (``numrep.store.base``): a write returns only once it is durable and is
atomic as seen by readers (a reader never sees half a case); reads return
``None`` or an empty list for what does not exist.

The store keeps the state machine's one race safe: ``resolve_case`` is a
compare-and-set from OPEN, so two regulators resolving the same case at once
cannot both win. Which transitions are allowed is the core's business
(``numrep.core.cases``), not the store's.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import datetime
from typing import final

from numrep.core.cases import OUTCOMES, CaseKind, CaseRecord, CaseStatus
from numrep.core.errors import InvalidArgument

MAX_LIST = 1000


def partitions(kind: CaseKind | None, status: CaseStatus | None) -> list[tuple[CaseKind, CaseStatus]]:
    """The (kind, status) pairs a filter covers; a pair that cannot exist (an
    upheld complaint) is left out."""
    kinds = [kind] if kind is not None else list(CaseKind)
    pairs = []
    for k in kinds:
        statuses = [CaseStatus.OPEN, *sorted(OUTCOMES[k], key=lambda s: s.value)]
        pairs += [(k, s) for s in statuses if status is None or s is status]
    return pairs


class CaseStore(ABC):
    @abstractmethod
    def add_case(self, record: CaseRecord) -> None:
        """Store a new case with its particulars and label links; ``AlreadyExists``
        if the case id is taken."""

    @abstractmethod
    def get_case(self, case_id: str) -> CaseRecord | None: ...

    @abstractmethod
    def resolve_case(self, case_id: str, status: CaseStatus, resolved_at: datetime, outcome: str) -> bool:
        """Set the status, resolution time and outcome of an OPEN case. False (and
        nothing changed) when the case does not exist or is not open any more."""

    @abstractmethod
    def cases_with(self, kind: CaseKind, status: CaseStatus, limit: int | None) -> list[CaseRecord]:
        """Cases of one kind and status, at most ``limit`` (None: all). Open cases
        oldest first (the regulator's queue, nearest deadline first); closed
        cases newest first. Ties are broken by case id."""

    @abstractmethod
    def disputes_for_publisher(self, publisher_id: str, limit: int) -> list[CaseRecord]:
        """Disputes linked to at least one label published by ``publisher_id``,
        newest first, at most ``limit``."""

    @final
    def list_cases(self, status: CaseStatus | None = None, kind: CaseKind | None = None, limit: int = 100) -> list[CaseRecord]:
        """The regulator's view: open cases first (oldest first), then closed ones
        (newest first), at most ``limit``."""
        if not 1 <= limit <= MAX_LIST:
            raise InvalidArgument(f"limit must be between 1 and {MAX_LIST}", "bad_limit")
        open_cases: list[CaseRecord] = []
        closed: list[CaseRecord] = []
        for k, s in partitions(kind, status):
            (open_cases if s is CaseStatus.OPEN else closed).extend(self.cases_with(k, s, limit))
        open_cases.sort(key=lambda r: (r.case.filed_at, r.case_id))
        closed.sort(key=lambda r: (r.case.filed_at, r.case_id), reverse=True)
        return (open_cases + closed)[:limit]

    def close(self) -> None:
        """Release what the store opened itself."""
