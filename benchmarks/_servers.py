"""Server child processes: the real exchange (``numrep.server.start_server``)
and the baseline, a bare ``grpc.aio`` server with the same options that
answers LookupService from memory (no interceptor, no auth, no store)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from benchmarks._procs import Child, Profiler, child_entry, serve_commands


async def _exchange(conn: Any, spec: dict) -> None:
    from numrep.config import DEFAULT_MAX_MESSAGE_BYTES, ServerConfig
    from numrep.server import start_server

    config = ServerConfig(
        listen=spec.get("listen", "127.0.0.1:0"),
        data_dir=Path(spec["data_dir"]),
        store=spec.get("store", "sqlite"),
        services=tuple(spec.get("services") or ("lookup", "publish", "flags", "sync", "registry")),
        max_message_bytes=spec.get("max_message_bytes", DEFAULT_MAX_MESSAGE_BYTES),
    )
    running = await start_server(config, telemetry=_telemetry() if spec.get("telemetry") else None)
    conn.send({"address": running.address, "pid": os.getpid()})
    stop = await serve_commands(conn, _control(Profiler()))
    await running.stop(0)
    if not stop.get("eof"):
        conn.send({"stopped": True})


def _telemetry() -> Any:
    """Full instrumentation with the SDK's batching span processor and an exporter
    that drops what it is given: the cost of tracing and metrics without a network."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    from numrep.telemetry import Telemetry

    class Discard(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(Discard()))
    return Telemetry.create(tracer_provider, MeterProvider(metric_readers=[InMemoryMetricReader()]))


async def _baseline(conn: Any, spec: dict) -> None:
    import grpc

    from numrep.config import DEFAULT_MAX_MESSAGE_BYTES
    from numrep.v1 import common_pb2, lookup_pb2, lookup_pb2_grpc

    verdict = common_pb2.Verdict.FromString(spec["verdict"])
    batch = lookup_pb2.BatchLookupResponse.FromString(spec["batch"]) if spec.get("batch") else lookup_pb2.BatchLookupResponse()

    class FromMemory(lookup_pb2_grpc.LookupServiceServicer):
        async def Lookup(self, request: Any, context: Any) -> Any:
            return verdict

        async def BatchLookup(self, request: Any, context: Any) -> Any:
            return batch

    size = spec.get("max_message_bytes", DEFAULT_MAX_MESSAGE_BYTES)
    options = [("grpc.max_receive_message_length", size), ("grpc.max_send_message_length", size)]
    server = grpc.aio.server(options=options)
    lookup_pb2_grpc.add_LookupServiceServicer_to_server(FromMemory(), server)
    port = server.add_insecure_port(spec.get("listen", "127.0.0.1:0"))
    await server.start()
    conn.send({"address": f"127.0.0.1:{port}", "pid": os.getpid()})
    stop = await serve_commands(conn, _control(Profiler()))
    await server.stop(0)
    if not stop.get("eof"):
        conn.send({"stopped": True})


def _control(profiler: Profiler) -> Any:
    """The commands every server child answers: profiling and ping."""

    async def handle(message: dict) -> Any:
        cmd = message["cmd"]
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
