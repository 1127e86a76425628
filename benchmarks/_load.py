"""The load generator: a child process with its own event loop and gRPC
channels, driven by the parent one phase at a time.

* ``closed``: ``concurrency`` workers each send the next call as soon as the
  previous one returns; gives the maximum throughput (QPS) at that concurrency.
* ``open``: calls are *scheduled* at a fixed arrival rate, independent of how
  fast answers come back, and each call's latency is measured from its
  scheduled send time, so a slow server (or a stalled client) cannot hide
  latency by slowing the sender down (no coordinated omission). In-flight calls
  are capped; a call waiting for a slot keeps its scheduled time.

Bearer tokens: ``mint`` signs a fresh JWT per call inside the measured loop
(what a real client does), ``premint`` signs a pool before the phase starts
(isolates the server's cost), ``static`` reuses one token (baseline server,
which does not look at it; same metadata size), ``none`` sends no metadata
(mutual TLS with certificate identity: the connection authenticates),
``session`` opens a call session once before the phase and MACs a fresh call
token per call inside the loop (what the carrier SDK does;
``numrep.signing.sessions``).

With ``tls`` in the setup ({ca, cert, key} PEM paths) the channels are mutual TLS.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from collections import Counter, deque
from typing import Any, Awaitable, Callable

from benchmarks._procs import Child, GcPauses, child_entry, serve_commands
from benchmarks._stats import percentiles

GRPC_TIMEOUT = 10.0


class Tokens:
    def __init__(self, identity: Any, audience: str, target: str | None = None) -> None:
        self.identity = identity
        self.audience = audience
        self.target = target
        self.mode = "mint"
        self.pool: deque[str] = deque()
        self.inline = 0
        self._static: tuple[tuple[str, str], ...] = ()
        self._session: Any = None

    def prepare(self, mode: str, pool: int = 0) -> float:
        """Set the mode for the next phase; returns seconds spent pre-minting."""
        from numrep.signing.tokens import mint_token

        self.mode, self.inline = mode, 0
        self.pool.clear()
        started = time.perf_counter()
        if mode == "static":
            self._static = (("authorization", "Bearer " + mint_token(self.identity, self.audience)),)
        elif mode == "premint":
            self.pool.extend(mint_token(self.identity, self.audience) for _ in range(pool))
        elif mode == "session" and (self._session is None or self._session.expires_at.timestamp() - time.time() < 600):
            self._session = self._open_session()
        return time.perf_counter() - started

    def _open_session(self) -> Any:
        """A call session from the target (plaintext), opened with a signed token."""
        import grpc

        from numrep.signing.tokens import mint_token
        from numrep.v1 import registry_pb2, registry_pb2_grpc
        from numrep_client._sessions import session_from_pb

        with grpc.insecure_channel(self.target) as channel:
            reply = registry_pb2_grpc.RegistryServiceStub(channel).OpenSession(
                registry_pb2.OpenSessionRequest(), metadata=(("authorization", "Bearer " + mint_token(self.identity, self.audience)),),
                timeout=GRPC_TIMEOUT)
        return session_from_pb(reply)

    def metadata(self) -> tuple[tuple[str, str], ...]:
        from numrep.signing.sessions import mint_call_token
        from numrep.signing.tokens import mint_token

        if self.mode == "none":
            return ()
        if self.mode == "static":
            return self._static
        if self.mode == "session":
            return (("authorization", "Bearer " + mint_call_token(self._session, self.audience)),)
        if self.mode == "premint":
            if self.pool:
                return (("authorization", "Bearer " + self.pool.popleft()),)
            self.inline += 1
        return (("authorization", "Bearer " + mint_token(self.identity, self.audience)),)


def _channel(target: str, options: list[tuple[str, Any]], tls: dict | None) -> Any:
    import grpc

    if not tls:
        return grpc.aio.insecure_channel(target, options=options)
    read = lambda key: open(tls[key], "rb").read()  # noqa: E731
    return grpc.aio.secure_channel(target, grpc.ssl_channel_credentials(read("ca"), read("key"), read("cert")), options=options)


async def _answered(lookup: Awaitable[Any]) -> Any:
    """A stream lookup's answer; a refused lookup raises as a refused call would."""
    import grpc

    answer = await lookup
    if answer.error_code:
        code = next((c for c in grpc.StatusCode if c.value[0] == answer.error_code), grpc.StatusCode.UNKNOWN)
        raise grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), answer.error_message)
    return answer


def _ms(values: list[float]) -> list[float]:
    return [v * 1000.0 for v in values]


class LoadGen:
    def __init__(self, setup: dict) -> None:
        from numrep.signing.keys import Identity
        from numrep.v1 import lookup_pb2, lookup_pb2_grpc

        self.setup = setup
        self.target = setup.get("target")
        self.identity = Identity.from_json(setup["identity"]) if setup.get("identity") else None
        self.tokens = Tokens(self.identity, setup.get("audience", "numrep"), setup.get("target"))
        size = setup.get("max_message_bytes", 64 * 1024 * 1024)
        options = [
            ("grpc.use_local_subchannel_pool", 1),  # one TCP connection per channel, even to one address
            ("grpc.max_receive_message_length", size),
            ("grpc.max_send_message_length", size),
        ]
        count = setup.get("channels", 1) if self.target else 0
        self.channels = [_channel(self.target, options, setup.get("tls")) for _ in range(count)]
        self.stubs = [lookup_pb2_grpc.LookupServiceStub(c) for c in self.channels]
        # BatchLookup as bytes both ways: the generator offers load; decoding ~0.5 MB per answer here would take the
        # cores the servers are measured on (the native generator does the same with its raw codec).
        self.raw_batch = [c.unary_unary("/numrep.v1.LookupService/BatchLookup") for c in self.channels]
        numbers = setup.get("numbers") or []
        self.lookup_requests = [lookup_pb2.LookupRequest(number=n) for n in numbers]
        batch = setup.get("batch_size", 0)
        self.batch_requests = []
        if batch and numbers:
            for low in range(0, max(1, len(numbers) - batch + 1), batch):
                chunk = numbers[low:low + batch]
                if len(chunk) == batch:
                    self.batch_requests.append(lookup_pb2.BatchLookupRequest(requests=[lookup_pb2.LookupRequest(number=n) for n in chunk],
                                                                             view=setup.get("view", lookup_pb2.VERDICT_VIEW_FULL)))

    async def ready(self) -> None:
        for channel in self.channels:
            await asyncio.wait_for(channel.channel_ready(), 30)

    async def close(self) -> None:
        for stream in getattr(self, "_lookup_streams", ()):
            await stream.close()
        for channel in self.channels:
            await channel.close()

    # --- calls ------------------------------------------------------------------
    def _call(self, method: str) -> Callable[[int, Any], Awaitable[Any]]:
        stubs = self.stubs
        nstubs = len(stubs)
        if method == "lookup":
            requests = self.lookup_requests

            def call(i: int, md: Any) -> Awaitable[Any]:
                return stubs[i % nstubs].Lookup(requests[i % len(requests)], metadata=md, timeout=GRPC_TIMEOUT)
        elif method == "stream":  # each lookup on the SDK's LookupStream; the stream takes its metadata once, when it opens
            requests = self.lookup_requests
            streams = self._streams()
            nstreams = len(streams)

            def call(i: int, md: Any) -> Awaitable[Any]:
                return _answered(streams[i % nstreams].lookup(requests[i % len(requests)]))
        elif method == "batch":
            encoded = [r.SerializeToString() for r in self.batch_requests]
            raw = self.raw_batch

            def call(i: int, md: Any) -> Awaitable[Any]:
                return raw[i % nstubs](encoded[i % len(encoded)], metadata=md, timeout=GRPC_TIMEOUT)
        else:
            raise ValueError(f"unknown method {method!r}")
        return call

    def _streams(self) -> list[Any]:
        """One LookupStreamClient per channel, kept across phases (a stream is opened once)."""
        from numrep_client._stream import LookupStreamClient

        if not hasattr(self, "_lookup_streams"):
            self._lookup_streams = [LookupStreamClient(stub, self.tokens.metadata) for stub in self.stubs]
        return self._lookup_streams

    # --- phases -------------------------------------------------------------------
    async def closed(self, msg: dict) -> dict:
        import grpc

        call = self._call(msg.get("method", "lookup"))
        mint_seconds = self.tokens.prepare(msg.get("tokens", "mint"), msg.get("pool", 0))
        concurrency, duration, warmup = msg["concurrency"], msg["duration"], msg.get("warmup", 0.5)
        loop = asyncio.get_running_loop()
        latencies: list[float] = []
        errors: Counter[str] = Counter()
        counter = itertools.count()
        start = loop.time()
        measure_from, stop_at = start + warmup, start + warmup + duration
        cpu0, wall0 = time.process_time(), time.perf_counter()
        cpu_at_measure: list[float] = []

        async def worker() -> None:
            while True:
                sent = loop.time()
                if sent >= stop_at:
                    return
                if sent >= measure_from and not cpu_at_measure:
                    cpu_at_measure.append(time.process_time())
                i = next(counter)
                try:
                    await call(i, self.tokens.metadata())
                    ok, code = True, ""
                except grpc.aio.AioRpcError as exc:
                    ok, code = False, exc.code().name
                done = loop.time()
                if measure_from <= done <= stop_at:
                    if ok:
                        latencies.append(done - sent)
                    else:
                        errors[code] += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        cpu_measured = time.process_time() - (cpu_at_measure[0] if cpu_at_measure else cpu0)
        return {
            "mode": "closed", "concurrency": concurrency, "duration": duration,
            "ok": len(latencies), "errors": dict(errors), "qps": len(latencies) / duration,
            "latency_ms": percentiles(_ms(latencies)), "client_cpu": cpu_measured / duration,
            "premint_seconds": mint_seconds, "inline_mints": self.tokens.inline,
            "wall": time.perf_counter() - wall0,
            **({"samples_ms": _ms(latencies)} if msg.get("samples") else {}),
        }

    async def open(self, msg: dict) -> dict:
        import grpc

        call = self._call(msg.get("method", "lookup"))
        rate, duration, warmup = float(msg["rate"]), msg["duration"], msg.get("warmup", 0.5)
        total, skip = int(rate * (warmup + duration)), int(rate * warmup)
        pool = total + 16 if msg.get("tokens") == "premint" else 0
        mint_seconds = self.tokens.prepare(msg.get("tokens", "mint"), pool)
        max_inflight, drain = msg.get("max_inflight", 1000), msg.get("drain", 5.0)
        interval = 1.0 / rate
        loop = asyncio.get_running_loop()
        semaphore = asyncio.Semaphore(max_inflight)
        latencies: list[float] = []
        errors: Counter[str] = Counter()
        last_done = [0.0]
        late = [0]
        start = loop.time() + 0.05
        tasks: dict[asyncio.Task[None], float] = {}

        async def one(i: int, scheduled: float) -> None:
            async with semaphore:
                try:
                    await call(i, self.tokens.metadata())
                    ok, code = True, ""
                except grpc.aio.AioRpcError as exc:
                    ok, code = False, exc.code().name
            done = loop.time()
            if i >= skip:
                if ok:
                    latencies.append(done - scheduled)
                    last_done[0] = max(last_done[0], done)
                else:
                    errors[code] += 1

        cpu0 = time.process_time()
        i = 0
        while i < total:
            now = loop.time()
            due = min(total, math.floor((now - start) / interval) + 1)
            if due > i and now - (start + i * interval) > 0.002:
                late[0] += due - i
            while i < due:
                scheduled = start + i * interval
                task = loop.create_task(one(i, scheduled))
                tasks[task] = scheduled
                task.add_done_callback(tasks.pop)  # type: ignore[arg-type]
                i += 1
            if i < total:
                await asyncio.sleep(max(0.0, start + i * interval - loop.time()))
        unfinished_lb: list[float] = []
        if tasks:
            pending_snapshot = dict(tasks)
            _done, pending = await asyncio.wait(set(pending_snapshot), timeout=drain)
            cut = loop.time()
            for task in pending:
                unfinished_lb.append(cut - pending_snapshot[task])
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
        measure_start = start + skip * interval
        span = max(last_done[0], start + total * interval) - measure_start
        cpu = time.process_time() - cpu0
        stats = percentiles(_ms(latencies + unfinished_lb))
        stats["lower_bound"] = bool(unfinished_lb)
        return {
            "mode": "open", "rate": rate, "duration": duration, "scheduled": total - skip,
            "ok": len(latencies), "errors": dict(errors), "unfinished": len(unfinished_lb),
            "achieved_qps": len(latencies) / span if span > 0 else 0.0,
            "latency_ms": stats, "late_dispatch": late[0], "client_cpu": cpu / (span + warmup) if span > 0 else None,
            "premint_seconds": mint_seconds, "inline_mints": self.tokens.inline,
            **({"samples_ms": _ms(latencies + unfinished_lb)} if msg.get("samples") else {}),
        }

    async def mint_cost(self, msg: dict) -> dict:
        """Seconds per token: signed with each identity's key, and MAC'd in a call session."""
        import functools
        import os
        from datetime import datetime, timedelta, timezone

        from numrep.signing.keys import Identity
        from numrep.signing.sessions import CallSession, mint_call_token
        from numrep.signing.tokens import mint_token

        minters: dict[str, Callable[[], str]] = {}
        for text in msg["identities"]:
            identity = Identity.from_json(text)
            minters[identity.alg] = functools.partial(mint_token, identity)
        session = CallSession("s" * 96, os.urandom(32), "p", "k", datetime.now(timezone.utc) + timedelta(hours=1))
        minters["call session HS256"] = functools.partial(mint_call_token, session)
        out = {}
        for name, mint in minters.items():
            for _ in range(50):
                mint()
            count, started = 0, time.perf_counter()
            samples = []
            while time.perf_counter() - started < msg.get("seconds", 1.0) and count < msg.get("max_count", 20_000):
                t0 = time.perf_counter()
                mint()
                samples.append(time.perf_counter() - t0)
                count += 1
            out[name] = {"us_per_token": 1e6 * sum(samples) / count, "tokens_per_s": count / sum(samples),
                         "latency_ms": percentiles(_ms(samples)), "count": count}
        return out

    async def sync_stream(self, msg: dict) -> dict:
        from numrep.v1 import sync_pb2, sync_pb2_grpc

        self.tokens.prepare("mint")
        stub = sync_pb2_grpc.SyncServiceStub(self.channels[0])
        loop = asyncio.get_running_loop()
        chunks = entries = labels = size = 0
        first = None
        cpu0 = time.process_time()
        started = loop.time()
        stream = stub.Sync(sync_pb2.SyncRequest(cursor="", chunk_size=msg.get("chunk_size", 0)),
                           metadata=self.tokens.metadata(), timeout=msg.get("timeout", 600))
        async for chunk in stream:
            if first is None:
                first = loop.time() - started
            chunks += 1
            entries += len(chunk.entries)
            labels += sum(len(e.labels) for e in chunk.entries)
            size += chunk.ByteSize()
        elapsed = loop.time() - started
        return {"chunks": chunks, "entries": entries, "labels": labels, "bytes": size, "seconds": elapsed,
                "first_chunk_s": first, "labels_per_s": labels / elapsed if elapsed else None,
                "client_cpu": (time.process_time() - cpu0) / elapsed if elapsed else None}

    async def sync_handset(self, msg: dict) -> dict:
        return await asyncio.to_thread(_sync_handset_blocking, self.target, self.identity, msg)

    async def publish(self, msg: dict) -> dict:
        import grpc

        from numrep.signing.keys import Identity
        from numrep.signing.tokens import mint_token
        from numrep.v1 import publish_pb2, publish_pb2_grpc

        identity = Identity.from_json(msg["identity"])
        stub = publish_pb2_grpc.PublishServiceStub(self.channels[0])
        statuses: Counter[str] = Counter()
        reasons: Counter[str] = Counter()
        per_batch: list[float] = []
        labels = 0
        started = time.perf_counter()
        for batch in msg["batches"]:
            t0 = time.perf_counter()
            md = (("authorization", "Bearer " + mint_token(identity)),)
            try:
                response = await stub.Publish(publish_pb2.PublishRequest(labels=batch), metadata=md, timeout=120)
            except grpc.aio.AioRpcError as exc:
                statuses["rpc_" + exc.code().name] += len(batch)
                continue
            per_batch.append(time.perf_counter() - t0)
            labels += len(batch)
            for item in response.results:
                statuses[publish_pb2.ItemStatus.Name(item.status)] += 1
                if item.reason:
                    reasons[item.reason] += 1
        elapsed = time.perf_counter() - started
        return {"labels": labels, "seconds": elapsed, "labels_per_s": labels / elapsed if elapsed else None,
                "batch_ms": percentiles(_ms(per_batch)), "statuses": dict(statuses), "reasons": dict(reasons)}

    async def cassandra_raw(self, msg: dict) -> dict:
        return await asyncio.to_thread(_cassandra_raw_blocking, msg)


def _sync_handset_blocking(target: str, identity: Any, msg: dict) -> dict:
    """``sync_handset`` into a fresh ``HandsetLabelStore``, then the baseline: the
    same labels verified offline (``verify_label``, nothing stored) in this process."""
    from datetime import datetime, timezone
    from pathlib import Path

    from numrep.core.numbers import _cached_parse
    from numrep.signing.labels import verify_label
    from numrep_client import ExchangeClient, HandsetLabelStore, KeyDirectory, sync_handset

    path = Path(msg["path"])
    client = ExchangeClient(target, identity, timeout=120)
    try:
        with HandsetLabelStore(path) as store:
            cpu0, started = time.process_time(), time.perf_counter()
            report = sync_handset(client, store, msg.get("chunk_size", 0))
            elapsed = time.perf_counter() - started
            cpu = time.process_time() - cpu0
            tokens = [token for number in store.numbers for token in store.numbers[number]["labels"]]
        keys = KeyDirectory(client.list_participants())
    finally:
        client.close()
    now = datetime.now(timezone.utc)
    _cached_parse.cache_clear()  # the sync met these numbers first: the baseline parses them anew, as the sync did
    verify_cpu0, verify_started = time.process_time(), time.perf_counter()
    for token in tokens:
        verify_label(token, keys, now)
    verify_seconds = time.perf_counter() - verify_started
    verify_cpu = time.process_time() - verify_cpu0
    return {"labels_verified": report.labels_verified, "labels_dropped": len(report.labels_dropped),
            "drop_reasons": dict(Counter(r for _, r in report.labels_dropped)),
            "upserts": report.upserts, "chunks": report.chunks, "seconds": elapsed,
            "labels_per_s": report.labels_verified / elapsed if elapsed else None,
            "cpu_us_per_label": 1e6 * cpu / max(1, report.labels_verified),
            "file_bytes": sum(p.stat().st_size for p in path.parent.glob(path.name + "*")),
            "client_cpu": cpu / elapsed if elapsed else None,
            "verify_only": {"labels": len(tokens), "labels_per_s": len(tokens) / verify_seconds if verify_seconds else None,
                            "cpu_us_per_label": 1e6 * verify_cpu / max(1, len(tokens))}}


def _cassandra_raw_blocking(msg: dict) -> dict:
    """Closed loop of the driver's prepared single-row read, ``concurrency``
    requests in flight, the next one issued from the completion callback (the
    driver's own high-throughput pattern)."""
    import threading

    from cassandra import ConsistencyLevel
    from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
    from cassandra.policies import DCAwareRoundRobinPolicy, TokenAwarePolicy
    from cassandra.query import tuple_factory

    profile = ExecutionProfile(  # plain tuples: the driver's cheapest rows (its default makes a class per response)
        load_balancing_policy=TokenAwarePolicy(DCAwareRoundRobinPolicy(local_dc=msg.get("dc", "datacenter1"))),
        consistency_level=ConsistencyLevel.LOCAL_QUORUM, request_timeout=10.0, row_factory=tuple_factory,
    )
    cluster = Cluster([msg["host"]], port=msg["port"], protocol_version=5, execution_profiles={EXEC_PROFILE_DEFAULT: profile})
    try:
        session = cluster.connect()
        statement = session.prepare(f"SELECT body FROM {msg['keyspace']}.verdict_by_number WHERE number = ?")
        statement.is_idempotent = True
        numbers = msg["numbers"]
        concurrency, duration, warmup = msg["concurrency"], msg["duration"], msg.get("warmup", 0.5)
        lock = threading.Lock()
        finished = threading.Event()
        state = {"next": 0, "inflight": 0, "errors": 0, "rows": 0}
        latencies: list[float] = []
        start = time.perf_counter()
        measure_from, stop_at = start + warmup, start + warmup + duration

        def issue() -> None:
            with lock:
                i = state["next"]
                state["next"] += 1
                state["inflight"] += 1
            sent = time.perf_counter()
            future = session.execute_async(statement, (numbers[i % len(numbers)],))
            future.add_callbacks(done, failed, callback_args=(sent,), errback_args=(sent,))

        def after(sent: float, ok: bool, rows: int = 0) -> None:
            now = time.perf_counter()
            with lock:
                state["inflight"] -= 1
                if measure_from <= now <= stop_at:
                    if ok:
                        latencies.append(now - sent)
                        state["rows"] += rows
                    else:
                        state["errors"] += 1
                again = now < stop_at
                if not again and state["inflight"] == 0:
                    finished.set()
            if again:
                issue()

        def done(rows: Any, sent: float) -> None:
            after(sent, True, len(rows.current_rows) if hasattr(rows, "current_rows") else 1)

        def failed(_exc: Exception, sent: float) -> None:
            after(sent, False)

        for _ in range(concurrency):
            issue()
        finished.wait(warmup + duration + 30)
        return {"ok": len(latencies), "qps": len(latencies) / duration, "errors": {"driver_error": state["errors"]} if state["errors"] else {},
                "rows": state["rows"],
                "latency_ms": percentiles(_ms(latencies)), "concurrency": concurrency}
    finally:
        cluster.shutdown()


async def _loadgen(conn: Any, setup: dict) -> None:
    from numrep.gc_tuning import tune_for_serving

    gen = LoadGen(setup)
    await gen.ready()
    tune_for_serving()  # its setup (numbers, clients) out of full passes: a client's pause would count as the server's latency
    conn.send({"ready": True})
    handlers = {
        "closed": gen.closed, "open": gen.open, "mint_cost": gen.mint_cost, "sync_stream": gen.sync_stream,
        "sync_handset": gen.sync_handset, "publish": gen.publish, "cassandra_raw": gen.cassandra_raw,
    }

    gc_pauses = GcPauses()

    async def handle(message: dict) -> Any:
        if message["cmd"] not in ("closed", "open"):
            return await handlers[message["cmd"]](message)
        gc_pauses.reset()  # the pauses of this phase (token pre-minting, warm-up and drain included)
        result = await handlers[message["cmd"]](message)
        return {**result, "client_gc": gc_pauses.take()}  # a client's own pause delays the answers it times

    stop = await serve_commands(conn, handle)
    await gen.close()
    if not stop.get("eof"):
        conn.send({"stopped": True})


def loadgen_process(setup: dict, name: str = "bench-loadgen") -> Child:
    return Child(child_entry, _loadgen, setup, name=name)
