from __future__ import annotations

import time

import grpc
from opentelemetry import trace

from numrep.api.auth import run_blocking
from numrep.api.convert import ACTION_TO_PB, timestamp, verdict_to_pb
from numrep.core.errors import StoreTimeout
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
        verdict = await run_blocking(self._exchange.lookup, request.number, request.context.identity_header)
        action = verdict.action.value
        trace.get_current_span().set_attribute("numrep.verdict.action", action)
        self._telemetry.verdicts.add(1, {"action": action})
        self._telemetry.lookup_duration.record((time.perf_counter() - started) * 1000)
        return verdict_to_pb(verdict)

    async def BatchLookup(
        self, request: lookup_pb2.BatchLookupRequest, context: grpc.aio.ServicerContext
    ) -> lookup_pb2.BatchLookupResponse:
        numbers = [r.number for r in request.requests]
        results = await run_blocking(self._exchange.batch_lookup, numbers)
        response = lookup_pb2.BatchLookupResponse()
        for raw, result in zip(numbers, results):
            item = response.results.add(input=raw)
            if isinstance(result, Exception):
                item.error_code = code_number(status_for(result))
                item.error_message = result.message
            else:
                item.verdict.CopyFrom(verdict_to_pb(result))
                self._telemetry.verdicts.add(1, {"action": result.action.value})
        return response

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
