"""No span, attribute, metric or log line carries the callee number: consent,
refusal, state query, a lookup with the callee, and a refused request that
quotes a malformed callee."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from consent_testkit import CALLER, PROOF, daytime
from numrep.config import ServerConfig
from numrep.core.model import Role
from numrep.server import start_server
from numrep.signing.consent import sign_consent, sign_refusal
from numrep.signing.keys import generate_identity
from numrep.telemetry import Telemetry
from numrep_client import ExchangeClient, ExchangeError

CALLEE = "+12025550199"
RAW_FORMS = ["12025550199", "2025550199", "202-555-0199", "(202) 555-0199", "555-0199x"]


def test_no_span_metric_or_log_line_carries_the_callee(loop_thread, tmp_path: Path, caplog: pytest.LogCaptureFixture):
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    metrics = InMemoryMetricReader()
    telemetry = Telemetry.create(tracer_provider, MeterProvider(metric_readers=[metrics]))
    running = loop_thread.run(start_server(ServerConfig(listen="127.0.0.1:0", data_dir=tmp_path / "x"), telemetry=telemetry))
    carrier = generate_identity("carrier-a", Role.CARRIER)
    app = generate_identity("app-a", Role.APP_VENDOR)
    for identity in (carrier, app):
        running.exchange.register_participant(identity.participant_id, identity.role, "", [json.dumps(identity.public_jwk())])
    caplog.set_level(logging.DEBUG)
    try:
        with ExchangeClient(running.address, carrier) as as_carrier, ExchangeClient(running.address, app) as as_app:
            as_carrier.register_consent([sign_consent(carrier, CALLER, CALLEE, ["marketing"], PROOF)])
            as_app.record_refusal([sign_refusal(app, CALLEE, CALLER)])
            as_carrier.consent_state(CALLER, "(202) 555-0199", daytime())
            blocked = as_carrier.lookup(CALLER, callee="202-555-0199", call_time=daytime(), call_category="marketing")
            with pytest.raises(ExchangeError):
                as_carrier.lookup(CALLER, callee="555-0199x", call_category="marketing")
    finally:
        loop_thread.run(running.stop(0))
    tracer_provider.force_flush()

    recorded = [span.to_json() for span in spans.get_finished_spans()]
    data = metrics.get_metrics_data()
    for resource in data.resource_metrics if data else []:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                recorded += [json.dumps(dict(p.attributes or {})) for p in metric.data.data_points]
    recorded += [record.getMessage() + json.dumps(record.__dict__, default=str) for record in caplog.records]
    everything = "\n".join(recorded)
    telemetry.shutdown()

    assert blocked.consent.block_reason == "callee_refused"  # the flows really ran
    assert "/numrep.v1.ConsentService/RegisterConsent" in everything
    for form in [CALLEE, *RAW_FORMS]:
        assert form not in everything, f"{form!r} was recorded"
