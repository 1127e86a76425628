"""Scenario 7: Lookup over a table of N numbers (default 1M, --full 10M),
sustained open-loop arrivals at 4,000/s for a bounded time: achieved rate and
latency percentiles from the scheduled send time.

The same arrivals are also sent as lookups on ``LookupStream`` (on a stream opened
once, as the carrier SDK's ``stream=True`` sends them: a stream writes at most once
per millisecond, lookups arriving sooner leave together), by both generators; the
native generator also without that write interval (a message per lookup).

Baselines in the same run: the bare grpc.aio server at the same 4,000/s (what
the transport and this machine allow), and the store's own read latency
in-process on the N-number table versus the 20,000-number lookup table (does
table size matter?). The exchange is also run at half of its measured
closed-loop maximum, to separate "too slow for 4,000/s" from "slower on a big
table"; there, rounds alternate with a second exchange left on CPython's
default garbage-collector settings (``numrep.gc_tuning`` is what ``numrep
serve`` changes), with every process's GC pauses reported.

The Python load generator cannot offer 4,000/s on this 2-core machine (it spends
about as much CPU per call as the server). So the same arrivals are also sent by
the native generator (``benchmarks/native_load``, Go; ``benchmarks._native``) over
mutual TLS, to the bare server and to the exchange authenticating callers by
their client certificates, with one and with two exchange processes sharing the
port (``grpc.so_reuseport``).
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

from benchmarks import _fixtures as fx
from benchmarks._context import Ctx
from benchmarks._load import loadgen_process
from benchmarks._measure import Variant, closed_rounds, merge_closed, merge_gc, merge_open, open_rounds
from benchmarks._procs import cpu_seconds, settle
from benchmarks._native import binary as native_binary, open_loop as native_open_loop
from benchmarks._servers import baseline_process, exchange_process, mtls_files
from benchmarks._stats import fmt_gc, fmt_gc_pair, fmt_num, fmt_pcts, percentiles
from benchmarks.lookup_cached import representative_verdict
from numrep_client._stream import DEFAULT_WRITE_INTERVAL

NAME = "data_scale"


MAX_ROUNDS = 2  # interleaved closed-loop rounds of each exchange for its maximum
# LookupStreams the native generator keeps open (one per connection), each writing at
# most once per the SDK's default write interval, as one carrier client's stream does
STREAMS = 1
UNSPACED_STREAMS = 4  # the same without a write interval: a message per lookup

def store_latency(dirs: dict[str, Path], queries: dict[str, list[str]], per_round: int = 2000, rounds: int = 5) -> dict:
    """get_verdict latency in this process, alternating between the stores in rounds."""
    from numrep.store.sqlite import SqliteStore

    stores = {k: SqliteStore.in_directory(d) for k, d in dirs.items()}
    samples: dict[str, list[float]] = {k: [] for k in dirs}
    try:
        for r in range(rounds):
            for key, store in stores.items():
                numbers = queries[key][r * per_round:(r + 1) * per_round]
                for n in numbers:
                    t0 = time.perf_counter()
                    verdict = store.get_verdict(n)
                    samples[key].append((time.perf_counter() - t0) * 1000)
                    if verdict is None:
                        raise AssertionError(f"no verdict for {n}")
    finally:
        for store in stores.values():
            store.close()
    return {k: percentiles(v) for k, v in samples.items()}


def run(ctx: Ctx) -> dict:
    s = ctx.sizes
    n = s.data_numbers
    data_dir = ctx.tmp / "scale"
    ctx.log(f"data_scale: building a table of {n:,} numbers")
    results: dict[str, Any] = {"dataset": fx.build_store(data_dir, ctx.fed, n, area_codes=ctx.area_codes, templates=ctx.templates,
                                                          exact=ctx.exact_data, log=ctx.log)}
    queries = fx.sample_numbers(ctx.area_codes, n, 40_000, seed=5)
    results["dataset"]["valid_fraction"] = fx.spot_check(queries)
    small = ctx.lookup_dataset()
    ctx.log("data_scale: in-process store read latency, N-number table vs 20k-number table")
    results["store_latency"] = store_latency({"large": data_dir, "small": small.data_dir},
                                             {"large": queries, "small": random.Random(3).sample(small.queries, len(small.queries))})

    verdict = representative_verdict(data_dir, queries[0])
    setup = {"identity": ctx.fed.carrier_ed.to_json(), "numbers": queries, "channels": 1}
    spec = {"data_dir": str(data_dir), "services": ["lookup", "registry"]}
    with baseline_process({"verdict": verdict}) as base, exchange_process(spec) as ex, \
            exchange_process({**spec, "gc_tuning": False}, name="bench-exchange-default-gc") as ex_gc, \
            loadgen_process({**setup, "target": base.hello["address"]}, name="bench-loadgen-base") as lg_base, \
            loadgen_process({**setup, "target": ex.hello["address"]}, name="bench-loadgen-exchange") as lg_ex, \
            loadgen_process({**setup, "target": ex_gc.hello["address"]}, name="bench-loadgen-default-gc") as lg_gc:
        base_v = Variant("baseline", lg_base, [base], {"method": "lookup", "tokens": "static"})
        ex_v = Variant("exchange", lg_ex, [ex], {"method": "lookup", "tokens": "session"})
        gc_v = Variant("default_gc", lg_gc, [ex_gc], {"method": "lookup", "tokens": "session"})
        stream_v = Variant("exchange_stream", lg_ex, [ex], {"method": "stream", "tokens": "static"})
        ctx.log("data_scale: closed-loop maximum of the exchange on the large table (and with CPython's default GC)")
        probe = closed_rounds([ex_v, gc_v], MAX_ROUNDS, 2.0, s.warmup, s.concurrency, estimate=2000.0)
        results["exchange_max"] = merge_closed(probe["exchange"])
        results["default_gc_max"] = merge_closed(probe["default_gc"])
        ctx.log(f"data_scale: open loop at {s.data_rate:,.0f}/s for {s.data_seconds:.0f} s, exchange then baseline")
        fixed = open_rounds([ex_v, base_v], {"exchange": s.data_rate, "baseline": s.data_rate}, 1, s.data_seconds, s.warmup,
                            max_inflight=1000, drain=3.0)
        results["exchange_at_rate"] = merge_open(fixed["exchange"])
        results["baseline_at_rate"] = merge_open(fixed["baseline"])
        time.sleep(1.0)
        ctx.log(f"data_scale: open loop at {s.data_rate:,.0f}/s for {s.data_seconds:.0f} s, lookups on one LookupStream")
        streamed = open_rounds([stream_v], {"exchange_stream": s.data_rate}, 1, s.data_seconds, s.warmup, max_inflight=1000, drain=3.0)
        results["stream_at_rate"] = merge_open(streamed["exchange_stream"])
        time.sleep(1.0)
        half = max(10.0, results["exchange_max"]["qps"] * 0.5)
        ctx.log(f"data_scale: at half the exchange's maximum ({half:,.0f}/s), {s.open_rounds} rounds alternating "
                "with an exchange on CPython's default GC settings")
        halves = open_rounds([ex_v, gc_v], {"exchange": half, "default_gc": half}, s.open_rounds, s.data_seconds, s.warmup)
        results["exchange_at_half"] = merge_open(halves["exchange"])
        results["default_gc_at_half"] = merge_open(halves["default_gc"])
    results["native"] = native_runs(ctx, data_dir, queries, verdict)
    return summarize(ctx, results)


def native_runs(ctx: Ctx, data_dir: Path, queries: list[str], verdict: bytes) -> dict:
    """The target's arrivals from the native generator over mutual TLS: the bare
    server, then the exchange (certificate identity), each with 1 and 2 processes."""
    from numrep.v1 import lookup_pb2

    generator = native_binary()
    if isinstance(generator, str):
        ctx.log(f"data_scale: native load generator unavailable: {generator}")
        return {"skipped": generator}
    s = ctx.sizes
    tls = mtls_files(ctx.tmp / "scale-mtls", ctx.fed.carrier_es)
    requests = [lookup_pb2.LookupRequest(number=q).SerializeToString() for q in queries]

    def run(address: str, *servers: Any, stream: bool = False, streams: int = STREAMS,
            write_interval: float = DEFAULT_WRITE_INTERVAL) -> dict:
        pids = [server.hello["pid"] for server in servers]
        settled = settle(pids)  # the run before may have left a server working off its backlog
        for server in servers:
            server.request({"cmd": "gc_pauses", "reset": True})
        before, started = [cpu_seconds(pid) or 0.0 for pid in pids], time.perf_counter()
        result = native_open_loop(generator, address, requests, s.data_rate, s.data_seconds,
                                  warmup=max(1.0, s.warmup), tls=tls["client"], work_dir=ctx.tmp / "native",
                                  stream=stream, connections=streams if stream else 32, write_interval=write_interval)
        elapsed = time.perf_counter() - started
        result["server_cpu"] = [round(((cpu_seconds(pid) or 0.0) - b) / elapsed, 2) for pid, b in zip(pids, before)]
        result["settled_s"] = settled
        result["server_gc"] = merge_gc([server.request({"cmd": "gc_pauses"})["gc"] for server in servers])
        return result

    runs: dict[str, Any] = {}
    ctx.log(f"data_scale: native generator at {s.data_rate:,.0f}/s over mutual TLS: bare server")
    with baseline_process({"verdict": verdict, "tls": tls["server"]}, name="bench-baseline-mtls-1") as base:
        runs["baseline"] = run(base.hello["address"], base)
        ctx.log(f"data_scale: native generator at {s.data_rate:,.0f}/s: bare server, lookups on {STREAMS} LookupStream")
        runs["baseline_stream"] = run(base.hello["address"], base, stream=True)
        port = base.hello["address"].rsplit(":", 1)[1]
        with baseline_process({"verdict": verdict, "tls": tls["server"], "listen": f"127.0.0.1:{port}"},
                              name="bench-baseline-mtls-2") as base_two:
            ctx.log(f"data_scale: native generator at {s.data_rate:,.0f}/s: bare server, 2 processes sharing the port")
            runs["baseline_2"] = run(base.hello["address"], base, base_two)
    spec = {"data_dir": str(data_dir), "services": ["lookup"], "tls": tls["server"]}
    with exchange_process(spec, name="bench-exchange-mtls-1") as one:
        ctx.log(f"data_scale: native generator at {s.data_rate:,.0f}/s: exchange, 1 process, certificate identity")
        runs["exchange_1"] = run(one.hello["address"], one)
        ctx.log(f"data_scale: native generator at {s.data_rate:,.0f}/s: exchange, 1 process, lookups on {STREAMS} LookupStream")
        runs["exchange_stream_1"] = run(one.hello["address"], one, stream=True)
        ctx.log(f"data_scale: native generator at {s.data_rate:,.0f}/s: exchange, 1 process, lookups on {UNSPACED_STREAMS} "
                "LookupStreams without a write interval")
        runs["exchange_unspaced_1"] = run(one.hello["address"], one, stream=True, streams=UNSPACED_STREAMS, write_interval=0.0)
        port = one.hello["address"].rsplit(":", 1)[1]
        with exchange_process({**spec, "listen": f"127.0.0.1:{port}"}, name="bench-exchange-mtls-2") as two:
            ctx.log(f"data_scale: native generator at {s.data_rate:,.0f}/s: exchange, 2 processes sharing the port")
            runs["exchange_2"] = run(one.hello["address"], one, two)
            ctx.log(f"data_scale: native generator at {s.data_rate:,.0f}/s: exchange, 2 processes sharing the port, "
                    f"{UNSPACED_STREAMS} LookupStreams, each with the write interval")
            runs["exchange_stream_2"] = run(one.hello["address"], one, two, stream=True, streams=UNSPACED_STREAMS)
    return runs


def summarize(ctx: Ctx, r: dict) -> dict:
    n = r["dataset"]["count"]
    rate = ctx.sizes.data_rate
    rows = []
    for key, label in (("baseline_at_rate", f"baseline bare grpc.aio at {rate:,.0f}/s"),
                       ("exchange_at_rate", f"exchange, {n:,} numbers, at {rate:,.0f}/s"),
                       ("stream_at_rate", f"exchange, {n:,} numbers, at {rate:,.0f}/s on one LookupStream"),
                       ("exchange_at_half", f"exchange, {n:,} numbers, at 50% of its max"),
                       ("default_gc_at_half", "  the same, CPython's default GC settings")):
        v = r[key]
        rows.append([label, fmt_num(v["rate"]), fmt_num(v["achieved_qps"]), fmt_pcts(v["latency_ms"]),
                     f"{v['unfinished']:,}", f"{v['server_cpu']:.2f}/{v['client_cpu']:.2f}" if v.get("client_cpu") is not None else "-"])
    sl = r["store_latency"]
    at = r["exchange_at_rate"]
    p99 = at["latency_ms"]["p99"]
    holds = at["achieved_qps"] >= 0.98 * rate and p99 is not None and p99 <= 10 and not at["latency_ms"].get("lower_bound")
    large, small = sl["large"], sl["small"]
    notes = [
        f"exchange closed-loop maximum on this table: {r['exchange_max']['qps']:,.0f} QPS ({ctx.sizes.concurrency} in flight, call-session tokens as the carrier SDK sends them); "
        f"with CPython's default GC settings {r['default_gc_max']['qps']:,.0f} QPS ({MAX_ROUNDS} interleaved rounds each).",
        f"in-process SqliteStore.get_verdict p50/p99: {large['p50']:.3f}/{large['p99']:.3f} ms on {n:,} numbers vs "
        f"{small['p50']:.3f}/{small['p99']:.3f} ms on 20,000 (ratio of p99 {large['p99'] / small['p99']:.2f}x).",
        f"table built in {r['dataset']['seconds']:.0f} s ({r['dataset']['method']}; {r['dataset'].get('through_store', 0):,} rows through "
        f"put_verdicts), {r['dataset']['db_bytes'] / 1e6:,.0f} MB; {r['dataset']['valid_fraction']:.0%} of sampled query numbers valid.",
        "GC pauses, server | load generator: " + "; ".join(
            f"{key} {fmt_gc_pair(r[key])}"
            for key in ("baseline_at_rate", "exchange_at_rate", "stream_at_rate", "exchange_at_half", "default_gc_at_half")) + ".",
        "'unfinished' = calls still queued or in flight when the bounded run ended (counted with their waiting time so far: percentiles are then lower bounds, '>=').",
    ]
    targets = [{"target": f"{rate:,.0f} lookups/s with p99 <= 10 ms (at {n:,} numbers; the target names 10M: --full)",
                "measured": f"{at['achieved_qps']:,.0f}/s, p99 {'>= ' if at['latency_ms'].get('lower_bound') else ''}{p99:,.1f} ms",
                "holds": holds}]
    streamed = r["stream_at_rate"]
    stream_p99 = streamed["latency_ms"]["p99"]
    targets.append({"target": f"{rate:,.0f} lookups/s with p99 <= 10 ms on one LookupStream, Python generator (at {n:,} numbers)",
                    "measured": f"{streamed['achieved_qps']:,.0f}/s, p99 {'>= ' if streamed['latency_ms'].get('lower_bound') else ''}"
                                f"{stream_p99:,.1f} ms" if stream_p99 is not None else "-",
                    "holds": streamed["achieved_qps"] >= 0.98 * rate and stream_p99 is not None and stream_p99 <= 10
                    and not streamed["latency_ms"].get("lower_bound") and not streamed["errors"]})
    native = r.get("native", {})
    if "skipped" in native:
        notes.append(f"native load generator not run: {native['skipped']}")
    for key, label in (("baseline", "native generator, mTLS: bare grpc.aio x1"),
                       ("baseline_stream", f"native generator, mTLS: bare grpc.aio x1, {STREAMS} LookupStream"),
                       ("baseline_2", "native generator, mTLS: bare grpc.aio x2 (one port)"),
                       ("exchange_1", f"native generator, mTLS: exchange x1, {n:,} numbers"),
                       ("exchange_stream_1", f"native generator, mTLS: exchange x1, {n:,} numbers, {STREAMS} LookupStream"),
                       ("exchange_unspaced_1", f"native generator, mTLS: exchange x1, {n:,} numbers, {UNSPACED_STREAMS} "
                                               "LookupStreams, no write interval"),
                       ("exchange_2", f"native generator, mTLS: exchange x2 (one port), {n:,} numbers"),
                       ("exchange_stream_2", f"native generator, mTLS: exchange x2 (one port), {n:,} numbers, {UNSPACED_STREAMS} LookupStreams, "
                                             f"{DEFAULT_WRITE_INTERVAL * 1000:g} ms write interval")):
        if key not in native:
            continue
        v = native[key]
        lat = v["latency_ms"]
        bound = ">= " if v["lower_bound"] else ""
        rows.append([label, fmt_num(v["offered"]), fmt_num(v["achieved_qps"]),
                     f"{bound}{lat['p50']:.2f} / {lat['p99']:.2f} / {lat['p999']:.2f}", f"{v['unfinished']:,}",
                     f"{'+'.join(f'{c:.2f}' for c in v['server_cpu'])}/{v['client_cpu']:.2f}"])
        if v["errors"]:
            notes.append(f"{label}: {v['errors']:,} errors {v['error_codes']} (first: {v.get('first_error', '')})")
        if key.startswith("exchange"):
            ok = v["achieved_qps"] >= 0.98 * rate and lat["p99"] <= 10 and not v["lower_bound"] and not v["errors"]
            targets.append({"target": f"{rate:,.0f} lookups/s with p99 <= 10 ms, native generator, {label.split(': ')[1]}",
                            "measured": f"{v['achieved_qps']:,.0f}/s, p99 {bound}{lat['p99']:,.1f} ms", "holds": ok})
    if native and "skipped" not in native:
        notes.append("GC pauses of the servers in the native rows: " + "; ".join(
            f"{key} {fmt_gc(v['server_gc'])}" for key, v in native.items() if isinstance(v, dict) and "server_gc" in v) + ".")
        notes.append("native rows: latency from each call's scheduled send time over mutual TLS; the exchange authenticates "
                     "by the client certificate (no per-call token); CPU: each server process's, then the generator's (cores).")
    return {
        "title": f"data_scale: open-loop Lookup at {rate:,.0f}/s over {n:,} numbers (SQLite)",
        "header": ["run", "offered/s", "achieved/s", "p50/p99/p999 ms", "unfinished", "CPU srv/cli"],
        "rows": rows,
        "targets": targets,
        "notes": notes,
        "data": r,
    }
