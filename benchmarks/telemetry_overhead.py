"""Scenario: the cost of telemetry on the cached Lookup.

The same exchange (SQLite, stored verdicts, pre-minted tokens) with telemetry
off; with every span traced and metrics (SDK batching processor, spans dropped
by the exporter so no network is measured); with metrics only (no spans made,
as ``numrep serve --metrics-port`` runs without a span exporter); and with 1% of
traces sampled (``OTEL_TRACES_SAMPLER=parentbased_traceidratio``,
``OTEL_TRACES_SAMPLER_ARG=0.01``), in alternating rounds of the same run:
ratio = with / without.
"""

from __future__ import annotations

from typing import Any

from benchmarks._context import Ctx
from benchmarks._load import loadgen_process
from benchmarks._measure import Variant, closed_rounds, merge_closed, merge_open, open_rounds, paired_ratio
from benchmarks._servers import exchange_process
from benchmarks._stats import fmt_num, fmt_pcts, fmt_ratio

NAME = "telemetry_overhead"


def run(ctx: Ctx) -> dict:
    s = ctx.sizes
    ds = ctx.lookup_dataset()
    setup = {"identity": ctx.fed.carrier_ed.to_json(), "numbers": ds.queries, "channels": 1}
    results: dict[str, Any] = {}
    ctx.log("telemetry_overhead: the exchange without and with telemetry, alternating rounds")
    with exchange_process({"data_dir": str(ds.data_dir)}, name="bench-exchange-plain") as plain, \
            exchange_process({"data_dir": str(ds.data_dir), "telemetry": "full"}, name="bench-exchange-otel") as otel, \
            exchange_process({"data_dir": str(ds.data_dir), "telemetry": "metrics"}, name="bench-exchange-metrics") as metered, \
            exchange_process({"data_dir": str(ds.data_dir), "telemetry": "sampled"}, name="bench-exchange-sampled") as sampled, \
            loadgen_process({**setup, "target": plain.hello["address"]}, name="bench-loadgen-plain") as lg_plain, \
            loadgen_process({**setup, "target": otel.hello["address"]}, name="bench-loadgen-otel") as lg_otel, \
            loadgen_process({**setup, "target": metered.hello["address"]}, name="bench-loadgen-metrics") as lg_metrics, \
            loadgen_process({**setup, "target": sampled.hello["address"]}, name="bench-loadgen-sampled") as lg_sampled:
        variants = [
            Variant("without", lg_plain, [plain], {"method": "lookup", "tokens": "premint"}),
            Variant("with", lg_otel, [otel], {"method": "lookup", "tokens": "premint"}),
            Variant("metrics only", lg_metrics, [metered], {"method": "lookup", "tokens": "premint"}),
            Variant("1% of traces", lg_sampled, [sampled], {"method": "lookup", "tokens": "premint"}),
        ]
        closed = closed_rounds(variants, s.rounds, s.closed_seconds, s.warmup, s.concurrency)
        for v in variants:
            results[v.name] = {"closed": merge_closed(closed[v.name]), "ratio": paired_ratio(closed[v.name], closed["without"])}
        rates = {v.name: max(10.0, results["without"]["closed"]["qps"] * 0.5) for v in variants}
        opened = open_rounds(variants, rates, s.open_rounds, s.open_seconds, s.warmup)
        for v in variants:
            results[v.name]["open50"] = merge_open(opened[v.name])
    rows = [
        [name, fmt_num(results[name]["closed"]["qps"]), fmt_ratio(results[name]["ratio"]["median"]),
         fmt_pcts(results[name]["open50"]["latency_ms"])]
        for name in ("without", "with", "metrics only", "1% of traces")
    ]
    return {
        "title": "telemetry_overhead: cached Lookup with telemetry vs without (ratio = with / without)",
        "header": ["telemetry", "max QPS", "vs without", "@50% of the plain max: p50/p99/p999 ms"],
        "rows": rows,
        "targets": [],
        "notes": ["All four servers answer the same stored verdicts with pre-minted tokens; the open loop offers each the same rate.",
                  "with: every span recorded and exported (to an exporter that drops them) plus metrics; metrics only: no spans "
                  "(numrep serve --metrics-port without a span exporter); 1% of traces: parentbased_traceidratio at 0.01."],
        "data": results,
    }
