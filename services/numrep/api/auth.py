"""Authentication, authorisation and error mapping as one server interceptor.

Every numrep.v1 method needs ``authorization: Bearer <JWT>``; the participant it
proves is available to servicers through ``current_participant()``. Health and
reflection stay open so probes and grpcurl work without credentials.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from typing import Any, Awaitable, Callable

import grpc

from numrep.api.errors import status_for
from numrep.core.errors import NumrepError
from numrep.core.model import Participant
from numrep.exchange import Exchange

log = logging.getLogger("numrep.api")

_PACKAGE_PREFIX = "/numrep.v1."
_participant: contextvars.ContextVar[Participant] = contextvars.ContextVar("numrep_participant")


def current_participant() -> Participant:
    return _participant.get()


def bearer_token(metadata: Any) -> str | None:
    for key, value in metadata or ():
        if key == "authorization":
            scheme, _, token = str(value).partition(" ")
            return token.strip() if scheme.lower() == "bearer" else None
    return None


class ExchangeInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, exchange: Exchange) -> None:
        self._exchange = exchange

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        method = details.method
        if handler is None or not method.startswith(_PACKAGE_PREFIX):
            return handler
        rpc = method[len(_PACKAGE_PREFIX):]  # "LookupService/Lookup"
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
        return handler

    def _admit(self, rpc: str, context: grpc.aio.ServicerContext) -> Participant:
        participant = self._exchange.authenticate(bearer_token(context.invocation_metadata()))
        self._exchange.authorize(rpc, participant)
        return participant

    def _unary(self, rpc: str, behavior: Callable[..., Any]) -> Callable[..., Any]:
        async def wrapper(request: Any, context: grpc.aio.ServicerContext) -> Any:
            try:
                _participant.set(self._admit(rpc, context))
                return await behavior(request, context)
            except NumrepError as exc:
                await _abort(rpc, context, exc)

        return wrapper

    def _stream(self, rpc: str, behavior: Callable[..., Any]) -> Callable[..., Any]:
        async def wrapper(request: Any, context: grpc.aio.ServicerContext) -> Any:
            try:
                _participant.set(self._admit(rpc, context))
                async for item in behavior(request, context):
                    yield item
            except NumrepError as exc:
                await _abort(rpc, context, exc)

        return wrapper


async def _abort(rpc: str, context: grpc.aio.ServicerContext, exc: NumrepError) -> None:
    code = status_for(exc)
    log.info("rpc refused", extra={"rpc": rpc, "status": code.name, "reason": exc.reason})
    await context.abort(code, exc.message)


async def run_blocking(function: Callable[..., Any], *args: Any) -> Any:
    """Run a store-touching call off the event loop."""
    return await asyncio.to_thread(function, *args)
