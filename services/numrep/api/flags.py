from __future__ import annotations

import grpc

from numrep.api.auth import current_participant, run_blocking
from numrep.api.convert import from_timestamp, outcome_to_pb
from numrep.api.fair import FairTurns
from numrep.exchange import Exchange, FlagInput
from numrep.telemetry import Telemetry
from numrep.telemetry.instruments import add_each
from numrep.v1 import flags_pb2, flags_pb2_grpc


# Ingesting a batch recomputes the verdict of every number in it: seconds of worker-thread
# time for a large batch. Unbounded, a flood of batches takes every worker thread that
# lookups also run on, and carriers' lookups wait behind it (benchmarks/flag_flood.py).
# Waiting batches take turns by app, so one app's flood does not delay the others' batches.
MAX_CONCURRENT_FLAG_BATCHES = 1


class FlagsServicer(flags_pb2_grpc.FlagsServiceServicer):
    def __init__(self, exchange: Exchange, telemetry: Telemetry) -> None:
        self._exchange = exchange
        self._telemetry = telemetry
        self._ingesting = FairTurns(MAX_CONCURRENT_FLAG_BATCHES)

    async def SubmitFlags(self, request: flags_pb2.FlagBatch, context: grpc.aio.ServicerContext) -> flags_pb2.FlagBatchResult:
        flags = [
            FlagInput(f.number, f.category, f.reporter_id, from_timestamp(f.time) if f.HasField("time") else None, f.comment)
            for f in request.flags
        ]
        caller = current_participant()
        async with self._ingesting.turn(caller.id):  # waiting here costs no thread
            outcomes, replayed = await run_blocking(self._exchange.submit_flags, caller, request.batch_id, flags)
        add_each(self._telemetry.flags, ({"status": o.status, "reason": o.reason} for o in outcomes))
        return flags_pb2.FlagBatchResult(
            results=[outcome_to_pb(o) for o in outcomes],
            accepted=sum(o.status == "accepted" for o in outcomes),
            replayed_batch=replayed,
        )
