from __future__ import annotations

import grpc

from numrep.api.auth import current_participant, run_blocking
from numrep.api.convert import outcome_to_pb
from numrep.exchange import Exchange, ItemOutcome
from numrep.telemetry import Telemetry
from numrep.telemetry.instruments import add_each
from numrep.v1 import publish_pb2, publish_pb2_grpc


class PublishServicer(publish_pb2_grpc.PublishServiceServicer):
    def __init__(self, exchange: Exchange, telemetry: Telemetry) -> None:
        self._exchange = exchange
        self._telemetry = telemetry

    def _count(self, operation: str, outcomes: list[ItemOutcome]) -> None:
        add_each(self._telemetry.labels, ({"operation": operation, "status": o.status, "reason": o.reason} for o in outcomes))

    async def Publish(self, request: publish_pb2.PublishRequest, context: grpc.aio.ServicerContext) -> publish_pb2.PublishResponse:
        outcomes = await run_blocking(self._exchange.publish, current_participant(), list(request.labels))
        self._count("publish", outcomes)
        return publish_pb2.PublishResponse(results=[outcome_to_pb(o) for o in outcomes])

    async def Retract(self, request: publish_pb2.RetractRequest, context: grpc.aio.ServicerContext) -> publish_pb2.RetractResponse:
        outcomes = await run_blocking(self._exchange.retract, current_participant(), list(request.label_ids))
        self._count("retract", outcomes)
        return publish_pb2.RetractResponse(results=[outcome_to_pb(o) for o in outcomes])
