"""Server child processes: the real exchange (``numrep.server.start_server``)
and the baseline, a bare ``grpc.aio`` server with the same options that
answers LookupService from memory (no interceptor, no auth, no store).

Either serves mutual TLS when its spec has ``tls`` (``mtls_files()["server"]``):
the exchange then also authenticates callers by their client certificate."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from benchmarks._procs import Child, GcPauses, Profiler, child_entry, serve_commands


async def _exchange(conn: Any, spec: dict) -> None:
    from numrep.config import DEFAULT_MAX_MESSAGE_BYTES, ServerConfig
    from numrep.server import start_server

    config = ServerConfig(
        listen=spec.get("listen", "127.0.0.1:0"),
        data_dir=Path(spec["data_dir"]),
        store=spec.get("store", "sqlite"),
        services=tuple(spec.get("services") or ("lookup", "publish", "flags", "sync", "registry")),
        max_message_bytes=spec.get("max_message_bytes", DEFAULT_MAX_MESSAGE_BYTES),
        **{key: spec[key] for key in ("verdict_cache_entries", "rate_limits") if key in spec},
        **_tls_config(spec.get("tls")),
    )
    kind = spec.get("telemetry")
    running = await start_server(config, telemetry=_telemetry(kind) if kind else None,
                                 tune_gc=spec.get("gc_tuning", True))  # as `numrep serve` runs
    if spec.get("refit_in_process"):  # refits on a worker thread of this process, as before numrep.trust_job
        running.exchange.refit_apart = None
    conn.send({"address": running.address, "pid": os.getpid()})
    control = _control(Profiler(), GcPauses())

    async def handle(message: dict) -> Any:
        if message["cmd"] == "verdict_reads":  # Cassandra: store reads sent for lookups, and the numbers in them
            sent = getattr(running.store, "verdict_reads_sent", None)
            reads, numbers = sent() if sent else (0, 0)
            return {"reads": reads, "numbers": numbers}
        return await control(message)

    stop = await serve_commands(conn, handle)
    await running.stop(0)
    if not stop.get("eof"):
        conn.send({"stopped": True})


def _telemetry(kind: str) -> Any:
    """Instrumentation as an operator would run it, with the SDK's batching span processor
    and an exporter that drops what it is given (no network measured): ``full`` records
    every span, ``sampled`` 1% of traces (``parentbased_traceidratio``), ``metrics`` none."""
    from opentelemetry import trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    from numrep.telemetry import Telemetry

    class Discard(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    meters = MeterProvider(metric_readers=[InMemoryMetricReader()])
    if kind == "metrics":
        return Telemetry.create(trace.NoOpTracerProvider(), meters)
    tracer_provider = TracerProvider(sampler=ParentBased(TraceIdRatioBased(0.01))) if kind == "sampled" else TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(Discard()))
    return Telemetry.create(tracer_provider, meters)


async def _baseline(conn: Any, spec: dict) -> None:
    import grpc

    from numrep.config import DEFAULT_MAX_MESSAGE_BYTES
    from numrep.gc_tuning import YoungPasses, tune_for_serving
    from numrep.v1 import common_pb2, lookup_pb2, lookup_pb2_grpc

    verdict = common_pb2.Verdict.FromString(spec["verdict"])
    batch = lookup_pb2.BatchLookupResponse.FromString(spec["batch"]) if spec.get("batch") else lookup_pb2.BatchLookupResponse()
    read = _driver_read(spec["cassandra"]) if spec.get("cassandra") else None

    class FromMemory(lookup_pb2_grpc.LookupServiceServicer):
        async def Lookup(self, request: Any, context: Any) -> Any:
            if read is not None:  # the composition floor: gRPC plus one driver read, nothing else
                await read(request.number)
            return verdict

        async def BatchLookup(self, request: Any, context: Any) -> Any:
            return batch

        async def LookupStream(self, requests: Any, context: Any) -> Any:
            await context.send_initial_metadata(())  # as the exchange does: the SDK writes once it has come
            if read is not None:
                async for response in _reading_stream(requests, read, verdict):
                    yield response
                return
            async for message in requests:  # each request's lookups answered at once, in one response
                yield lookup_pb2.LookupStreamResponse(answers=[lookup_pb2.StreamAnswer(id=lookup.id, verdict=verdict)
                                                               for lookup in message.lookups])

    size = spec.get("max_message_bytes", DEFAULT_MAX_MESSAGE_BYTES)
    options = [("grpc.max_receive_message_length", size), ("grpc.max_send_message_length", size)]
    server = grpc.aio.server(options=options)
    lookup_pb2_grpc.add_LookupServiceServicer_to_server(FromMemory(), server)
    listen = spec.get("listen", "127.0.0.1:0")
    tls = spec.get("tls")
    port = server.add_secure_port(listen, _server_credentials(tls)) if tls else server.add_insecure_port(listen)
    young = None
    if spec.get("gc_tuning", True):  # the exchange's collector settings, so both sides run alike
        tune_for_serving()
        young = YoungPasses()
    await server.start()
    conn.send({"address": f"127.0.0.1:{port}", "pid": os.getpid()})
    stop = await serve_commands(conn, _control(Profiler(), GcPauses()))
    if young is not None:
        young.stop()
    await server.stop(0)
    if not stop.get("eof"):
        conn.send({"stopped": True})


async def _reading_stream(requests: Any, read: Any, verdict: Any) -> Any:
    """The composition floor on a LookupStream: each lookup answered once its own driver
    read returns, the answers ready together in one response, as the exchange sends them."""
    import asyncio

    from numrep.v1 import lookup_pb2

    ready: list[Any] = []
    wake = asyncio.Event()
    reading: set[asyncio.Task[None]] = set()

    async def one(lookup: Any) -> None:
        try:
            await read(lookup.request.number)
            ready.append(lookup_pb2.StreamAnswer(id=lookup.id, verdict=verdict))
        finally:
            reading.discard(asyncio.current_task())  # type: ignore[arg-type]
            wake.set()

    async def take() -> None:
        try:
            async for message in requests:
                for lookup in message.lookups:
                    reading.add(asyncio.get_running_loop().create_task(one(lookup)))
        finally:
            wake.set()

    taker = asyncio.get_running_loop().create_task(take())
    try:
        while True:
            await wake.wait()
            wake.clear()
            if ready:
                answers = ready[:]
                ready.clear()
                yield lookup_pb2.LookupStreamResponse(answers=answers)
            if taker.done() and not reading and not ready:
                break
    finally:
        taker.cancel()
        for task in list(reading):
            task.cancel()


def _driver_read(where: dict) -> Any:
    """An awaitable raw driver read of one verdict row (prepared, token-aware,
    LOCAL_QUORUM, plain tuples), settled on the calling event loop."""
    import asyncio

    from cassandra import ConsistencyLevel
    from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
    from cassandra.policies import DCAwareRoundRobinPolicy, TokenAwarePolicy
    from cassandra.query import tuple_factory

    profile = ExecutionProfile(load_balancing_policy=TokenAwarePolicy(DCAwareRoundRobinPolicy(local_dc="datacenter1")),
                               consistency_level=ConsistencyLevel.LOCAL_QUORUM, request_timeout=10.0, row_factory=tuple_factory)
    session = Cluster([where["host"]], port=where["port"], protocol_version=5,
                      execution_profiles={EXEC_PROFILE_DEFAULT: profile}).connect()
    statement = session.prepare(f"SELECT body FROM {where['keyspace']}.verdict_by_number WHERE number = ?")

    async def read(number: str) -> Any:
        loop = asyncio.get_running_loop()
        answer = loop.create_future()
        settle = lambda value: loop.call_soon_threadsafe(answer.set_result, value)  # noqa: E731 - on the driver's thread
        session.execute_async(statement, (number,)).add_callbacks(settle, settle)
        return await answer

    return read


def mtls_files(directory: Path, identity: Any) -> dict[str, dict[str, str]]:
    """A fresh CA, a server certificate for 127.0.0.1 and a client certificate bound
    to ``identity`` (an ES256 participant): {"server": {cert, key, client_ca},
    "client": {ca, cert, key}}, PEM file paths for the child processes."""
    import json

    from numrep.signing.certificates import (certificate_pem, issue_participant_certificate, issue_server_certificate,
                                             new_certificate_authority, private_key_pem)

    directory.mkdir(parents=True, exist_ok=True)
    ca_cert, ca_key = new_certificate_authority("numrep bench CA")
    server_cert, server_key = issue_server_certificate(["127.0.0.1"], ca_cert, ca_key)
    client_cert = issue_participant_certificate(identity.participant_id, json.dumps(identity.public_jwk()), ca_cert, ca_key)
    contents = {"ca.pem": certificate_pem(ca_cert), "server.pem": certificate_pem(server_cert),
                "server.key": private_key_pem(server_key), "client.pem": certificate_pem(client_cert),
                "client.key": private_key_pem(identity.private_key)}
    for name, data in contents.items():
        (directory / name).write_bytes(data)
    path = lambda name: str(directory / name)  # noqa: E731
    return {"server": {"cert": path("server.pem"), "key": path("server.key"), "client_ca": path("ca.pem")},
            "client": {"ca": path("ca.pem"), "cert": path("client.pem"), "key": path("client.key")}}


def _tls_config(tls: dict | None) -> dict[str, Path]:
    if not tls:
        return {}
    return {"tls_cert": Path(tls["cert"]), "tls_key": Path(tls["key"]), "tls_client_ca": Path(tls["client_ca"])}


def _server_credentials(tls: dict) -> Any:
    """The credentials the exchange builds from the same files (``numrep.server``)."""
    import grpc

    return grpc.ssl_server_credentials([(Path(tls["key"]).read_bytes(), Path(tls["cert"]).read_bytes())],
                                       root_certificates=Path(tls["client_ca"]).read_bytes(), require_client_auth=True)


def _control(profiler: Profiler, gc_pauses: GcPauses) -> Any:
    """The commands every server child answers: profiling, GC pauses and ping."""

    async def handle(message: dict) -> Any:
        cmd = message["cmd"]
        if cmd == "gc_pauses":
            if message.get("reset"):  # forget the pauses so far (a phase starts), without walking the heap
                gc_pauses.reset()
                return {"gc": {}}
            return {"gc": gc_pauses.take()}
        if cmd == "profile_start":
            return {"profiler": profiler.start()}
        if cmd == "profile_stop":
            return {"path": profiler.stop(message["path"])}
        if cmd == "ping":
            return {"ok": True}
        raise ValueError(f"unknown command {cmd!r}")

    return handle


def exchange_process(spec: dict, name: str = "bench-exchange") -> Child:
    return Child(child_entry, _exchange, spec, name=name)


def baseline_process(spec: dict, name: str = "bench-baseline") -> Child:
    return Child(child_entry, _baseline, spec, name=name)
