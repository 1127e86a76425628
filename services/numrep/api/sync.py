from __future__ import annotations

from datetime import datetime, timezone
from typing import AsyncIterator

import grpc

from numrep.api.auth import run_blocking
from numrep.api.convert import sync_page_bytes
from numrep.api.wire import encoded
from numrep.core.model import SyncPage
from numrep.exchange import Exchange
from numrep.telemetry import Telemetry
from numrep.v1 import sync_pb2, sync_pb2_grpc


class SyncServicer(sync_pb2_grpc.SyncServiceServicer):
    def __init__(self, exchange: Exchange, telemetry: Telemetry) -> None:
        self._exchange = exchange
        self._telemetry = telemetry

    async def Sync(self, request: sync_pb2.SyncRequest, context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
        pages = await run_blocking(self._exchange.sync, request.cursor, request.chunk_size)
        while True:
            page = await run_blocking(next, pages, None)
            if page is None:
                return
            self._record(page)
            yield sync_page_bytes(page)  # sent as they are: see add_to_server

    def _record(self, page: "SyncPage") -> None:
        """Chunk and entry counts (one counter update per kind and chunk: a snapshot
        streams hundreds of thousands of entries) and the lag of each delta."""
        phase = "snapshot" if page.snapshot else "delta"
        self._telemetry.sync_chunks.add(1, {"phase": phase})
        tombstones = sum(1 for entry in page.entries if entry.tombstone)
        for kind, count in (("upsert", len(page.entries) + page.encoded_count - tombstones), ("tombstone", tombstones)):
            if count:
                self._telemetry.sync_entries.add(count, {"phase": phase, "kind": kind})
        if not page.snapshot:
            now = datetime.now(timezone.utc)
            for entry in page.entries:
                if entry.verdict is not None:
                    self._telemetry.sync_lag.record(max(0.0, (now - entry.verdict.computed_at).total_seconds()))


def add_to_server(servicer: SyncServicer, server: grpc.aio.Server) -> None:
    """``sync_pb2_grpc.add_SyncServiceServicer_to_server``, except that chunks leave
    as the servicer encoded them: a snapshot's stored entries are never parsed."""
    handlers = {
        "Sync": grpc.unary_stream_rpc_method_handler(
            servicer.Sync, request_deserializer=sync_pb2.SyncRequest.FromString, response_serializer=encoded),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("numrep.v1.SyncService", handlers),))
    server.add_registered_method_handlers("numrep.v1.SyncService", handlers)
