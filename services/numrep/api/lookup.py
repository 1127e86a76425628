from __future__ import annotations

import time
from collections import Counter
from typing import Sequence

import grpc
from opentelemetry import trace

from numrep.api.auth import run_blocking
from numrep.api.consent import consent_for_call, with_consent
from numrep.api.convert import ACTION_TO_PB, fill_verdict, timestamp, verdict_to_pb
from numrep.core.errors import NumrepError, StoreTimeout
from numrep.core.model import Verdict
from numrep.core.consent import ConsentCheck
from numrep.core.privacy import number_hash
from numrep.api.errors import code_number, status_for
from numrep.exchange import Exchange
from numrep.telemetry import Telemetry
from numrep.v1 import common_pb2, lookup_pb2, lookup_pb2_grpc


class LookupServicer(lookup_pb2_grpc.LookupServiceServicer):
    def __init__(self, exchange: Exchange, telemetry: Telemetry) -> None:
        self._exchange = exchange
        self._telemetry = telemetry

    async def Lookup(self, request: lookup_pb2.LookupRequest, context: grpc.aio.ServicerContext) -> common_pb2.Verdict:
        started = time.perf_counter()
        remaining = context.time_remaining()
        if remaining is not None and remaining <= 0:  # the carrier has given up: spare the store
            raise StoreTimeout("the call's deadline passed before the lookup started", "deadline_passed")
        verdict = await self._exchange.lookup_async(request.number, request.context.identity_header)
        if verdict is None:  # the verdict must be recomputed and stored first
            verdict = await run_blocking(self._exchange.lookup, request.number, request.context.identity_header)
        consent = None
        if request.context.callee:  # consent ledger: this call's consent state and calling hours (numrep.consent)
            verdict, consent = await run_blocking(consent_for_call, self._exchange, verdict, request.context)
        action = verdict.action.value
        trace.get_current_span().set_attribute("numrep.verdict.action", action)
        self._telemetry.verdicts.add(1, {"action": action})
        self._telemetry.lookup_duration.record((time.perf_counter() - started) * 1000)
        return with_consent(verdict_to_pb(verdict), consent)

    async def BatchLookup(
        self, request: lookup_pb2.BatchLookupRequest, context: grpc.aio.ServicerContext
    ) -> lookup_pb2.BatchLookupResponse:
        results = await run_blocking(self._batch_lookup, request.requests)
        response = lookup_pb2.BatchLookupResponse()
        add = response.results.add
        actions: Counter[str] = Counter()
        for asked, result in zip(request.requests, results):
            if isinstance(result, Exception):
                add(input=asked.number, error_code=code_number(status_for(result)), error_message=result.message)
            else:
                verdict, consent = result
                with_consent(fill_verdict(add(input=asked.number).verdict, verdict), consent)
                actions[verdict.action.value] += 1
        for action, count in actions.items():  # one counter update per action, not per number
            self._telemetry.verdicts.add(count, {"action": action})
        return response

    def _batch_lookup(self, requests: Sequence[lookup_pb2.LookupRequest]) -> list[tuple[Verdict, ConsentCheck | None] | NumrepError]:
        """The batch's verdicts with one store read, then, for each request whose
        call context names a callee or carries a caller-ID header, the answer for
        that one call (as Lookup gives it); a per-call error stands in its place."""
        results: list[tuple[Verdict, ConsentCheck | None] | NumrepError] = []
        for request, found in zip(requests, self._exchange.batch_lookup([r.number for r in requests])):
            if isinstance(found, NumrepError):
                results.append(found)
                continue
            call = request.context
            try:
                verdict = self._exchange.with_caller_id(found, call.identity_header) if call.identity_header else found
                results.append(consent_for_call(self._exchange, verdict, call) if call.callee else (verdict, None))
            except NumrepError as exc:
                results.append(exc)
        return results

    async def PrefixLookup(
        self, request: lookup_pb2.PrefixLookupRequest, context: grpc.aio.ServicerContext
    ) -> lookup_pb2.PrefixLookupResponse:
        verdicts, bits = await run_blocking(self._exchange.prefix_lookup, request.hash_prefix)
        return lookup_pb2.PrefixLookupResponse(
            entries=[
                lookup_pb2.PrefixEntry(
                    number_hash=number_hash(v.number),
                    action=ACTION_TO_PB[v.action],
                    category=v.category,
                    spam_probability=v.spam_probability,
                    expires_at=timestamp(v.expires_at),
                )
                for v in verdicts
            ],
            prefix_bits=bits,
        )
