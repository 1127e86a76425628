"""Per-call lookups over one long-lived ``LookupStream`` (numrep.v1).

A Lookup call costs the exchange a whole gRPC call; a lookup on an open stream
costs it one message, or a share of one. A stream writes at most once per
``write_interval`` (1 ms by default): a lookup asked sooner after the last write
waits for the next, and leaves with every other asked meanwhile; the exchange
answers lookups read together in one message too. Under load that is what keeps
a message from costing the exchange more than its lookups do (at 4,000 lookups/s,
one write per lookup took 1.2 of the exchange's cores, one per millisecond 0.65);
a lookup asked after a quiet spell leaves at once. Holding lookups back only
while an answer is due (Nagle's rule) was measured and not kept: one stream at
4,000/s took 0.68-0.80 of the exchange's cores against 0.63-0.65. The
stream is authenticated once, when it opens, with the metadata the caller gives
(a bearer token, a call token, or none over a certificate-bound connection).

Answers arrive as they are ready and are matched to lookups by id. A lookup
whose caller gave up is forgotten; its answer, if it comes, is dropped. The
stream is replaced after ``rotate_after`` seconds (before the exchange's own
limit on how long one may stay open): new lookups go to a new stream while the
old one finishes its answers. When a stream fails, every lookup waiting on it
gets the failure as a ``grpc.aio.AioRpcError``, and the next lookup opens a new
stream. A stream that stops answering while its connection stays up (a stuck
path between the two ends, which keepalive pings do not see) is replaced too:
once ``STALLED_LOOKUPS`` lookups written on it in a row were given up, and no
answer has come on it for ``stall_after`` seconds. Late answers (a slow exchange)
keep a stream; silence ends it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import math
import threading
import time
from typing import Any, Callable, Sequence

import grpc

from numrep.v1 import lookup_pb2, lookup_pb2_grpc

DEFAULT_ROTATE_AFTER = 600.0  # seconds; the exchange allows an hour by default
MAX_LOOKUPS_PER_REQUEST = 1000  # the exchange's default: a request with more ends the stream
EXPIRY_MARGIN = 5.0  # seconds before its credential ends that a stream is replaced
DEFAULT_WRITE_INTERVAL = 0.001  # seconds: at most one write per stream this often
STALLED_LOOKUPS = 3  # written lookups given up in a row, no answer between, before a silent stream is replaced
DEFAULT_STALL_AFTER = 1.0  # seconds without an answer on a stream that many were given up on, before it is replaced


class _Open:
    """One stream call, the lookups waiting on it and those not yet written."""

    def __init__(self, call: grpc.aio.StreamStreamCall, retire_at: float) -> None:
        self.call = call
        self.retire_at = retire_at  # on the client's clock: no new lookups from then
        self.waiting: dict[int, asyncio.Future[lookup_pb2.StreamAnswer]] = {}
        self.unsent: list[lookup_pb2.StreamLookup] = []
        self.writer: asyncio.Task[None] | None = None
        self.reader: asyncio.Task[None] | None = None
        self.retiring = False
        self.ended = False
        self.admitted = False  # the exchange's initial metadata came: it admitted the stream
        self.wrote_at = float("-inf")  # the event loop's time of the last write
        self.answered_at = asyncio.get_running_loop().time()  # of the last answer (or the opening)
        self.given_up = 0  # written lookups given up on since the last answer


class LookupStreamClient:
    """Lookups multiplexed over one stream at a time; use it from one event loop."""

    def __init__(
        self,
        stub: lookup_pb2_grpc.LookupServiceStub,
        metadata: Callable[[], Sequence[tuple[str, str]]],
        *,
        rotate_after: float = DEFAULT_ROTATE_AFTER,
        clock: Callable[[], float] = time.monotonic,
        max_lookups: int = MAX_LOOKUPS_PER_REQUEST,
        valid_until: Callable[[Sequence[tuple[str, str]]], float | None] = lambda metadata: None,
        write_interval: float = DEFAULT_WRITE_INTERVAL,
        stall_after: float = DEFAULT_STALL_AFTER,
    ) -> None:
        """``metadata``: what opens each stream (called once per stream);
        ``valid_until(metadata)``: when (epoch seconds) the credential in that
        metadata ends (a call session's expiry, which ends the stream too), or None: the
        stream is replaced ``EXPIRY_MARGIN`` before then; ``max_lookups``: the most
        lookups one request carries; ``write_interval`` (seconds): the least time
        between two writes on a stream (0: write whenever a lookup is asked);
        ``stall_after`` (seconds): how long a stream on which ``STALLED_LOOKUPS``
        written lookups in a row were given up may go without an answer before it
        is replaced."""
        self._stub = stub
        self._write_interval = checked_write_interval(write_interval)
        self._stall_after = stall_after
        self._metadata = metadata
        self._rotate_after = rotate_after
        self._max_lookups = max_lookups
        self._valid_until = valid_until
        self._clock = clock
        self._ids = itertools.count(1)
        self._current: _Open | None = None
        self._streams: set[_Open] = set()
        self.opened = 0  # streams opened so far

    async def lookup(self, request: lookup_pb2.LookupRequest) -> lookup_pb2.StreamAnswer:
        """The exchange's answer: a verdict, or an error code and message for this
        lookup alone. Raises ``grpc.aio.AioRpcError`` when the stream fails."""
        stream = self._stream()
        lookup_id = next(self._ids)
        future: asyncio.Future[lookup_pb2.StreamAnswer] = asyncio.get_running_loop().create_future()
        stream.waiting[lookup_id] = future
        stream.unsent.append(lookup_pb2.StreamLookup(id=lookup_id, request=request))
        if stream.writer is None:
            stream.writer = asyncio.get_running_loop().create_task(self._write(stream))
        try:
            return await future
        finally:
            if stream.waiting.pop(lookup_id, None) is not None:  # given up before its answer came
                unsent = len(stream.unsent)
                stream.unsent[:] = [lookup for lookup in stream.unsent if lookup.id != lookup_id]  # unsent, it need not go
                if len(stream.unsent) == unsent:  # it was written
                    self._given_up(stream)

    def _given_up(self, stream: _Open) -> None:
        stream.given_up += 1
        silent = asyncio.get_running_loop().time() - stream.answered_at
        if stream.given_up >= STALLED_LOOKUPS and silent >= self._stall_after and not stream.ended:
            stream.call.cancel()
            self._end(stream, _failure(grpc.StatusCode.UNAVAILABLE,
                                       f"the exchange stopped answering on the lookup stream ({stream.given_up} lookups in a "
                                       f"row given up, no answer for {silent:.1f} s): the next lookup opens a new one"))

    async def close(self) -> None:
        """Cancel every open stream; lookups still waiting get CANCELLED."""
        for stream in list(self._streams):
            stream.call.cancel()
            for task in (stream.writer, stream.reader):
                if task is not None:
                    task.cancel()
            self._end(stream, _failure(grpc.StatusCode.CANCELLED, "the lookup stream client was closed"))
        self._current = None

    def _stream(self) -> _Open:
        current, now = self._current, self._clock()
        if current is not None and not current.ended and now < current.retire_at:
            return current
        if current is not None and not current.ended:
            self._retire(current)
        metadata = tuple(self._metadata())
        retire_at, until = now + self._rotate_after, self._valid_until(metadata)
        if until is not None:
            retire_at = min(retire_at, now + until - time.time() - EXPIRY_MARGIN)
        stream = _Open(self._stub.LookupStream(metadata=metadata), retire_at)
        stream.reader = asyncio.get_running_loop().create_task(self._read(stream))
        self._streams.add(stream)
        self._current = stream
        self.opened += 1
        return stream

    def _retire(self, stream: _Open) -> None:
        """No new lookups on ``stream``: it ends once its answers are in."""
        stream.retiring = True
        if stream.writer is None:
            stream.writer = asyncio.get_running_loop().create_task(self._write(stream))

    async def _write(self, stream: _Open) -> None:
        try:
            if not stream.admitted:
                # Nothing is written before the exchange admits the stream: a write racing its
                # refusal can make grpcio report INTERNAL in place of the refusal (grpc/grpc#36066).
                await stream.call.initial_metadata()
                if stream.call.done():  # refused: the reader reports how
                    return
                stream.admitted = True
            loop = asyncio.get_running_loop()
            while stream.unsent and not stream.ended:
                wait = stream.wrote_at + self._write_interval - loop.time()
                if wait > 0:  # lookups asked meanwhile leave with these
                    await asyncio.sleep(wait)
                    if stream.ended:  # the reader has failed them all
                        return
                    continue  # the lookups given up meanwhile are gone: perhaps all
                lookups = stream.unsent[:self._max_lookups]
                del stream.unsent[:self._max_lookups]
                stream.wrote_at = loop.time()
                await stream.call.write(lookup_pb2.LookupStreamRequest(lookups=lookups))
            if stream.retiring:
                await stream.call.done_writing()
        except grpc.aio.AioRpcError as exc:
            self._end(stream, exc)
        except (asyncio.InvalidStateError, grpc.aio.UsageError):  # the call ended while writing: the reader says how
            pass
        finally:
            stream.writer = None

    async def _read(self, stream: _Open) -> None:
        failure = _failure(grpc.StatusCode.UNAVAILABLE, "the exchange ended the lookup stream")
        try:
            while True:
                response = await stream.call.read()
                if response is grpc.aio.EOF:
                    break
                stream.answered_at, stream.given_up = asyncio.get_running_loop().time(), 0
                for answer in response.answers:
                    future = stream.waiting.pop(answer.id, None)
                    if future is not None and not future.done():
                        future.set_result(answer)
        except grpc.aio.AioRpcError as exc:
            failure = exc
        except asyncio.CancelledError:  # close(), or the channel closed under the call
            failure = _failure(grpc.StatusCode.CANCELLED, "the lookup stream was cancelled")
            raise
        except Exception as exc:  # an answer this client cannot read: the stream is of no further use
            failure = _failure(grpc.StatusCode.INTERNAL, f"unreadable answer on the lookup stream: {type(exc).__name__}: {exc}")
            stream.call.cancel()
        finally:
            self._end(stream, failure)

    def _end(self, stream: _Open, failure: grpc.aio.AioRpcError) -> None:
        stream.ended = True
        self._streams.discard(stream)
        if self._current is stream:
            self._current = None
        waiting, stream.waiting = stream.waiting, {}
        for future in waiting.values():
            if not future.done():
                future.set_exception(failure)


class ThreadedLookupStream:
    """A ``LookupStreamClient`` for blocking callers on any thread: it runs on an
    event loop of its own, on a daemon thread, over a ``grpc.aio`` channel made
    there by ``open_channel``. ``lookup`` hands a lookup over and returns at once."""

    def __init__(self, open_channel: Callable[[], grpc.aio.Channel], metadata: Callable[[], Sequence[tuple[str, str]]],
                 **options: Any) -> None:
        """``metadata`` (called on the stream's thread) and ``options``: as ``LookupStreamClient``'s."""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="numrep-lookup-stream", daemon=True)
        self._thread.start()
        self._lock = threading.Lock()
        self._closed = False

        async def start() -> tuple[grpc.aio.Channel, LookupStreamClient]:
            channel = open_channel()  # a grpc.aio channel belongs to the loop it was made on
            return channel, LookupStreamClient(lookup_pb2_grpc.LookupServiceStub(channel), metadata, **options)

        try:
            self.channel, self.client = asyncio.run_coroutine_threadsafe(start(), self._loop).result()
        except BaseException:
            self._stop_loop()
            raise

    def lookup(self, request: lookup_pb2.LookupRequest) -> concurrent.futures.Future[lookup_pb2.StreamAnswer]:
        """The answer to come, as ``LookupStreamClient.lookup`` gives it; cancel the
        future to give the lookup up (unwritten, it is then never sent). Once closed:
        CANCELLED at once."""
        with self._lock:
            if not self._closed:
                return asyncio.run_coroutine_threadsafe(self.client.lookup(request), self._loop)
        refused: concurrent.futures.Future[lookup_pb2.StreamAnswer] = concurrent.futures.Future()
        refused.set_exception(_failure(grpc.StatusCode.CANCELLED, "the lookup stream client was closed"))
        return refused

    def ready(self, timeout: float) -> bool:
        """Is the stream's channel connected within ``timeout`` seconds?"""
        connected = asyncio.run_coroutine_threadsafe(asyncio.wait_for(self.channel.channel_ready(), timeout), self._loop)
        try:
            connected.result(timeout + 1.0)
            return True
        except (TimeoutError, asyncio.TimeoutError):
            connected.cancel()
            return False

    def close(self, timeout: float = 5.0) -> None:
        """Cancel the open streams (lookups still waiting get CANCELLED), close the
        channel and end the thread. Lookups handed over afterwards get CANCELLED."""
        with self._lock:
            if self._closed:
                return
            self._closed = True

        async def shut() -> None:
            await self.client.close()
            await self.channel.close()
            others = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
            if others:  # the lookups just failed take their failure; what is left is cancelled, as asyncio.run leaves its loop
                _, left = await asyncio.wait(others, timeout=1.0)
                for task in left:
                    task.cancel()
                await asyncio.gather(*left, return_exceptions=True)

        try:
            asyncio.run_coroutine_threadsafe(shut(), self._loop).result(timeout)
        except (TimeoutError, grpc.RpcError, OSError):  # the thread ends regardless
            pass
        finally:
            self._stop_loop(timeout)

    def _stop_loop(self, timeout: float = 5.0) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout)
        if not self._thread.is_alive():
            self._loop.close()


def checked_write_interval(seconds: float) -> float:
    if not 0 <= seconds < math.inf:
        raise ValueError(f"a stream's write interval is 0 or more seconds, and finite: not {seconds!r}")
    return seconds


def _failure(code: grpc.StatusCode, details: str) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details)
