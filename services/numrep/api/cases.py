"""CaseService: complaints and disputes over gRPC. Thin: protobuf in, the case
desk (``numrep.cases``), protobuf out. Roles are checked by the interceptor
(``numrep.core.roles``); errors become status codes in ``numrep.api.errors``."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import AsyncIterator

import grpc

from numrep.api.auth import current_participant, current_proof, run_blocking
from numrep.api.convert import from_timestamp, timestamp
from numrep.cases import CaseDesk
from numrep.core.cases import Case, CaseKind, CaseRecord, CaseStatus
from numrep.core.errors import InvalidArgument
from numrep.core.model import Role
from numrep.exchange import Exchange
from numrep.telemetry import Telemetry
from numrep.v1 import cases_pb2, cases_pb2_grpc

KIND_TO_PB = {CaseKind.COMPLAINT: cases_pb2.CASE_KIND_COMPLAINT, CaseKind.DISPUTE: cases_pb2.CASE_KIND_DISPUTE}
KIND_FROM_PB = {v: k for k, v in KIND_TO_PB.items()}
STATUS_TO_PB = {
    CaseStatus.OPEN: cases_pb2.CASE_STATUS_OPEN,
    CaseStatus.CONFIRMED: cases_pb2.CASE_STATUS_CONFIRMED,
    CaseStatus.REJECTED: cases_pb2.CASE_STATUS_REJECTED,
    CaseStatus.UPHELD: cases_pb2.CASE_STATUS_UPHELD,
}
STATUS_FROM_PB = {v: k for k, v in STATUS_TO_PB.items()}
DEFAULT_LIMIT = 100
WATCH_POLL_SECONDS = 1.0  # how often a following WatchDisputes re-reads the publisher's disputes


def case_to_pb(case: Case, now: datetime, record: CaseRecord | None = None) -> cases_pb2.Case:
    """``record`` (with the particulars) only for the regulator."""
    message = cases_pb2.Case(
        case_id=case.case_id,
        kind=KIND_TO_PB[case.kind],
        number=case.number,
        category=case.category,
        status=STATUS_TO_PB[case.status],
        filed_at=timestamp(case.filed_at),
        deadline=timestamp(case.deadline),
        outcome=case.outcome,
        label_ids=list(case.label_ids),
        age_seconds=int(case.age(now).total_seconds()),
        overdue=case.overdue(now),
    )
    if case.resolved_at is not None:
        message.resolved_at.CopyFrom(timestamp(case.resolved_at))
    if case.occurred_at is not None:
        message.occurred_at.CopyFrom(timestamp(case.occurred_at))
    if record is not None:
        p = record.particulars
        message.particulars.CopyFrom(cases_pb2.CaseParticulars(
            text=p.text, contact=p.contact, evidence=p.evidence, filed_by=p.filed_by, filed_via=p.filed_via))
    return message


class CaseServicer(cases_pb2_grpc.CaseServiceServicer):
    def __init__(self, exchange: Exchange, telemetry: Telemetry, poll_seconds: float = WATCH_POLL_SECONDS) -> None:
        self._desk = CaseDesk.of(exchange)
        self._telemetry = telemetry
        self._poll_seconds = poll_seconds

    def _now(self) -> datetime:
        return self._desk.exchange.clock()

    async def FileComplaint(self, request: cases_pb2.FileComplaintRequest, context: grpc.aio.ServicerContext) -> cases_pb2.Case:
        occurred = from_timestamp(request.occurred_at) if request.HasField("occurred_at") else None
        case = await run_blocking(lambda: self._desk.file_complaint(
            request.number, request.category, occurred, request.text, request.reporter_id or None, via=current_participant().id))
        return case_to_pb(case, self._now())

    async def FileDispute(self, request: cases_pb2.FileDisputeRequest, context: grpc.aio.ServicerContext) -> cases_pb2.Case:
        case = await run_blocking(lambda: self._desk.file_dispute(
            request.number, request.contact, request.evidence, request.reporter_id or None, via=current_participant().id))
        return case_to_pb(case, self._now())

    async def GetCase(self, request: cases_pb2.GetCaseRequest, context: grpc.aio.ServicerContext) -> cases_pb2.Case:
        caller = current_participant()
        if caller.role is Role.REGULATOR:
            record = await run_blocking(self._desk.details, caller, request.case_id)
            return case_to_pb(record.case, self._now(), record)
        case = await run_blocking(self._desk.get, request.case_id)
        return case_to_pb(case, self._now())

    async def ListCases(self, request: cases_pb2.ListCasesRequest, context: grpc.aio.ServicerContext) -> cases_pb2.ListCasesResponse:
        kind = KIND_FROM_PB.get(request.kind) if request.kind else None
        status = STATUS_FROM_PB.get(request.status) if request.status else None
        if (request.kind and kind is None) or (request.status and status is None):
            raise InvalidArgument("unknown case kind or status", "bad_filter")
        records = await run_blocking(self._desk.list_records, current_participant(), status, kind, request.limit or DEFAULT_LIMIT)
        now = self._now()
        return cases_pb2.ListCasesResponse(cases=[case_to_pb(r.case, now, r) for r in records])

    async def ResolveCase(self, request: cases_pb2.ResolveCaseRequest, context: grpc.aio.ServicerContext) -> cases_pb2.Case:
        outcome = STATUS_FROM_PB.get(request.outcome)
        if outcome is None or outcome is CaseStatus.OPEN:
            raise InvalidArgument("outcome must be confirmed, rejected or upheld", "bad_outcome")
        case = await run_blocking(self._desk.resolve, current_participant(), request.case_id, outcome, request.message)
        return case_to_pb(case, self._now())

    async def ListDisputes(self, request: cases_pb2.ListDisputesRequest, context: grpc.aio.ServicerContext) -> cases_pb2.ListCasesResponse:
        cases = await run_blocking(self._desk.disputes_for_publisher, current_participant().id)
        now = self._now()
        return cases_pb2.ListCasesResponse(cases=[case_to_pb(c, now) for c in cases])

    async def WatchDisputes(self, request: cases_pb2.WatchDisputesRequest, context: grpc.aio.ServicerContext) -> AsyncIterator[cases_pb2.Case]:
        """Each dispute on the caller's labels, oldest first, then (following) each
        new one and each status change. It polls the store, so that every replica
        sees what any other one stored; disputes are rare, a read a second is cheap."""
        proof = current_proof()
        publisher = proof.participant.id
        sent: dict[str, CaseStatus] = {}
        while True:
            if request.follow:  # a stream that follows: it holds no longer than what opened it (key, session, certificate)
                self._desk.exchange.check_still_proven(proof)
            cases = await run_blocking(self._desk.disputes_for_publisher, publisher)
            now = self._now()
            for case in reversed(cases):
                if sent.get(case.case_id) is not case.status:
                    sent[case.case_id] = case.status
                    yield case_to_pb(case, now)
            if not request.follow:
                return
            await asyncio.sleep(self._poll_seconds)
