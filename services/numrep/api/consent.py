"""ConsentService: thin translation between numrep.v1 messages and the consent
ledger (``numrep.consent``), plus the consent part of a Lookup."""

from __future__ import annotations

import grpc

from numrep.api.auth import current_participant, run_blocking
from numrep.api.convert import from_timestamp, outcome_to_pb
from numrep.consent import ConsentLedger
from numrep.core.consent import ConsentCheck, ConsentState
from numrep.core.errors import StoreUnavailable
from numrep.core.model import Verdict
from numrep.exchange import Exchange, ItemOutcome
from numrep.telemetry import Telemetry
from numrep.v1 import common_pb2, consent_pb2, consent_pb2_grpc, lookup_pb2

STATE_TO_PB = {
    ConsentState.NONE: consent_pb2.CONSENT_STATE_NONE,
    ConsentState.CONSENTED: consent_pb2.CONSENT_STATE_CONSENTED,
    ConsentState.REFUSED: consent_pb2.CONSENT_STATE_REFUSED,
}


def check_to_pb(check: ConsentCheck) -> consent_pb2.ConsentCheck:
    return consent_pb2.ConsentCheck(
        state=STATE_TO_PB[check.state],
        reason=check.reason,
        within_allowed_hours=check.within_allowed_hours,
        marketing=check.marketing,
        blocks=check.blocks,
        block_reason=check.block_reason,
        explanation=check.explanation,
        record_id=check.record_id,
        time_zones=list(check.time_zones),
        allowed_hours=check.allowed_hours,
        local_time=check.local_time,
    )


def _items(results: list[ItemOutcome]) -> consent_pb2.ConsentItemsResponse:
    return consent_pb2.ConsentItemsResponse(results=[outcome_to_pb(r) for r in results])


def ledger_of(exchange: Exchange) -> ConsentLedger:
    ledger = getattr(exchange, "consent", None)
    if ledger is None:
        raise StoreUnavailable("this exchange runs without a consent ledger", "no_consent_ledger")
    return ledger


def consent_for_call(exchange: Exchange, verdict: Verdict, context: lookup_pb2.CallContext) -> tuple[Verdict, ConsentCheck | None]:
    """The Lookup half of the ledger: ``verdict`` for this call to ``context.callee``
    (unchanged, without a consent check, on an exchange built without a ledger)."""
    ledger = getattr(exchange, "consent", None)
    if ledger is None:
        return verdict, None
    at = from_timestamp(context.call_time) if context.HasField("call_time") else None
    return ledger.apply(verdict, context.callee, at, context.call_category)


def with_consent(message: common_pb2.Verdict, check: ConsentCheck | None) -> common_pb2.Verdict:
    if check is not None:
        message.consent.CopyFrom(check_to_pb(check))
    return message


class ConsentServicer(consent_pb2_grpc.ConsentServiceServicer):
    def __init__(self, exchange: Exchange, telemetry: Telemetry) -> None:
        self._exchange = exchange
        self._telemetry = telemetry

    async def RegisterConsent(self, request: consent_pb2.RegisterConsentRequest, context: grpc.aio.ServicerContext) -> consent_pb2.ConsentItemsResponse:
        return _items(await run_blocking(ledger_of(self._exchange).register, current_participant(), list(request.records)))

    async def RecordRefusal(self, request: consent_pb2.RecordRefusalRequest, context: grpc.aio.ServicerContext) -> consent_pb2.ConsentItemsResponse:
        return _items(await run_blocking(ledger_of(self._exchange).refuse, current_participant(), list(request.refusals)))

    async def RevokeConsent(self, request: consent_pb2.RevokeConsentRequest, context: grpc.aio.ServicerContext) -> consent_pb2.ConsentItemsResponse:
        return _items(await run_blocking(ledger_of(self._exchange).revoke, current_participant(), list(request.record_ids)))

    async def GetConsentState(self, request: consent_pb2.GetConsentStateRequest, context: grpc.aio.ServicerContext) -> consent_pb2.ConsentCheck:
        at = from_timestamp(request.time) if request.HasField("time") else None
        check = await run_blocking(ledger_of(self._exchange).state_for, request.caller, request.callee, at, request.category)
        return check_to_pb(check)
