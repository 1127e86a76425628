"""Exporters from configuration: the standard ``OTEL_*`` variables select OTLP,
``--telemetry console`` prints spans and metrics, ``--metrics-port`` serves a
Prometheus scrape endpoint."""

from __future__ import annotations

import os
from dataclasses import dataclass

from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import ConsoleMetricExporter, MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

from numrep.telemetry.instruments import Telemetry


@dataclass(frozen=True)
class TelemetryConfig:
    console: bool = False
    metrics_port: int | None = None
    metrics_interval_ms: int = 10_000

    @property
    def otlp(self) -> bool:
        """OTLP export is on when the standard variables ask for it."""
        return bool(os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")) or \
            os.environ.get("OTEL_TRACES_EXPORTER", "") == "otlp"

    @property
    def enabled(self) -> bool:
        return self.console or self.metrics_port is not None or self.otlp


def setup_telemetry(config: TelemetryConfig, service_name: str = "numrep-exchange") -> Telemetry:
    if not config.enabled:
        return Telemetry.disabled()
    resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", service_name)})
    # The SDK's sampler comes from OTEL_TRACES_SAMPLER / OTEL_TRACES_SAMPLER_ARG (every span by default).
    tracer_provider = TracerProvider(resource=resource)
    readers: list[MetricReader] = []
    if config.otlp:
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        readers.append(PeriodicExportingMetricReader(OTLPMetricExporter(), export_interval_millis=config.metrics_interval_ms))
    if config.console:
        tracer_provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
        readers.append(PeriodicExportingMetricReader(ConsoleMetricExporter(), export_interval_millis=config.metrics_interval_ms))
    spans: trace.TracerProvider = tracer_provider
    if not (config.otlp or config.console):  # metrics only: spans nobody exports are not made at all
        spans = trace.NoOpTracerProvider()
    if config.metrics_port is not None:
        from opentelemetry.exporter.prometheus import PrometheusMetricReader
        from prometheus_client import start_http_server

        start_http_server(config.metrics_port, addr="127.0.0.1")
        readers.append(PrometheusMetricReader())
    return Telemetry.create(spans, MeterProvider(resource=resource, metric_readers=readers))
