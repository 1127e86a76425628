"""One LookupStream call: lookups are read as they arrive, each is answered as
soon as its answer is ready (in place when nothing need wait, else by a task of
its own, so a slow read holds up no other lookup), and the answers ready at the
same moment leave together in one response: one gRPC message per lookup when
traffic is light, fewer under load, never a wait to fill a batch.

The caller was admitted when the stream opened (``numrep.api.auth``). Each lookup
is admitted again as one Lookup call would be for its rate; the key that opened
the stream is checked again at most every ``recheck_every`` seconds; the stream
ends once it has been open ``lifetime`` seconds. A refusal that ends the stream
is raised after the answers already under way are sent.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import AsyncIterator, Awaitable, Callable

import grpc

from numrep.api.errors import code_number, status_for
from numrep.core.errors import NumrepError, RateLimited, TooLarge, Unauthenticated
from numrep.v1 import lookup_pb2

log = logging.getLogger("numrep.api")

ANSWERED_PER_TURN = 64  # lookups answered in place before the event loop's other calls get a turn
# Lookups being answered, and answers not yet sent, on one stream: at it, the next lookup waits (and
# nothing more is read) until answers leave, so a caller that stops reading stops being read.
MAX_PENDING = 1024


class AnswerStream:
    def __init__(
        self,
        answer: Callable[[lookup_pb2.StreamLookup], Awaitable[bytes]],
        admit: Callable[[], None],
        recheck: Callable[[], None],
        *,
        lifetime: float,
        max_lookups: int,
        max_pending: int = MAX_PENDING,
        recheck_every: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        answer_now: Callable[[lookup_pb2.StreamLookup], bytes | None] | None = None,
    ) -> None:
        """``answer``: one lookup's encoded ``LookupStreamResponse.answers`` element;
        ``answer_now``: the same when it can be had without waiting, else None (it then
        spares the lookup a task of its own); ``admit`` and ``recheck`` raise a
        ``NumrepError`` to refuse one lookup, or the rest of the stream;
        ``max_lookups``: the most lookups one request may carry."""
        self._answer = answer
        self._answer_now = answer_now
        self._admit = admit
        self._recheck = recheck
        self._lifetime = lifetime
        self._max_lookups = max_lookups
        self._max_pending = max_pending
        self._recheck_every = recheck_every
        self._clock = clock

    async def serve(self, requests: AsyncIterator[lookup_pb2.LookupStreamRequest]) -> AsyncIterator[bytes]:
        """The stream's encoded ``LookupStreamResponse`` messages."""
        loop = asyncio.get_running_loop()
        ready: list[bytes] = []
        wake = asyncio.Event()
        room = asyncio.Event()
        answering: set[asyncio.Task[bytes]] = set()

        def held() -> int:
            """Lookups being answered and answers not yet sent: what the stream holds for its caller."""
            return len(answering) + len(ready)

        def finished(task: asyncio.Task[bytes]) -> None:
            answering.discard(task)
            if task.cancelled():
                room.set()
            else:
                ready.append(task.result())  # _answered never raises
            wake.set()

        async def read() -> None:
            closes_at = self._clock() + self._lifetime
            recheck_at = self._clock() + self._recheck_every
            try:
                async for message in requests:
                    now = self._clock()
                    if now >= closes_at:
                        raise Unauthenticated(f"this lookup stream has been open {self._lifetime:.0f} s, as long as the exchange "
                                              "allows (or as the call session or client certificate that opened it lasts); "
                                              "open a new one", "stream_expired")
                    if now >= recheck_at:
                        self._recheck()
                        recheck_at = now + self._recheck_every
                    if len(message.lookups) > self._max_lookups:
                        raise TooLarge(f"{len(message.lookups)} lookups in one request; the maximum is {self._max_lookups}",
                                       "batch_too_large")
                    answered_here = 0
                    for lookup in message.lookups:
                        while held() >= self._max_pending:  # a caller that reads no answers gets no more read
                            room.clear()
                            await room.wait()
                        try:
                            self._admit()
                        except NumrepError as exc:
                            ready.append(refusal(lookup.id, exc))
                            wake.set()
                            continue
                        if self._answer_now is not None:
                            now_answered = _guarded(self._answer_now, lookup)
                            if now_answered is not None:
                                ready.append(now_answered)
                                wake.set()
                                answered_here += 1
                                if answered_here % ANSWERED_PER_TURN == 0:  # let the loop's other calls run
                                    await asyncio.sleep(0)
                                continue
                        task = loop.create_task(self._answered(lookup))
                        answering.add(task)
                        task.add_done_callback(finished)
            finally:
                wake.set()

        reader = loop.create_task(read())
        try:
            while True:
                await wake.wait()
                wake.clear()
                if ready:
                    response = b"".join(ready)
                    ready.clear()
                    room.set()
                    yield response
                if reader.done() and not answering and not ready:
                    break
            reader.result()  # the refusal that ended the stream, if one did
        finally:
            reader.cancel()
            for task in list(answering):
                task.cancel()

    async def _answered(self, lookup: lookup_pb2.StreamLookup) -> bytes:
        try:
            return await self._answer(lookup)
        except Exception as exc:  # noqa: BLE001 - one lookup's failure must not leave its caller waiting
            return _failure(lookup.id, exc)


def _guarded(answer_now: Callable[[lookup_pb2.StreamLookup], bytes | None], lookup: lookup_pb2.StreamLookup) -> bytes | None:
    try:
        return answer_now(lookup)
    except Exception as exc:  # noqa: BLE001 - as AnswerStream._answered
        return _failure(lookup.id, exc)


def _failure(lookup_id: int, exc: Exception) -> bytes:
    """The answer to a lookup that raised ``exc``: its refusal, or INTERNAL for a fault."""
    if isinstance(exc, NumrepError):
        return refusal(lookup_id, exc)
    log.error("a stream lookup failed: %s", type(exc).__name__)  # not the message: it may quote the number
    return _failed(lookup_id, grpc.StatusCode.INTERNAL, "the exchange failed to answer this lookup")


def refusal(lookup_id: int, error: NumrepError) -> bytes:
    """The encoded answer saying why lookup ``lookup_id`` was refused."""
    wait = error.retry_after if isinstance(error, RateLimited) else 0.0
    return _failed(lookup_id, status_for(error), error.message, max(1, int(wait * 1000)) if wait else 0)


def _failed(lookup_id: int, code: grpc.StatusCode, message: str, retry_after_ms: int = 0) -> bytes:
    answer = lookup_pb2.StreamAnswer(id=lookup_id, error_code=code_number(code), error_message=message, retry_after_ms=retry_after_ms)
    return lookup_pb2.LookupStreamResponse(answers=[answer]).SerializeToString()
