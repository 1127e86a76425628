from __future__ import annotations

import time
from collections import Counter
from typing import AsyncIterator, Sequence

import grpc
from opentelemetry import trace

from numrep.api.auth import current_proof, run_blocking
from numrep.api.consent import consent_for_call, with_consent
from numrep.api.convert import ACTION_TO_PB, fill_verdict, timestamp, verdict_to_pb
from numrep.core.errors import NumrepError, StoreTimeout
from numrep.core.model import Verdict
from numrep.core.consent import ConsentCheck
from numrep.core.privacy import number_hash
from numrep.api.errors import code_number, status_for
from numrep.api.lookup_stream import AnswerStream
from numrep.api.wire import VerdictEncodings, basic_view, batch_result_parts, encoded, stream_answer, verdict_with_expiry
from numrep.exchange import BatchAnswer, Exchange
from numrep.telemetry import Telemetry
from numrep.v1 import common_pb2, lookup_pb2, lookup_pb2_grpc


_NO_CALL = lookup_pb2.CallContext()


class LookupServicer(lookup_pb2_grpc.LookupServiceServicer):
    def __init__(self, exchange: Exchange, telemetry: Telemetry) -> None:
        self._exchange = exchange
        self._telemetry = telemetry
        # As many encodings as the exchange holds verdicts for batches: a batch cycling through them all stays encoded.
        held = max(VerdictEncodings.DEFAULT_CAPACITY, exchange.config.verdict_cache_entries)
        self._encodings = VerdictEncodings(held)
        self._basic_encodings = VerdictEncodings(held, basic=True)

    async def Lookup(self, request: lookup_pb2.LookupRequest, context: grpc.aio.ServicerContext) -> common_pb2.Verdict | bytes:
        """The verdict, sent as it is encoded (see ``add_to_server``): a stored verdict
        asked without a call context leaves as its stored encoding with this call's expiry."""
        started = time.perf_counter()
        remaining = context.time_remaining()
        if remaining is not None and remaining <= 0:  # the carrier has given up: spare the store
            raise StoreTimeout("the call's deadline passed before the lookup started", "deadline_passed")
        verdict, action = await self._answer(request)
        trace.get_current_span().set_attribute("numrep.verdict.action", action)
        self._answered(action, started)
        return verdict

    async def LookupStream(
        self, requests: AsyncIterator[lookup_pb2.LookupStreamRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[bytes]:
        """Encoded LookupStreamResponses (sent as they are: see ``add_to_server``);
        ``numrep.api.lookup_stream`` says how lookups on a stream are answered."""
        proof, exchange = current_proof(), self._exchange
        lifetime = exchange.config.lookup_stream_lifetime.total_seconds()
        if proof.until is not None:  # a stream lasts no longer than the call session or certificate that opened it
            lifetime = min(lifetime, (proof.until - exchange.clock()).total_seconds())
        await context.send_initial_metadata(())  # admitted: the client may write (see the proto)
        stream = AnswerStream(self._stream_answer, exchange.rate_gate(proof.participant, "lookup"),  # its role: checked at opening
                              lambda: exchange.check_still_proven(proof),
                              lifetime=lifetime,
                              max_lookups=exchange.config.limits.max_batch_lookup,
                              answer_now=self._stream_answer_now if exchange.store.reads_are_local else None)
        async for response in stream.serve(requests):
            yield response

    async def _stream_answer(self, lookup: lookup_pb2.StreamLookup) -> bytes:
        started = time.perf_counter()
        verdict, action = await self._answer(lookup.request)
        self._answered(action, started)
        return stream_answer(lookup.id, encoded(verdict))

    def _stream_answer_now(self, lookup: lookup_pb2.StreamLookup) -> bytes | None:
        """``_stream_answer`` when nothing need wait (a local store's read, no call context), else None."""
        call = lookup.request.context
        if call.identity_header or call.callee:
            return None
        started = time.perf_counter()
        answer = self._exchange.answer_now(lookup.request.number)
        if answer is None:
            return None
        verdict, action = self._plain(answer)
        self._answered(action, started)
        return stream_answer(lookup.id, encoded(verdict))

    async def _answer(self, request: lookup_pb2.LookupRequest) -> tuple[common_pb2.Verdict | bytes, str]:
        """The verdict as Lookup sends it (a stored verdict asked without a call
        context: its stored encoding with this call's expiry), and its action."""
        call = request.context
        answer = await self._exchange.answer_async(request.number)
        if answer is not None and not call.identity_header and not call.callee:
            return self._plain(answer)
        if answer is None:  # the verdict must be recomputed and stored first
            verdict = await run_blocking(self._exchange.lookup, request.number, call.identity_header)
        else:
            verdict = self._exchange.with_caller_id(answer.verdict, call.identity_header) if call.identity_header else answer.verdict
        consent = None
        if call.callee:  # consent ledger: this call's consent state and calling hours (numrep.consent)
            verdict, consent = await run_blocking(consent_for_call, self._exchange, verdict, call)
        return with_consent(verdict_to_pb(verdict), consent), verdict.action.value

    def _plain(self, answer: BatchAnswer) -> tuple[common_pb2.Verdict | bytes, str]:
        """The answer to a lookup without a call context, as Lookup sends it."""
        if answer.stored is not None:
            body, action = self._encodings(answer.stored)
            return verdict_with_expiry(body, answer.expires_at), action
        verdict = answer.verdict
        return verdict_to_pb(verdict), verdict.action.value

    def _answered(self, action: str, started: float) -> None:
        self._telemetry.verdicts.add(1, {"action": action})
        self._telemetry.lookup_duration.record((time.perf_counter() - started) * 1000)

    async def BatchLookup(self, request: lookup_pb2.BatchLookupRequest, context: grpc.aio.ServicerContext) -> bytes:
        """The encoded BatchLookupResponse (sent as it is: see ``add_to_server``)."""
        response, actions = await run_blocking(self._batch_response, request.requests,
                                               request.view == lookup_pb2.VERDICT_VIEW_BASIC)
        for action, count in actions.items():  # one counter update per action, not per number
            self._telemetry.verdicts.add(count, {"action": action})
        return response

    def _batch_response(self, requests: Sequence[lookup_pb2.LookupRequest], basic: bool = False) -> tuple[bytes, Counter[str]]:
        """The batch's results with one store read, encoded, and the count of each
        action answered. A stored verdict asked without a call context leaves as
        its stored encoding with this call's expiry; a request whose call context
        names a callee or carries a caller-ID header gets the answer for that one
        call (as Lookup gives it); a per-number error stands in its number's place.
        ``basic``: each verdict in ``VERDICT_VIEW_BASIC``."""
        encodings = self._basic_encodings if basic else self._encodings
        parts: list[bytes] = []
        actions: Counter[str] = Counter()
        asked = [request.number for request in requests]
        calls: list[lookup_pb2.CallContext | None] = [  # None: asked without a call context, the common case
            request.context if request.HasField("context") and (request.context.identity_header or request.context.callee) else None
            for request in requests
        ]
        for number, call, answer in zip(asked, calls, self._exchange.batch_answers(asked)):
            if isinstance(answer, NumrepError):
                parts.append(_error_result(number, answer))
            elif answer.stored is not None and call is None:
                body, action = encodings(answer.stored)
                parts.extend(batch_result_parts(number, body, answer.expires_at))
                actions[action] += 1
            else:
                call = call or _NO_CALL
                try:
                    verdict = self._exchange.with_caller_id(answer.verdict, call.identity_header) if call.identity_header else answer.verdict
                    verdict, consent = consent_for_call(self._exchange, verdict, call) if call.callee else (verdict, None)
                except NumrepError as exc:
                    parts.append(_error_result(number, exc))
                    continue
                parts.append(_verdict_result(number, verdict, consent, basic))
                actions[verdict.action.value] += 1
        return b"".join(parts), actions

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


def _verdict_result(asked: str, verdict: Verdict, consent: ConsentCheck | None, basic: bool) -> bytes:
    response = lookup_pb2.BatchLookupResponse()
    message = with_consent(fill_verdict(response.results.add(input=asked).verdict, verdict), consent)
    if basic:
        basic_view(message)
    return response.SerializeToString()


def _error_result(asked: str, error: NumrepError) -> bytes:
    response = lookup_pb2.BatchLookupResponse()
    response.results.add(input=asked, error_code=code_number(status_for(error)), error_message=error.message)
    return response.SerializeToString()


def add_to_server(servicer: LookupServicer, server: grpc.aio.Server) -> None:
    """``lookup_pb2_grpc.add_LookupServiceServicer_to_server``, except that a
    Lookup or BatchLookup response the servicer encoded leaves as it is."""
    handlers = {
        "Lookup": grpc.unary_unary_rpc_method_handler(
            servicer.Lookup, request_deserializer=lookup_pb2.LookupRequest.FromString, response_serializer=encoded),
        "BatchLookup": grpc.unary_unary_rpc_method_handler(
            servicer.BatchLookup, request_deserializer=lookup_pb2.BatchLookupRequest.FromString, response_serializer=encoded),
        "LookupStream": grpc.stream_stream_rpc_method_handler(
            servicer.LookupStream, request_deserializer=lookup_pb2.LookupStreamRequest.FromString, response_serializer=encoded),
        "PrefixLookup": grpc.unary_unary_rpc_method_handler(
            servicer.PrefixLookup, request_deserializer=lookup_pb2.PrefixLookupRequest.FromString,
            response_serializer=lookup_pb2.PrefixLookupResponse.SerializeToString),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("numrep.v1.LookupService", handlers),))
    server.add_registered_method_handlers("numrep.v1.LookupService", handlers)
