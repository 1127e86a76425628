"""Scenario 1: per-call Lookup of numbers with stored verdicts (SQLite store).

Six variants from one load generator design, each with the load generator in
its own process (so the client's CPU is not taken from the server's event loop):

* baseline: a bare ``grpc.aio`` server answering a Verdict of the same size
  (the same stored verdict, serialised) from memory, no auth;
* exchange, pre-minted tokens: the server's full cost (JWT verification,
  replay check, store read, protobuf), the client's signing done beforehand;
* exchange, mint per call: what a real client sees, signing inside the loop;
* exchange, call session: a session opened once, a call token MAC'd per call
  inside the loop (what the carrier SDK does; ``numrep.signing.sessions``);
* baseline over mutual TLS: the bare server with the exchange's TLS credentials
  (client certificate required), the client presenting a participant certificate;
* exchange, certificate identity: the exchange over the same mutual TLS, no
  per-call token (the connection's certificate authenticates the carrier);
  its ratio is against the mutual-TLS baseline.
* baseline stream / exchange stream: the same lookups, each a message on one
  ``LookupStream`` kept open (the carrier SDK's ``stream=True``;
  ``numrep_client._stream``), against the bare server answering each request
  message from memory; the exchange's stream is also compared with the bare
  unary baseline (what it buys over any Lookup call).

For each: maximum QPS in a closed loop, then open-loop latency (from the
scheduled send time) at 50% and 80% of that maximum. The cost of minting one
token is measured separately in the load-generator process.
"""

from __future__ import annotations

from contextlib import ExitStack
from typing import Any

from benchmarks._context import Ctx
from benchmarks._load import loadgen_process
from benchmarks._measure import Variant, closed_rounds, merge_closed, merge_open, open_rounds, paired_ratio
from benchmarks._servers import baseline_process, exchange_process, mtls_files
from benchmarks._stats import fmt_gc_pair, fmt_num, fmt_pcts, fmt_ratio, fmt_server_ms, fmt_spread, server_ms_per_call

NAME = "lookup_cached"
# variant -> the baseline its QPS ratio is taken against (same transport)
BASELINE_OF = {"baseline": "baseline", "exchange_premint": "baseline", "exchange_mint": "baseline", "exchange_session": "baseline",
               "baseline_mtls": "baseline_mtls", "exchange_cert": "baseline_mtls",
               "baseline_stream": "baseline_stream", "exchange_stream": "baseline_stream"}


def representative_verdict(data_dir: Any, number: str) -> bytes:
    from numrep.api.convert import verdict_to_pb
    from numrep.store.sqlite import SqliteStore

    store = SqliteStore.in_directory(data_dir)
    try:
        verdict = store.get_verdict(number)
        assert verdict is not None, "dataset lost a verdict"
        return verdict_to_pb(verdict).SerializeToString()
    finally:
        store.close()


# Capacity, not policy: a carrier's default lookup rate (5,000/s, burst 10,000) capped the stream's closed
# loop, which then counted refusals among its work; every lookup still takes from the (larger) rate.
CAPACITY_RATES = "carrier.lookup=50000/100000"


def run(ctx: Ctx) -> dict:
    s = ctx.sizes
    ds = ctx.lookup_dataset()
    verdict = representative_verdict(ds.data_dir, ds.queries[0])
    setup = {"identity": ctx.fed.carrier_ed.to_json(), "numbers": ds.queries, "channels": 1}
    results: dict[str, Any] = {"dataset": ds.build, "verdict_bytes": len(verdict)}

    tls = mtls_files(ctx.tmp / "lookup-mtls", ctx.fed.carrier_es)
    cert_setup = {**setup, "identity": ctx.fed.carrier_es.to_json(), "tls": tls["client"]}

    ctx.log("lookup_cached: starting the baselines (bare grpc.aio, verdict from memory; plaintext and mutual TLS) "
            "and the exchanges (SQLite; plaintext and mutual TLS with certificate identity)")
    with ExitStack() as stack:
        start = stack.enter_context
        base = start(baseline_process({"verdict": verdict}))
        ex = start(exchange_process({"data_dir": str(ds.data_dir), "rate_limits": CAPACITY_RATES}))
        base_tls = start(baseline_process({"verdict": verdict, "tls": tls["server"]}, name="bench-baseline-mtls"))
        ex_tls = start(exchange_process({"data_dir": str(ds.data_dir), "tls": tls["server"]}, name="bench-exchange-mtls"))
        lg_base = start(loadgen_process({**setup, "target": base.hello["address"]}, name="bench-loadgen-base"))
        lg_ex = start(loadgen_process({**setup, "target": ex.hello["address"]}, name="bench-loadgen-exchange"))
        lg_base_tls = start(loadgen_process({**cert_setup, "target": base_tls.hello["address"]}, name="bench-loadgen-base-mtls"))
        lg_cert = start(loadgen_process({**cert_setup, "target": ex_tls.hello["address"]}, name="bench-loadgen-cert"))
        variants = [
            Variant("baseline", lg_base, [base], {"method": "lookup", "tokens": "static"}),
            Variant("exchange_premint", lg_ex, [ex], {"method": "lookup", "tokens": "premint"}),
            Variant("exchange_mint", lg_ex, [ex], {"method": "lookup", "tokens": "mint"}),
            Variant("exchange_session", lg_ex, [ex], {"method": "lookup", "tokens": "session"}),
            Variant("baseline_mtls", lg_base_tls, [base_tls], {"method": "lookup", "tokens": "none"}),
            Variant("exchange_cert", lg_cert, [ex_tls], {"method": "lookup", "tokens": "none"}),
            Variant("baseline_stream", lg_base, [base], {"method": "stream", "tokens": "static"}),
            Variant("exchange_stream", lg_ex, [ex], {"method": "stream", "tokens": "static"}),
        ]
        ctx.log(f"lookup_cached: closed loop, {s.rounds} interleaved rounds of {s.closed_seconds:.1f} s per variant")
        closed = closed_rounds(variants, s.rounds, s.closed_seconds, s.warmup, s.concurrency)
        for v in variants:
            results[v.name] = {"closed": merge_closed(closed[v.name])}
            results[v.name]["ratio"] = paired_ratio(closed[v.name], closed[BASELINE_OF[v.name]])
        results["mtls_cost"] = paired_ratio(closed["baseline_mtls"], closed["baseline"])
        results["stream_vs_unary_baseline"] = paired_ratio(closed["exchange_stream"], closed["baseline"])
        for share in (0.5, 0.8):
            rates = {v.name: max(10.0, results[v.name]["closed"]["qps"] * share) for v in variants}
            ctx.log(f"lookup_cached: open loop at {share:.0%} of each variant's max, {s.open_rounds} rounds of {s.open_seconds:.1f} s")
            opened = open_rounds(variants, rates, s.open_rounds, s.open_seconds, s.warmup)
            for v in variants:
                results[v.name][f"open{int(share * 100)}"] = merge_open(opened[v.name])
        results["mint_cost"] = lg_ex.request({"cmd": "mint_cost", "identities": [ctx.fed.carrier_ed.to_json(), ctx.fed.carrier_es.to_json()],
                                              "seconds": 1.0})
        if ctx.profile:
            ctx.log("lookup_cached: profiling the exchange under closed-loop load (not part of the table)")
            ex.request({"cmd": "profile_start"})
            lg_ex.request({"cmd": "closed", "method": "lookup", "tokens": "premint", "pool": 8000,
                           "concurrency": s.concurrency, "duration": 4.0, "warmup": 0.2}, 300)
            results["profile"] = ex.request({"cmd": "profile_stop", "path": ctx.profile_path(NAME, "exchange")})["path"]
            base.request({"cmd": "profile_start"})
            lg_base.request({"cmd": "closed", "method": "lookup", "tokens": "static",
                             "concurrency": s.concurrency, "duration": 4.0, "warmup": 0.2}, 300)
            results["profile_baseline"] = base.request({"cmd": "profile_stop", "path": ctx.profile_path(NAME, "baseline")})["path"]
    return summarize(ctx, results)


def summarize(ctx: Ctx, r: dict) -> dict:
    rows = []
    for key, label in (("baseline", "baseline: bare grpc.aio, from memory"),
                       ("exchange_premint", "exchange, tokens pre-minted"),
                       ("exchange_mint", "exchange, token minted per call"),
                       ("exchange_session", "exchange, call session (token MAC'd per call)"),
                       ("baseline_mtls", "baseline over mutual TLS"),
                       ("exchange_cert", "exchange, mTLS certificate identity, no token"),
                       ("baseline_stream", "baseline: bare grpc.aio LookupStream, from memory"),
                       ("exchange_stream", "exchange, LookupStream (one stream, opened once)")):
        v = r[key]
        own_base = BASELINE_OF[key] == key
        rows.append([label, fmt_num(v["closed"]["qps"]), fmt_ratio(v["ratio"]["median"]) + ("" if own_base else fmt_spread(v["ratio"])),
                     fmt_pcts(v["open50"]["latency_ms"]), fmt_num(v["open50"]["achieved_qps"]),
                     fmt_pcts(v["open80"]["latency_ms"]), fmt_num(v["open80"]["achieved_qps"]),
                     f"{v['closed']['server_cpu']:.2f}/{v['closed']['client_cpu']:.2f}",
                     fmt_server_ms(v["closed"])])
    mint = r["mint_cost"]
    mint_text = ", ".join(f"{alg} {m['us_per_token']:.0f} us/token ({m['tokens_per_s']:,.0f}/s on one core)" for alg, m in mint.items())
    prem, mint_run = r["exchange_premint"], r["exchange_mint"]
    q_ratio = prem["ratio"]["median"]
    q_ratio_mint = mint_run["ratio"]["median"]
    p99_prem = prem["open50"]["latency_ms"]["p99"]
    p99_mint = mint_run["open50"]["latency_ms"]["p99"]
    session = r["exchange_session"]
    q_ratio_session = session["ratio"]["median"]
    p99_session = session["open50"]["latency_ms"]["p99"]
    cert = r["exchange_cert"]
    q_ratio_cert = cert["ratio"]["median"]
    p99_cert = cert["open50"]["latency_ms"]["p99"]
    targets = [
        {"target": "cached lookup QPS >= 0.6x bare gRPC baseline (pre-minted tokens)", "measured": fmt_ratio(q_ratio),
         "holds": q_ratio is not None and q_ratio >= 0.6},
        {"target": "cached lookup QPS >= 0.6x bare gRPC baseline (mint per call)", "measured": fmt_ratio(q_ratio_mint),
         "holds": q_ratio_mint is not None and q_ratio_mint >= 0.6},
        {"target": "p99 <= 10 ms at 50% of max (pre-minted / mint per call)",
         "measured": f"{p99_prem:.2f} / {p99_mint:.2f} ms" if p99_prem is not None and p99_mint is not None else "-",
         "holds": p99_prem is not None and p99_mint is not None and p99_prem <= 10 and p99_mint <= 10
         and not prem["open50"]["latency_ms"].get("lower_bound") and not mint_run["open50"]["latency_ms"].get("lower_bound")},
        {"target": "cached lookup QPS >= 0.6x bare gRPC baseline (call session, token MAC'd per call)",
         "measured": fmt_ratio(q_ratio_session), "holds": q_ratio_session is not None and q_ratio_session >= 0.6},
        {"target": "p99 <= 10 ms at 50% of max (call session)",
         "measured": f"{p99_session:.2f} ms" if p99_session is not None else "-",
         "holds": p99_session is not None and p99_session <= 10 and not session["open50"]["latency_ms"].get("lower_bound")},
        {"target": "cached lookup QPS >= 0.6x bare gRPC over the same mutual TLS (certificate identity, no token)",
         "measured": fmt_ratio(q_ratio_cert), "holds": q_ratio_cert is not None and q_ratio_cert >= 0.6},
        {"target": "p99 <= 10 ms at 50% of max (certificate identity)",
         "measured": f"{p99_cert:.2f} ms" if p99_cert is not None else "-",
         "holds": p99_cert is not None and p99_cert <= 10 and not cert["open50"]["latency_ms"].get("lower_bound")},
    ]
    notes = [
        f"{r['dataset']['count']:,} numbers with stored verdicts; verdict message {r['verdict_bytes']} bytes; "
        f"closed loop {ctx.sizes.concurrency} calls in flight on one channel; open loop latency is measured from each call's "
        f"scheduled send time (no coordinated omission).",
        "The load generator runs in its own process (multiprocessing, spawn); server and client each get one of the 2 cores. "
        "CPU column = cores used by server/client during the closed loop; a client near 1.0 means the client, not the server, bounded QPS.",
        f"Token minting cost (load-generator process): {mint_text}.",
    ]
    base_cpu, prem_cpu = server_ms_per_call(r["baseline"]["closed"]), server_ms_per_call(prem["closed"])
    if base_cpu and prem_cpu:
        notes.append(f"server CPU per call: exchange {prem_cpu:.2f} ms vs baseline {base_cpu:.2f} ms ({prem_cpu / base_cpu:.1f}x); "
                     "CPU time per call is less sensitive to other load on the machine than QPS.")
    base_tls_cpu, cert_cpu = server_ms_per_call(r["baseline_mtls"]["closed"]), server_ms_per_call(cert["closed"])
    if base_tls_cpu and cert_cpu:
        notes.append(f"server CPU per call with certificate identity: {cert_cpu:.2f} ms vs mutual-TLS baseline {base_tls_cpu:.2f} ms "
                     f"({cert_cpu / base_tls_cpu:.1f}x)" + (f"; with pre-minted tokens {prem_cpu:.2f} ms." if prem_cpu else "."))
    stream, over_unary = r["exchange_stream"], r.get("stream_vs_unary_baseline") or {}
    if over_unary.get("median") is not None:
        notes.append(f"LookupStream: the exchange answers {over_unary['median']:.2f}x{fmt_spread(over_unary)} the lookups/s of the bare "
                     f"unary baseline, at {fmt_server_ms(stream['closed'])} ms of server CPU a lookup against "
                     f"{fmt_server_ms(r['baseline']['closed'])} ms a bare unary call; the bare stream rows answer each request "
                     "message at once, from memory.")
    mtls = r.get("mtls_cost") or {}
    if mtls.get("median") is not None:
        notes.append(f"mutual TLS rows: both use the same CA, server certificate and client certificate (bound to "
                     f"{ctx.fed.carrier_es.participant_id}'s ES256 key), no authorization metadata; 'vs base' is against "
                     f"the mutual-TLS baseline, which itself runs at {mtls['median']:.2f}x the plaintext baseline.")
    notes.append(f"'vs base' = median over {len(prem['ratio']['rounds'])} interleaved rounds of (exchange QPS / baseline QPS in the same round), "
                 "[min-max] in brackets; latency percentiles merge the samples of all rounds.")
    if any(r[k]["closed"].get("inline_mints") for k in ("exchange_premint",)):
        notes.append(f"pre-minted pool ran dry: {r['exchange_premint']['closed']['inline_mints']} tokens minted inline")
    notes.append("GC pauses in the open loop at 50% of max, server | load generator: " + "; ".join(
        f"{key} {fmt_gc_pair(r[key]['open50'])}" for key in BASELINE_OF))
    if r.get("profile"):
        notes.append(f"server profile: {r['profile']}")
    return {
        "title": "lookup_cached: Lookup of stored verdicts, SQLite (ratio = exchange / baseline)",
        "header": ["variant", "max QPS", "vs base", "@50% p50/p99/p999 ms", "@50% QPS", "@80% p50/p99/p999 ms", "@80% QPS", "CPU srv/cli", "srv CPU ms/call"],
        "rows": rows, "targets": targets, "notes": notes, "data": r,
    }
