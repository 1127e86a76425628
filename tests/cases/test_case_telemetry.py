"""Traces and metrics of CaseService carry no personal data: no complaint text,
contact, evidence, reporter id or case id in any span, attribute or metric, not
even when a filing is refused."""

from __future__ import annotations

import json
import time
from pathlib import Path

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
from numrep.telemetry import Telemetry
from numrep.v1 import cases_pb2
from numrep_client import ExchangeClient, ExchangeError

from numrep_testkit import NUMBER

TEXT = "My neighbour Jane Roe at 12 Elm Street keeps getting these calls too."
CONTACT = "jane.roe@example.org"
EVIDENCE = "Invoice 2026-117 from the carrier shows the line is ours."
REPORTER = "user-4711"


def test_no_case_rpc_records_personal_data_in_spans_or_metrics(loop_thread, tmp_path: Path):
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    metrics = InMemoryMetricReader()
    telemetry = Telemetry.create(tracer_provider, MeterProvider(metric_readers=[metrics]))
    running = loop_thread.run(start_server(ServerConfig(listen="127.0.0.1:0", data_dir=tmp_path / "x"), telemetry=telemetry))
    try:
        app, regulator = generate_identity("app-a", Role.APP_VENDOR), generate_identity("ftc", Role.REGULATOR)
        for identity in (app, regulator):
            running.exchange.register_participant(identity.participant_id, identity.role, "", [json.dumps(identity.public_jwk())])
        with ExchangeClient(running.address, app) as client, ExchangeClient(running.address, regulator) as reg:
            complaint = client.file_complaint(NUMBER, "fraud", TEXT, reporter_id=REPORTER)
            dispute = client.file_dispute(NUMBER, CONTACT, EVIDENCE, reporter_id=REPORTER)
            client.get_case(complaint.case_id)
            reg.list_cases()
            reg.resolve_case(dispute.case_id, cases_pb2.CASE_STATUS_UPHELD, "Upheld.")
            with pytest.raises(ExchangeError):
                client.file_dispute(NUMBER, CONTACT, EVIDENCE * 100)
            with pytest.raises(ExchangeError):
                client.get_case(complaint.case_id + "x")
        deadline = time.monotonic() + 5
        while len([s for s in spans.get_finished_spans() if s.name.startswith("/numrep.v1.CaseService/")]) < 7 \
                and time.monotonic() < deadline:
            time.sleep(0.01)
        recorded = [s.to_json() for s in spans.get_finished_spans()]
        data = metrics.get_metrics_data()
        recorded += [m.to_json() for m in data.resource_metrics] if data else []
    finally:
        loop_thread.run(running.stop(0))
        telemetry.shutdown()

    everything = "\n".join(recorded)
    assert "/numrep.v1.CaseService/FileComplaint" in everything and "/numrep.v1.CaseService/ResolveCase" in everything
    for secret in (TEXT, CONTACT, EVIDENCE, REPORTER, complaint.case_id, dispute.case_id):
        assert secret not in everything
