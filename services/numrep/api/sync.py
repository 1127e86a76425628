from __future__ import annotations

from typing import AsyncIterator

import grpc

from numrep.api.auth import run_blocking
from numrep.api.convert import sync_entry_to_pb
from numrep.exchange import Exchange
from numrep.v1 import sync_pb2, sync_pb2_grpc


class SyncServicer(sync_pb2_grpc.SyncServiceServicer):
    def __init__(self, exchange: Exchange) -> None:
        self._exchange = exchange

    async def Sync(self, request: sync_pb2.SyncRequest, context: grpc.aio.ServicerContext) -> AsyncIterator[sync_pb2.SyncChunk]:
        pages = await run_blocking(self._exchange.sync, request.cursor, request.chunk_size)
        while True:
            page = await run_blocking(next, pages, None)
            if page is None:
                return
            yield sync_pb2.SyncChunk(
                entries=[sync_entry_to_pb(e) for e in page.entries],
                cursor=page.cursor,
                snapshot=page.snapshot,
                caught_up=page.caught_up,
            )
