"""The case desk: complaints with feedback, and redress for wrongly labelled
numbers (disputes). The one Python API behind the ``CaseService`` RPCs, the CLI
and the web page.

* Anyone may file a complaint or a dispute (through a participant, or the web
  page) and gets a case id: unguessable, and the complainant's only key to the
  case. ``get`` answers the status and the regulator's outcome for that id.
* A dispute is linked to the spam labels behind the number's verdict when it is
  filed; their publishers see it (``disputes_for_publisher``).
* Only the regulator lists cases, reads their particulars and resolves them.
  An upheld dispute retracts its labels as the regulator, through
  ``Exchange.retract``: the verdict is recomputed and handsets receive the
  change as a tombstone on their next sync.
* Confirmed complaints and upheld disputes are gold evidence for the trust
  engine (``gold_outcomes``).

Personal data (a complaint's text, a dispute's contact details and evidence,
the filer's reporter id) is stored for the regulator only: the ``Case`` value
carries none of it, error messages never quote it and nothing here logs it.
Reporter ids are pseudonymised like flag reporters before they are stored.
"""

from __future__ import annotations

import builtins
import logging
from dataclasses import replace
from datetime import datetime

from numrep.core.cases import (
    Case,
    CaseConfig,
    CaseKind,
    CaseRecord,
    CaseStatus,
    GoldOutcome,
    Particulars,
    check_occurred_at,
    check_resolution,
    clean_text,
    complaint_category,
    gold_outcome,
    new_case,
    publisher_of,
    whole_millis,
)
from numrep.core.categories import CATEGORIES
from numrep.core.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from numrep.core.model import Label, Participant, Role
from numrep.exchange import Exchange
from numrep.store.cases_base import CaseStore

__all__ = ["Case", "CaseConfig", "CaseDesk", "CaseKind", "CaseRecord", "CaseStatus", "GoldOutcome", "Particulars"]

log = logging.getLogger("numrep.cases")

MAX_CASE_ID = 64
MAX_PUBLISHER_DISPUTES = 1000


class CaseDesk:
    def __init__(self, store: CaseStore, exchange: Exchange, config: CaseConfig | None = None) -> None:
        self.store = store
        self.exchange = exchange
        self.config = config or CaseConfig()

    @classmethod
    def for_exchange(cls, exchange: Exchange, config: CaseConfig | None = None) -> "CaseDesk":
        """A desk whose cases live beside the exchange's own store (the same
        SQLite directory, or the same Cassandra keyspace and session)."""
        from numrep.store.factory import case_store_for

        return cls(case_store_for(exchange.store), exchange, config)

    @classmethod
    def of(cls, exchange: Exchange) -> "CaseDesk":
        """The exchange's one desk (``exchange.cases``, attached by
        ``numrep.server.build_exchange``), created and attached on first use, so
        the gRPC service and the web page share it."""
        desk = exchange.cases
        if desk is None:
            desk = exchange.cases = cls.for_exchange(exchange)
            if exchange.trust is not None:  # confirmed complaints and decided disputes anchor the trust fit
                exchange.trust.gold_sources.append(desk.gold_by_number)
                exchange.trust.overturned_sources.append(desk.overturned_labels)
        return desk

    @staticmethod
    def release(exchange: Exchange) -> None:
        """Close the exchange's desk, if it has one (with the exchange's store)."""
        if exchange.cases is not None:
            exchange.cases.close()

    def close(self) -> None:
        self.store.close()

    def _now(self) -> datetime:
        return whole_millis(self.exchange.clock())

    # --- filing (anyone) --------------------------------------------------------
    def file_complaint(
        self,
        raw_number: str,
        category: str,
        occurred_at: datetime | None,
        text: str,
        filed_by: str | None = None,
        *,
        via: str = "",
    ) -> Case:
        """File a complaint about a call from ``raw_number``. ``via`` names the
        participant that files it for its user ("" for the web page)."""
        number = self.exchange.normalize(raw_number)
        code = complaint_category(category)
        now = self._now()
        when = check_occurred_at(occurred_at, now, self.config)
        body = clean_text(text, "complaint text", self.config.max_text)
        case = new_case(CaseKind.COMPLAINT, number, code, now, self.config,
                        occurred_at=None if when is None else whole_millis(when))
        self.store.add_case(CaseRecord(case, Particulars(text=body, filed_by=self._filer(filed_by, via), filed_via=via)))
        log.info("complaint filed", extra={"case_kind": "complaint", "category": code})
        return case

    def file_dispute(self, raw_number: str, contact: str, evidence: str, filed_by: str | None = None, *, via: str = "") -> Case:
        """File a dispute by the owner of ``raw_number``. It is linked to the live
        spam labels of the number now: those an upheld dispute retracts."""
        number = self.exchange.normalize(raw_number)
        reach = clean_text(contact, "contact", self.config.max_contact)
        why = clean_text(evidence, "evidence", self.config.max_evidence)
        filer = self._filer(filed_by, via)
        labels = self.exchange.store.evidence(number).labels
        label_ids = tuple(sorted(lb.id for lb in labels if _is_spam(lb.category)))
        case = new_case(CaseKind.DISPUTE, number, "", self._now(), self.config, label_ids=label_ids)
        self.store.add_case(CaseRecord(case, Particulars(contact=reach, evidence=why, filed_by=filer, filed_via=via)))
        log.info("dispute filed", extra={"case_kind": "dispute", "labels": len(label_ids)})
        return case

    def _filer(self, filed_by: str | None, via: str) -> str:
        reporter = clean_text(filed_by, "filed_by", self.config.max_filed_by, required=False)
        # The same pseudonym as the reporter's flags through that app, so the two can be related.
        return self.exchange.pseudonym("reporter", via or "web", reporter) if reporter else ""

    # --- reading -----------------------------------------------------------------
    def get(self, case_id: str) -> Case:
        """The case's status and outcome, for whoever holds its id."""
        return self._record(case_id).case

    def details(self, regulator: Participant, case_id: str) -> CaseRecord:
        """The case with its particulars (personal data): the regulator only."""
        _check_regulator(regulator, "read a case's particulars")
        return self._record(case_id)

    def _record(self, case_id: str) -> CaseRecord:
        if not isinstance(case_id, str) or not case_id.strip():
            raise InvalidArgument("case id is empty", "bad_case_id")
        if len(case_id) > MAX_CASE_ID or not case_id.isascii():
            raise NotFound("no case has this id", "unknown_case")
        record = self.store.get_case(case_id.strip())
        if record is None:
            raise NotFound("no case has this id", "unknown_case")
        return record

    def list(self, status: CaseStatus | None = None, kind: CaseKind | None = None, limit: int = 100) -> builtins.list[Case]:
        """The regulator's view: open cases oldest first (the queue), then closed
        cases newest first. Callers must already know the caller is the regulator
        (the RPC layer checks the role; ``list_records`` checks it itself)."""
        return [r.case for r in self.store.list_cases(status, kind, limit)]

    def list_records(
        self, regulator: Participant, status: CaseStatus | None = None, kind: CaseKind | None = None, limit: int = 100
    ) -> builtins.list[CaseRecord]:
        """``list`` with the particulars: the regulator only."""
        _check_regulator(regulator, "list cases")
        return self.store.list_cases(status, kind, limit)

    def disputes_for_publisher(self, participant_id: str) -> builtins.list[Case]:
        """Disputes linked to labels ``participant_id`` published, newest first;
        each shows only that publisher's own label ids."""
        records = self.store.disputes_for_publisher(participant_id, MAX_PUBLISHER_DISPUTES)
        return [_own_labels(r.case, participant_id) for r in records]

    # --- resolving (the regulator) ---------------------------------------------------
    def resolve(self, regulator: Participant, case_id: str, outcome: CaseStatus, message: str) -> Case:
        """Close an open case with ``outcome`` and the regulator's words to the
        complainant or owner. An upheld dispute retracts its labels (as the
        regulator), which reaches handsets as tombstones.

        The case is closed first (a compare-and-set, so one resolution wins) and
        the labels retracted after: a retraction is idempotent, and
        ``reapply_upheld`` repeats the retractions after a crash in between."""
        _check_regulator(regulator, "resolve cases")
        words = clean_text(message, "outcome message", self.config.max_message)
        record = self._record(case_id)
        check_resolution(record.case, outcome)
        now = self._now()
        if not self.store.resolve_case(record.case_id, outcome, now, words):
            current = self._record(case_id).case
            raise FailedPrecondition(f"case {current.case_id} is {current.status.value} already; only an open case can be resolved",
                                     "case_closed")
        case = self._record(case_id).case
        if case.kind is CaseKind.DISPUTE and case.status is CaseStatus.UPHELD:
            self._retract(regulator, case)
        log.info("case resolved", extra={"case_kind": case.kind.value, "outcome": case.status.value})
        return case

    def _retract(self, regulator: Participant, case: Case) -> int:
        retracted = 0
        step = self.exchange.config.limits.max_retract
        for start in range(0, len(case.label_ids), step):
            outcomes = self.exchange.retract(regulator, case.label_ids[start:start + step])
            retracted += sum(1 for o in outcomes if o.status == "accepted")
        return retracted

    def reapply_upheld(self, regulator: Participant) -> int:
        """Retract again the labels of every upheld dispute (a no-op for those
        retracted already); for recovery after a crash between closing a dispute
        and retracting its labels. Returns how many labels were retracted now."""
        _check_regulator(regulator, "retract labels")
        return sum(self._retract(regulator, r.case) for r in self.store.cases_with(CaseKind.DISPUTE, CaseStatus.UPHELD, None))

    # --- trust ---------------------------------------------------------------------------
    def gold_outcomes(self) -> builtins.list[GoldOutcome]:
        """Every confirmed complaint (spam, in its category) and upheld dispute
        (legitimate), oldest decision first: ground truth for the trust engine."""
        found = []
        for kind, status in ((CaseKind.COMPLAINT, CaseStatus.CONFIRMED), (CaseKind.DISPUTE, CaseStatus.UPHELD)):
            for record in self.store.cases_with(kind, status, None):
                gold = gold_outcome(record.case)
                if gold is not None:
                    found.append(gold)
        return sorted(found, key=lambda g: (g.decided_at, g.case_id))

    def overturned_labels(self) -> builtins.list[Label]:
        """The labels upheld disputes retracted, as published: their publishers
        were wrong, and the trust fit must see it (a retracted label is otherwise
        gone from the evidence)."""
        found = []
        for record in self.store.cases_with(CaseKind.DISPUTE, CaseStatus.UPHELD, None):
            for label_id in record.case.label_ids:
                label = self.exchange.store.label_as_published(label_id)
                if label is not None:
                    found.append(label)
        return found

    def gold_by_number(self) -> dict[str, bool]:
        """``gold_outcomes`` as the trust engine's ``gold`` takes it (number ->
        spam?): the latest decision about a number wins, so a dispute upheld after
        a confirmed complaint makes the number legitimate, and the reverse."""
        return {g.number: g.is_spam for g in self.gold_outcomes()}


def _check_regulator(caller: Participant, what: str) -> None:
    if caller.role is not Role.REGULATOR:
        raise PermissionDenied(f"only the regulator may {what}", "not_regulator")


def _is_spam(code: str) -> bool:
    found = CATEGORIES.get(code)
    return found is not None and found.is_spam


def _own_labels(case: Case, publisher_id: str) -> Case:
    return replace(case, label_ids=tuple(i for i in case.label_ids if publisher_of(i) == publisher_id))
