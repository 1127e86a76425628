"""Interleaved measurement: on a shared, noisy machine a baseline measured a
minute before the subject is not a baseline. Variants (baseline, exchange, ...)
therefore run in short alternating rounds (A, B, C, A, B, C, ...), ratios are
taken within a round and their median is reported with its range; latency
samples of all rounds are merged before percentiles are taken.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Any

from benchmarks._procs import Child, GcTake, cpu_seconds
from benchmarks._stats import percentiles


@dataclass
class Variant:
    name: str
    lg: Child
    servers: list[Child]
    msg: dict = field(default_factory=dict)  # method, tokens, ...


def phase(lg: Child, servers: list[Child], message: dict, timeout: float = 300) -> dict:
    """One load phase; adds the server processes' CPU use (in cores) and their GC pauses (over the whole
    phase, warm-up and drain included) to the result."""
    for s in servers:
        s.request({"cmd": "gc_pauses", "reset": True})
    before = [cpu_seconds(s.pid) or 0.0 for s in servers]
    t0 = time.perf_counter()
    result = lg.request(message, timeout)
    wall = time.perf_counter() - t0 - result.get("premint_seconds", 0.0)
    used = [(cpu_seconds(s.pid) or 0.0) - b for s, b in zip(servers, before)]
    result["server_cpu"] = sum(used) / wall if wall > 0 else None
    result["server_cpu_each"] = [u / wall for u in used] if wall > 0 else None
    result["server_gc"] = merge_gc([s.request({"cmd": "gc_pauses"})["gc"] for s in servers])
    return result


def merge_gc(takes: list[GcTake]) -> GcTake:
    """GC pauses of several processes or rounds: counts and totals added, the longest
    kept; the heap (objects a full pass walks, objects frozen) the largest seen."""
    out: GcTake = {}
    for take in takes:
        for gen, p in take.items():
            if gen == "heap":
                held = out.setdefault("heap", {"tracked": 0, "frozen": 0})
                out["heap"] = {key: max(held[key], p[key]) for key in held}
                continue
            held = out.setdefault(gen, {"count": 0, "total_ms": 0.0, "max_ms": 0.0})
            held["count"] += p["count"]
            held["total_ms"] += p["total_ms"]
            held["max_ms"] = max(held["max_ms"], p["max_ms"])
    return dict(sorted(out.items()))


def _pool(message: dict, estimate: float) -> dict:
    if message.get("tokens") == "premint" and "pool" not in message:
        window = message.get("duration", 1.0) + message.get("warmup", 0.5)
        return {**message, "pool": int(max(estimate, 500.0) * window * 1.3)}
    return message


def closed_rounds(variants: list[Variant], reps: int, duration: float, warmup: float, concurrency: int,
                  estimate: float = 3000.0) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {v.name: [] for v in variants}
    for _ in range(reps):
        for v in variants:
            message = {"cmd": "closed", "concurrency": concurrency, "duration": duration, "warmup": warmup, **v.msg}
            result = phase(v.lg, v.servers, _pool(message, estimate))
            out[v.name].append(result)
            estimate = max(r["qps"] for rs in out.values() for r in rs) * 1.5
    return out


def open_rounds(variants: list[Variant], rates: dict[str, float], reps: int, duration: float, warmup: float,
                max_inflight: int = 1000, drain: float = 5.0) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {v.name: [] for v in variants}
    for _ in range(reps):
        for v in variants:
            message = {"cmd": "open", "rate": rates[v.name], "duration": duration, "warmup": warmup,
                       "max_inflight": max_inflight, "drain": drain, "samples": True, **v.msg}
            out[v.name].append(phase(v.lg, v.servers, message))
    return out


def _median(values: list[float]) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def merge_closed(results: list[dict]) -> dict:
    return {
        "qps": _median([r["qps"] for r in results]),
        "qps_rounds": [r["qps"] for r in results],
        "latency_ms": percentiles([x for r in results for x in r.get("samples_ms", [])]) if any("samples_ms" in r for r in results)
        else results[len(results) // 2]["latency_ms"],
        "server_cpu": _median([r.get("server_cpu") for r in results]),
        "client_cpu": _median([r.get("client_cpu") for r in results]),
        "errors": _sum_counts(r.get("errors", {}) for r in results),
        "inline_mints": sum(r.get("inline_mints", 0) for r in results),
        "server_gc": merge_gc([r.get("server_gc", {}) for r in results]),
        "client_gc": merge_gc([r.get("client_gc", {}) for r in results]),
    }


def merge_open(results: list[dict]) -> dict:
    samples = [x for r in results for x in r.pop("samples_ms", [])]
    stats = percentiles(samples)
    stats["lower_bound"] = any(r.get("unfinished") for r in results)
    return {
        "rate": results[0]["rate"],
        "achieved_qps": _median([r["achieved_qps"] for r in results]),
        "latency_ms": stats,
        "scheduled": sum(r["scheduled"] for r in results),
        "ok": sum(r["ok"] for r in results),
        "unfinished": sum(r.get("unfinished", 0) for r in results),
        "late_dispatch": sum(r.get("late_dispatch", 0) for r in results),
        "errors": _sum_counts(r.get("errors", {}) for r in results),
        "server_cpu": _median([r.get("server_cpu") for r in results]),
        "client_cpu": _median([r.get("client_cpu") for r in results]),
        "inline_mints": sum(r.get("inline_mints", 0) for r in results),
        "server_gc": merge_gc([r.get("server_gc", {}) for r in results]),
        "client_gc": merge_gc([r.get("client_gc", {}) for r in results]),
    }


def paired_ratio(subject: list[dict], base: list[dict], key: str = "qps") -> dict:
    ratios = [s[key] / b[key] for s, b in zip(subject, base) if b.get(key)]
    if not ratios:
        return {"median": None, "min": None, "max": None, "rounds": []}
    return {"median": statistics.median(ratios), "min": min(ratios), "max": max(ratios), "rounds": ratios}


def _sum_counts(counts: Any) -> dict[str, int]:
    total: dict[str, int] = {}
    for c in counts:
        for k, v in c.items():
            total[k] = total.get(k, 0) + v
    return total
