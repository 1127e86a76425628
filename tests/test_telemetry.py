"""Observability: every RPC is a span with store calls as children, attributes
say who asked and what was answered, metrics move, and no span, attribute or
metric ever carries a phone number or reporter id."""

from __future__ import annotations

import json
from pathlib import Path

import prometheus_client
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from numrep.config import ServerConfig
from numrep.core.model import Role
from numrep.server import start_server
from numrep.signing.keys import generate_identity
from numrep.signing.labels import sign_label
from numrep.telemetry import Telemetry
from numrep.telemetry.setup import TelemetryConfig, setup_telemetry
from numrep_client import ExchangeClient, ExchangeError, FlagToSend

NUMBER = "+12025550143"
RAW_FORMS = ["12025550143", "2025550143", "202-555-0143", "(202) 555-0143"]
REPORTER = "alice@example.org"


@pytest.fixture
def observed(loop_thread, tmp_path: Path):
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    metrics = InMemoryMetricReader()
    telemetry = Telemetry.create(tracer_provider, MeterProvider(metric_readers=[metrics]))
    running = loop_thread.run(start_server(ServerConfig(listen="127.0.0.1:0", data_dir=tmp_path / "x"), telemetry=telemetry))
    identities = {}
    for pid, role in [("carrier-a", Role.CARRIER), ("app-a", Role.APP_VENDOR)]:
        identities[pid] = generate_identity(pid, role)
        running.exchange.register_participant(pid, role, pid, [json.dumps(identities[pid].public_jwk())])
    yield running, spans, metrics, identities
    loop_thread.run(running.stop(0))
    telemetry.shutdown()


def _finished_spans(spans: InMemorySpanExporter, name: str, count: int = 1) -> list:
    """Finished spans, once ``count`` spans called ``name`` have ended: a server span
    ends just after its response is sent, so the client may see the answer first."""
    import time

    deadline = time.monotonic() + 5
    while sum(s.name == name for s in spans.get_finished_spans()) < count and time.monotonic() < deadline:
        time.sleep(0.01)
    return list(spans.get_finished_spans())


def _metric_points(reader: InMemoryMetricReader) -> dict[str, list]:
    data = reader.get_metrics_data()
    found: dict[str, list] = {}
    for resource in data.resource_metrics if data else []:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                found.setdefault(metric.name, []).extend(metric.data.data_points)
    return found


def _everything_recorded(spans: InMemorySpanExporter, reader: InMemoryMetricReader) -> str:
    parts = [span.to_json() for span in spans.get_finished_spans()]
    for name, points in _metric_points(reader).items():
        parts += [name] + [json.dumps(dict(p.attributes or {})) for p in points]
    return "\n".join(parts)


def test_a_lookup_is_a_server_span_with_participant_role_rpc_and_action_and_store_children(observed):
    running, spans, _, ids = observed
    with ExchangeClient(running.address, ids["carrier-a"]) as carrier:
        carrier.publish([sign_label(ids["carrier-a"], NUMBER, "fraud", 1.0)])
        spans.clear()
        carrier.lookup("(202) 555-0143")

    finished = _finished_spans(spans, "/numrep.v1.LookupService/Lookup")
    [server_span] = [s for s in finished if s.name == "/numrep.v1.LookupService/Lookup"]
    attributes = dict(server_span.attributes)
    assert attributes["numrep.participant"] == "carrier-a"
    assert attributes["numrep.role"] == "carrier"
    assert attributes["numrep.auth"] == "token"
    assert attributes["numrep.rpc"] == "LookupService/Lookup"
    assert attributes["numrep.verdict.action"] == "warn"
    assert attributes["rpc.system"] == "grpc"
    children = [s for s in finished if s.parent is not None and s.parent.span_id == server_span.context.span_id]
    assert [s.name for s in children] == ["store.get_verdict"]
    assert children[0].attributes["db.system"] == "sqlite"


def test_metrics_move_with_lookups_labels_flags_and_refusals(observed):
    running, _, metrics, ids = observed
    with ExchangeClient(running.address, ids["carrier-a"]) as carrier, ExchangeClient(running.address, ids["app-a"]) as app:
        carrier.publish([sign_label(ids["carrier-a"], NUMBER, "fraud", 1.0), "not-a-jws",
                         sign_label(ids["carrier-a"], "+12025550199", "fraud", 1.0), "also-not-a-jws"])
        carrier.lookup(NUMBER)
        app.submit_flags([FlagToSend(NUMBER, "fraud", REPORTER)], batch_id="b1")
        with pytest.raises(ExchangeError):
            carrier.lookup("12345")

    points = _metric_points(metrics)
    labels = {(p.attributes["status"], p.attributes["reason"]): p.value for p in points["numrep.labels"]}
    assert labels == {("accepted", ""): 2, ("rejected", "malformed"): 2}  # a batch counts each label
    assert {p.attributes["action"]: p.value for p in points["numrep.verdicts"]} == {"warn": 1}
    assert sum(p.value for p in points["numrep.flags"]) == 1
    assert sum(p.count for p in points["numrep.lookup.duration"]) == 1
    refused = {(p.attributes["status"], p.attributes["reason"]) for p in points["numrep.rpc.refused"]}
    assert refused == {("INVALID_ARGUMENT", "invalid_number")}


def test_metrics_without_a_span_exporter_make_no_spans_and_still_count(loop_thread, tmp_path: Path, monkeypatch):
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_TRACES_EXPORTER"):
        monkeypatch.delenv(name, raising=False)
    started: list[int] = []
    monkeypatch.setattr("prometheus_client.start_http_server", lambda port, addr="": started.append(port))
    telemetry = setup_telemetry(TelemetryConfig(metrics_port=9464))  # numrep serve --metrics-port 9464, nothing else
    assert started == [9464] and telemetry.enabled and not telemetry.tracing
    running = loop_thread.run(start_server(ServerConfig(listen="127.0.0.1:0", data_dir=tmp_path / "m"), telemetry=telemetry))
    try:
        carrier = generate_identity("carrier-a", Role.CARRIER)
        running.exchange.register_participant("carrier-a", Role.CARRIER, "", [json.dumps(carrier.public_jwk())])
        with ExchangeClient(running.address, carrier) as client:
            client.lookup(NUMBER)
        assert not telemetry.tracer.start_span("probe").is_recording()
        assert 'numrep_verdicts_total{action="unknown"' in prometheus_client.generate_latest().decode()
    finally:
        loop_thread.run(running.stop(0))
        telemetry.shutdown()


def test_a_span_exporter_turns_tracing_on(monkeypatch):
    monkeypatch.setattr("opentelemetry.sdk.trace.export.ConsoleSpanExporter.export", lambda self, spans: None)
    telemetry = setup_telemetry(TelemetryConfig(console=True))
    try:
        assert telemetry.tracing
        assert telemetry.tracer.start_span("probe").is_recording()
    finally:
        telemetry.shutdown()


def test_no_span_attribute_or_metric_carries_a_phone_number_or_reporter_id(observed):
    running, spans, metrics, ids = observed
    with ExchangeClient(running.address, ids["carrier-a"]) as carrier, ExchangeClient(running.address, ids["app-a"]) as app:
        carrier.publish([sign_label(ids["carrier-a"], NUMBER, "fraud", 1.0)])
        for form in RAW_FORMS:
            carrier.lookup(form)
        app.submit_flags([FlagToSend(NUMBER, "fraud", REPORTER, comment="he called at night")], batch_id="b2")
        with pytest.raises(ExchangeError) as caught:  # the caller is told which number is wrong ...
            carrier.lookup("(202) 555-01")
        assert "(202) 555-01" in caught.value.details

    _finished_spans(spans, "/numrep.v1.LookupService/Lookup", count=len(RAW_FORMS) + 1)
    recorded = _everything_recorded(spans, metrics)
    assert "/numrep.v1.LookupService/Lookup" in recorded
    for secret in [NUMBER, *RAW_FORMS, "555-01", REPORTER, "alice"]:  # ... but no trace or metric is
        assert secret not in recorded, recorded[max(0, recorded.find(secret) - 600):recorded.find(secret) + 100]


def test_health_reports_not_serving_while_the_store_is_gone_and_recovers(loop_thread, tmp_path: Path):
    import time

    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    data = tmp_path / "volume"
    config = ServerConfig(listen="127.0.0.1:0", data_dir=data, health_interval_seconds=0.2)
    running = loop_thread.run(start_server(config))
    channel = grpc.insecure_channel(running.address)
    health = health_pb2_grpc.HealthStub(channel)

    def status_within(expected: int, seconds: float = 5.0) -> int:
        deadline = time.monotonic() + seconds
        while True:
            status = health.Check(health_pb2.HealthCheckRequest(service="numrep.v1.LookupService")).status
            if status == expected or time.monotonic() > deadline:
                return status
            time.sleep(0.05)

    try:
        serving, not_serving = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING
        assert status_within(serving) == serving
        data.rename(tmp_path / "unmounted")
        assert status_within(not_serving) == not_serving
        (tmp_path / "unmounted").rename(data)
        assert status_within(serving) == serving
    finally:
        channel.close()
        loop_thread.run(running.stop(0))
