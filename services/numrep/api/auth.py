"""Authentication, authorisation and error mapping as one server interceptor.

Every numrep.v1 method needs ``authorization: Bearer <JWT>``, or, on a server that
requires client certificates, a connection whose certificate is bound to a
participant (``numrep.api.peer_identity``). The participant proven is available
to servicers through ``current_participant()``. Health and reflection stay open so
probes and grpcurl work without credentials.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
import time
from typing import Any, Awaitable, Callable

import grpc
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from numrep.api.errors import status_for
from numrep.api.peer_identity import PeerIdentity, peer_certificate
from numrep.core.errors import NumrepError, RateLimited
from numrep.core.model import Participant
from numrep.exchange import Exchange
from numrep.signing.tokens import Proof, bearer_token
from numrep.telemetry import Telemetry

log = logging.getLogger("numrep.api")

_PACKAGE_PREFIX = "/numrep.v1."
_proof: contextvars.ContextVar[Proof] = contextvars.ContextVar("numrep_proof")


def current_participant() -> Participant:
    return _proof.get().participant


def current_proof() -> Proof:
    return _proof.get()


class ExchangeInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, exchange: Exchange, telemetry: Telemetry | None = None, peers: PeerIdentity | None = None) -> None:
        """``peers``: authenticate by client certificate too; only for a server that
        requires client certificates signed by its configured CA."""
        self._exchange = exchange
        self._telemetry = telemetry or Telemetry.disabled()
        self._peers = peers
        # method -> (the servicer's handler, its wrapped form): the server hands out the
        # same handler for a method on every call, so it is wrapped once, not per call.
        self._wrapped: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        method = details.method
        if handler is None or not method.startswith(_PACKAGE_PREFIX):
            return handler
        cached = self._wrapped.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = self._wrap(method[len(_PACKAGE_PREFIX):], handler)
        self._wrapped[method] = (handler, wrapped)
        return wrapped

    def _wrap(self, rpc: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        """``handler`` behind authentication, authorisation and error mapping; ``rpc``
        is the method's name within the package ("LookupService/Lookup")."""
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                self._unary(rpc, handler.unary_unary),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                self._stream(rpc, handler.unary_stream),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.stream_stream is not None:  # the caller is admitted once, when its stream opens
            return grpc.stream_stream_rpc_method_handler(
                self._stream(rpc, handler.stream_stream),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler

    def _admit(self, rpc: str, context: grpc.aio.ServicerContext) -> Proof:
        span = trace.get_current_span()
        recording = span.is_recording()  # not when nobody collects spans: then every call skips the attributes
        if recording:
            span.set_attribute("numrep.rpc", rpc)
        proof = self._authenticate(context)
        participant = proof.participant
        if recording:
            span.set_attributes({"numrep.participant": participant.id, "numrep.role": participant.role.value,
                                 "numrep.auth": proof.via})  # via: token, certificate or session
        self._exchange.authorize(rpc, participant, proof.via)
        return proof

    def _authenticate(self, context: grpc.aio.ServicerContext) -> Proof:
        """The bearer token's participant (the token wins, but must agree with the
        certificate's), else the certificate's, else a missing-token refusal."""
        token = bearer_token(context.invocation_metadata())
        peers = self._peers
        peer = peer_certificate(context) if peers is not None else None
        if token or peers is None or peer is None:
            proof = self._exchange.prove(token)
            if peer is not None:
                PeerIdentity.check_token_agrees(peer, proof.participant)
            return proof
        return peers.prove(peer)

    def _unary(self, rpc: str, behavior: Callable[..., Any]) -> Callable[..., Any]:
        attributes = {"rpc": rpc}

        async def wrapper(request: Any, context: grpc.aio.ServicerContext) -> Any:
            started = time.perf_counter()
            refused: NumrepError | None = None
            try:
                _proof.set(self._admit(rpc, context))
                return await behavior(request, context)
            except NumrepError as exc:
                refused = exc
            finally:
                self._telemetry.rpc_duration.record((time.perf_counter() - started) * 1000, attributes)
            # Abort outside the except block: the abort's exception must not chain the
            # refusal, whose message (a phone number, say) tracing would record.
            await self._abort(rpc, context, refused)

        return wrapper

    def _stream(self, rpc: str, behavior: Callable[..., Any]) -> Callable[..., Any]:
        """``behavior`` answers with a stream: to one request, or to a stream of them."""
        async def wrapper(request: Any, context: grpc.aio.ServicerContext) -> Any:
            refused: NumrepError | None = None
            try:
                _proof.set(self._admit(rpc, context))
                async for item in behavior(request, context):
                    yield item
            except NumrepError as exc:
                refused = exc
            if refused is not None:
                await self._abort(rpc, context, refused)

        return wrapper

    async def _abort(self, rpc: str, context: grpc.aio.ServicerContext, exc: NumrepError) -> None:
        code = status_for(exc)
        log.info("rpc refused", extra={"rpc": rpc, "status": code.name, "reason": exc.reason})
        self._telemetry.rpc_refused.add(1, {"rpc": rpc, "status": code.name, "reason": exc.reason})
        span = trace.get_current_span()
        span.set_attribute("rpc.grpc.status_code", code.value[0])
        span.set_attribute("numrep.reason", exc.reason)
        span.set_status(Status(StatusCode.ERROR, f"{code.name}: {exc.reason}"))
        trailers: tuple[tuple[str, str], ...] = ()
        if isinstance(exc, RateLimited):
            trailers = (("retry-after-ms", str(max(1, int(exc.retry_after * 1000)))),)
        # The message may quote the caller's input (a phone number); the OpenTelemetry
        # context proxy would copy it into the span, so abort on the context it wraps.
        await getattr(context, "__wrapped__", context).abort(code, exc.message, trailers)


class _InFlight:
    """Store-touching calls still running in worker threads. A cancelled RPC does
    not stop its thread, so a server waits for these before it closes its store."""

    def __init__(self) -> None:
        self._count = 0
        self._lock = threading.Lock()

    def run(self, function: Callable[..., Any], *args: Any) -> Any:
        with self._lock:
            self._count += 1
        try:
            return function(*args)
        finally:
            with self._lock:
                self._count -= 1

    async def drained(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self._count and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        return self._count == 0


IN_FLIGHT = _InFlight()


async def run_blocking(function: Callable[..., Any], *args: Any) -> Any:
    """Run a store-touching call off the event loop."""
    return await asyncio.to_thread(IN_FLIGHT.run, function, *args)
