"""Traces, metrics and logs with OpenTelemetry. Nothing here ever records a raw
phone number or reporter id."""

from numrep.telemetry.instruments import Telemetry
from numrep.telemetry.setup import TelemetryConfig, setup_telemetry

__all__ = ["Telemetry", "TelemetryConfig", "setup_telemetry"]
