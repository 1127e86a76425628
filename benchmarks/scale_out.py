"""Scenario 6: N exchange processes sharing one port (SO_REUSEPORT) on one
shared SQLite data directory, N = 1 and 2: closed-loop Lookup QPS ratio.

``start_server`` needs no change: gRPC enables ``grpc.so_reuseport`` by
default on Linux, so a second process binding the same 127.0.0.1 port joins
the first and the kernel spreads new connections over both. The two
configurations are measured in interleaved rounds without restarting
anything: load generator A connected while only server 1 was listening (its
connections stay on server 1: N=1); load generator B connected after server 2
joined (its connections are spread over both: N=2). Tokens are pre-minted so
the client's signing does not cap the result on a 2-core machine.
"""

from __future__ import annotations

from typing import Any

from benchmarks._context import Ctx
from benchmarks._load import loadgen_process
from benchmarks._measure import Variant, closed_rounds, merge_closed, paired_ratio
from benchmarks._servers import exchange_process
from benchmarks._stats import fmt_num, fmt_paired

NAME = "scale_out"


def run(ctx: Ctx) -> dict:
    s = ctx.sizes
    ds = ctx.lookup_dataset()
    setup = {"identity": ctx.fed.carrier_ed.to_json(), "numbers": ds.queries, "channels": s.scale_channels}
    results: dict[str, Any] = {}
    with exchange_process({"data_dir": str(ds.data_dir), "services": ["lookup"]}, name="bench-exchange-1") as one:
        address = one.hello["address"]
        port = int(address.rsplit(":", 1)[1])
        with loadgen_process({**setup, "target": address}, name="bench-loadgen-n1") as lg_one:
            ctx.log(f"scale_out: second exchange process joining 127.0.0.1:{port} (default grpc.so_reuseport)")
            try:
                two = exchange_process({"data_dir": str(ds.data_dir), "services": ["lookup"], "listen": f"127.0.0.1:{port}"},
                                       name="bench-exchange-2")
            except Exception as exc:  # noqa: BLE001
                return {"failed": f"a second server could not bind the same port (so_reuseport off?): {exc}"}
            with two, loadgen_process({**setup, "target": address}, name="bench-loadgen-n2") as lg_two:
                variants = [
                    Variant("n1", lg_one, [one, two], {"method": "lookup", "tokens": "premint"}),
                    Variant("n2", lg_two, [one, two], {"method": "lookup", "tokens": "premint"}),
                ]
                ctx.log(f"scale_out: {s.rounds} interleaved rounds of {s.scale_seconds:.1f} s, {s.scale_channels} connections, "
                        f"{s.concurrency} calls in flight")
                closed = closed_rounds(variants, s.rounds, s.scale_seconds, s.warmup, s.concurrency)
                for v in variants:
                    results[v.name] = merge_closed(closed[v.name])
                    each = [r["server_cpu_each"] for r in closed[v.name] if r.get("server_cpu_each")]
                    results[v.name]["server_cpu_each"] = [sum(c[i] for c in each) / len(each) for i in range(2)] if each else None
                results["ratio"] = paired_ratio(closed["n2"], closed["n1"])
    return summarize(ctx, results)


def summarize(ctx: Ctx, r: dict) -> dict:
    def cpu(v: dict) -> str:
        each = v.get("server_cpu_each") or [0, 0]
        return f"{each[0]:.2f} + {each[1]:.2f}"

    rows = [
        ["N=1 (connections pinned to server 1)", fmt_num(r["n1"]["qps"]), "1.00x", cpu(r["n1"]), f"{r['n1']['client_cpu']:.2f}"],
        ["N=2 (SO_REUSEPORT, same port)", fmt_num(r["n2"]["qps"]),
         fmt_paired(r["ratio"]), cpu(r["n2"]), f"{r['n2']['client_cpu']:.2f}"],
    ]
    return {
        "title": "scale_out: exchange processes sharing one port and one SQLite data dir (ratio = N=2 / N=1)",
        "header": ["configuration", "max QPS", "vs N=1", "server CPU (1 + 2)", "client CPU"],
        "rows": rows,
        "targets": [],
        "notes": [
            f"{ctx.sizes.scale_channels} gRPC connections, {ctx.sizes.concurrency} calls in flight, pre-minted tokens, "
            "interleaved rounds; the machine has 2 cores shared by the servers AND the load generator, so N=2 cannot reach 2x here: "
            "the server CPU columns show how the work split.",
            "start_server needed no change: grpc.so_reuseport is on by default for grpc.aio servers on Linux.",
        ],
        "data": r,
    }
