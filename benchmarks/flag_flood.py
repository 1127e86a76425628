"""Scenario 8: carrier Lookup p99 at a fixed arrival rate, without and with one app flooding SubmitFlags.

One app sends SubmitFlags as fast as it can (several calls in flight, large
batches, a fresh token per call) from its own process, while a carrier looks
numbers up at a fixed arrival rate from another (open loop, latency from the
scheduled send time). Rounds alternate quiet / flooded; the reported ratio is
flooded p99 / quiet p99 (median of the per-round ratios, and of the merged
samples). The app's per-participant limits (``numrep.limits``: write calls and
flags per second) refuse most of the flood with RESOURCE_EXHAUSTED; the flood
still costs the exchange a JWT check and the parsing of every batch, which is
what this measures. A second exchange left on CPython's default garbage-collector
settings (``numrep.gc_tuning`` is what ``numrep serve`` changes) runs the same
quiet and flooded phases in the same rounds.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import time
import uuid
from collections import Counter
from typing import Any

from benchmarks._context import Ctx
from benchmarks._load import loadgen_process
from benchmarks._measure import merge_gc, phase
from benchmarks._procs import Child, child_entry, cpu_seconds, serve_commands
from benchmarks._servers import exchange_process
from benchmarks._stats import fmt_gc, fmt_num, fmt_pcts, fmt_ratio, percentiles

NAME = "flag_flood"
LOOKUP_RATE = 100.0       # carrier lookups per second (fixed arrival rate; well below the max on a shared 2-core box)
ROUND_SECONDS = 4.0       # per round and variant (quick); --full: 10
ROUNDS = 3                # quiet/flooded pairs (quick); --full: 5
FLOOD_CONCURRENCY = 8     # SubmitFlags calls in flight
FLOOD_BATCH = 1000        # flags per call (the exchange's default maximum is 10,000)
NEIGHBOUR_BATCH = 100     # the other app: one batch of 100 flags ...
NEIGHBOUR_INTERVAL = 0.2  # ... every 0.2 s after the previous answer


# --- the flooding app, in its own process ------------------------------------------------
class Flooder:
    def __init__(self, spec: dict) -> None:
        import grpc

        from numrep.signing.keys import Identity
        from numrep.v1 import flags_pb2_grpc

        self.identity = Identity.from_json(spec["identity"])
        self.numbers: list[str] = spec["numbers"]
        self.concurrency: int = spec.get("concurrency", FLOOD_CONCURRENCY)
        self.batch_size: int = spec.get("batch", FLOOD_BATCH)
        self.interval: float = spec.get("interval", 0.0)  # pause after each call (a steady app, not a flood)
        self.latencies_ms: list[float] = []
        self.channel = grpc.aio.insecure_channel(spec["target"])
        self.stub = flags_pb2_grpc.FlagsServiceStub(self.channel)
        self.task: asyncio.Task[None] | None = None
        self.counts: Counter[str] = Counter()
        self.flags_accepted = 0
        self.started = 0.0
        self.cpu0 = 0.0

    def _batch(self, rng: random.Random) -> Any:
        from numrep.v1 import flags_pb2

        batch = flags_pb2.FlagBatch(batch_id=uuid.uuid4().hex)
        for _ in range(self.batch_size):
            batch.flags.add(number=rng.choice(self.numbers), category="marketing.robocall",
                            reporter_id=f"user-{rng.randrange(1_000_000)}")
        return batch

    async def _run(self) -> None:
        import grpc

        from numrep.signing.tokens import mint_token

        async def worker(seed: int) -> None:
            rng = random.Random(seed)
            while True:
                metadata = (("authorization", "Bearer " + mint_token(self.identity)),)
                batch = self._batch(rng)
                sent = time.perf_counter()
                try:
                    result = await self.stub.SubmitFlags(batch, metadata=metadata, timeout=30)
                    self.latencies_ms.append((time.perf_counter() - sent) * 1000)
                    self.counts["OK"] += 1
                    self.flags_accepted += result.accepted
                except grpc.aio.AioRpcError as exc:
                    self.counts[exc.code().name] += 1
                if self.interval:
                    await asyncio.sleep(self.interval)

        await asyncio.gather(*(worker(i) for i in range(self.concurrency)))

    async def handle(self, message: dict) -> Any:
        if message["cmd"] == "start":
            self.counts.clear()
            self.latencies_ms.clear()
            self.flags_accepted = 0
            self.started, self.cpu0 = time.monotonic(), time.process_time()
            self.task = asyncio.get_running_loop().create_task(self._run())
            return {"started": True}
        if message["cmd"] == "halt":
            assert self.task is not None
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
            seconds = time.monotonic() - self.started
            calls = sum(self.counts.values())
            return {"seconds": seconds, "calls": dict(self.counts), "calls_per_s": calls / seconds,
                    "flags_sent_per_s": calls * self.batch_size / seconds, "flags_accepted_per_s": self.flags_accepted / seconds,
                    "client_cpu": (time.process_time() - self.cpu0) / seconds, "latencies_ms": list(self.latencies_ms)}
        raise ValueError(f"unknown command {message['cmd']!r}")


async def _flooder(conn: Any, spec: dict) -> None:
    flooder = Flooder(spec)
    await asyncio.wait_for(flooder.channel.channel_ready(), 30)
    conn.send({"ready": True, "pid": os.getpid()})
    stop = await serve_commands(conn, flooder.handle)
    await flooder.channel.close()
    if not stop.get("eof"):
        conn.send({"stopped": True})


def flooder_process(spec: dict) -> Child:
    return Child(child_entry, _flooder, spec, name="bench-flooder")


# --- the scenario ---------------------------------------------------------------------------
VARIANTS = (
    ("quiet", "quiet"),
    ("flooded", "one app flooding SubmitFlags, same process"),
    ("flooded_apart", "the flood on a separate flags-only process"),
    ("quiet_default_gc", "quiet, exchange on CPython's default GC settings"),
    ("flooded_default_gc", "flooded, same process, default GC settings"),
)
QUIET_OF = {"flooded": "quiet", "flooded_apart": "quiet", "flooded_default_gc": "quiet_default_gc"}  # each flood's quiet reference


def run(ctx: Ctx) -> dict:
    ds = ctx.lookup_dataset()
    seconds = 10.0 if ctx.full else ROUND_SECONDS
    rounds = 5 if ctx.full else ROUNDS
    results: dict[str, Any] = {"dataset": ds.build, "rate": LOOKUP_RATE, "round_seconds": seconds, "rounds": rounds,
                               "flood": {"concurrency": FLOOD_CONCURRENCY, "batch": FLOOD_BATCH}}
    carrier = {"identity": ctx.fed.carrier_ed.to_json(), "numbers": ds.queries, "channels": 1}
    app = {"identity": ctx.fed.app.to_json(), "numbers": ds.queries[:5000]}
    # A second app sending its ordinary traffic to the same process: is it served while the first one floods?
    neighbour = {"identity": ctx.fed.other_app.to_json(), "numbers": ds.queries[5000:10000],
                 "concurrency": 1, "batch": NEIGHBOUR_BATCH, "interval": NEIGHBOUR_INTERVAL}
    ctx.log(f"flag_flood: exchange (SQLite), carrier lookups at {LOOKUP_RATE:g}/s, {rounds} rounds of "
            f"quiet / flooded / flooded on a separate flags process, then quiet / flooded on an exchange left on CPython's "
            f"default GC settings, {seconds:g} s each")
    with exchange_process({"data_dir": str(ds.data_dir)}) as ex, \
            exchange_process({"data_dir": str(ds.data_dir), "services": ["flags"]}, name="bench-exchange-flags") as ex_flags, \
            exchange_process({"data_dir": str(ds.data_dir), "gc_tuning": False}, name="bench-exchange-default-gc") as ex_gc, \
            loadgen_process({**carrier, "target": ex.hello["address"]}, name="bench-loadgen-carrier") as lg, \
            loadgen_process({**carrier, "target": ex_gc.hello["address"]}, name="bench-loadgen-carrier-default-gc") as lg_gc, \
            flooder_process({**app, "target": ex.hello["address"]}) as flood_same, \
            flooder_process({**app, "target": ex_flags.hello["address"]}) as flood_apart, \
            flooder_process({**app, "target": ex_gc.hello["address"]}) as flood_gc, \
            flooder_process({**neighbour, "target": ex.hello["address"]}) as other_app:
        message = {"cmd": "open", "method": "lookup", "tokens": "premint", "rate": LOOKUP_RATE, "duration": seconds,
                   "warmup": 0.5, "samples": True, "max_inflight": 1000, "drain": 5.0}
        runs: dict[str, list[dict]] = {name: [] for name, _ in VARIANTS}
        floods: dict[str, list[dict]] = {name: [] for name in QUIET_OF}
        neighbours: dict[str, list[float]] = {"quiet": [], "flooded": []}
        for _ in range(rounds):
            other_app.request({"cmd": "start"})
            runs["quiet"].append(phase(lg, [ex], message))
            neighbours["quiet"] += other_app.request({"cmd": "halt"})["latencies_ms"]
            runs["quiet_default_gc"].append(phase(lg_gc, [ex_gc], message))
            for name, carrier_lg, carrier_ex, flooder, servers in (
                    ("flooded", lg, ex, flood_same, [ex]), ("flooded_apart", lg, ex, flood_apart, [ex, ex_flags]),
                    ("flooded_default_gc", lg_gc, ex_gc, flood_gc, [ex_gc])):
                flooder.request({"cmd": "start"})
                time.sleep(0.5)  # the flood is at full speed before the carrier's phase starts
                if name == "flooded":
                    other_app.request({"cmd": "start"})
                cpu0, t0 = sum(cpu_seconds(s.pid) or 0.0 for s in servers), time.monotonic()
                runs[name].append(phase(carrier_lg, [carrier_ex], message))
                used = (sum(cpu_seconds(s.pid) or 0.0 for s in servers) - cpu0) / (time.monotonic() - t0)
                if name == "flooded":
                    neighbours["flooded"] += other_app.request({"cmd": "halt"})["latencies_ms"]
                floods[name].append({**flooder.request({"cmd": "halt"}), "server_cpu": used})
    results["runs"], results["floods"] = runs, floods
    results["neighbour"] = {name: percentiles(xs) for name, xs in neighbours.items()}
    return summarize(results)


def _merged(rounds: list[dict]) -> dict:
    samples = list(itertools.chain.from_iterable(r.pop("samples_ms", []) for r in rounds))
    errors: Counter[str] = Counter()
    for r in rounds:
        errors.update(r.get("errors", {}))
    return {"latency_ms": percentiles(samples), "count": len(samples), "errors": dict(errors),
            "unfinished": sum(r.get("unfinished", 0) for r in rounds),
            "achieved_qps": sum(r["achieved_qps"] for r in rounds) / len(rounds),
            "server_cpu": sum(r.get("server_cpu") or 0.0 for r in rounds) / len(rounds),
            "server_gc": merge_gc([r.get("server_gc", {}) for r in rounds])}


def _flood_totals(floods: list[dict]) -> dict:
    calls: Counter[str] = Counter()
    for f in floods:
        calls.update(f["calls"])
    seconds = sum(f["seconds"] for f in floods)
    return {
        "calls": dict(calls), "calls_per_s": sum(calls.values()) / seconds,
        "flags_sent_per_s": sum(f["flags_sent_per_s"] * f["seconds"] for f in floods) / seconds,
        "flags_accepted_per_s": sum(f["flags_accepted_per_s"] * f["seconds"] for f in floods) / seconds,
        "servers_cpu": sum(f["server_cpu"] for f in floods) / len(floods),
    }


def _ratios(quiet: list[dict], flooded: list[dict]) -> list[float]:
    return [f["latency_ms"]["p99"] / q["latency_ms"]["p99"] for q, f in zip(quiet, flooded)
            if q["latency_ms"].get("p99") and f["latency_ms"].get("p99")]


def summarize(r: dict) -> dict:
    per_round = {name: _ratios(r["runs"][QUIET_OF[name]], r["runs"][name]) for name in r["floods"]}
    merged = {name: _merged(rounds) for name, rounds in r["runs"].items()}
    floods = {name: _flood_totals(f) for name, f in r["floods"].items()}
    q99 = merged["quiet"]["latency_ms"]["p99"]
    quiet99 = {name: merged[QUIET_OF[name]]["latency_ms"]["p99"] for name in r["floods"]}
    ratio = {name: (merged[name]["latency_ms"]["p99"] / quiet99[name] if quiet99[name] and merged[name]["latency_ms"]["p99"] else None)
             for name in r["floods"]}
    r["summary"] = {"merged": merged, "floods": floods, "p99_ratio_merged": ratio, "p99_ratio_rounds": per_round}
    rows = []
    for name, label in VARIANTS:
        m, f = merged[name], floods.get(name)
        rows.append([label, fmt_num(r["rate"]), fmt_pcts(m["latency_ms"]), fmt_num(m["achieved_qps"]),
                     fmt_ratio(ratio.get(name)) if name in ratio else "-",
                     f"{fmt_num(f['calls_per_s'], 1)} ({fmt_num(f['flags_sent_per_s'])} flags)" if f else "-",
                     fmt_num(f["flags_accepted_per_s"]) if f else "-"])
    notes = [
        f"Carrier: open-loop Lookup at {r['rate']:g}/s of numbers with stored verdicts, tokens pre-minted, latency from the "
        f"scheduled send time. App: {r['flood']['concurrency']} SubmitFlags calls in flight, {r['flood']['batch']} flags each, "
        "a fresh token per call, in its own process. 'separate flags process': `numrep serve --services flags` on the same "
        "data directory, the carrier's exchange serving no flags.",
        f"Flood answers: same process {floods['flooded']['calls']}, separate {floods['flooded_apart']['calls']}, "
        f"default GC {floods['flooded_default_gc']['calls']} "
        "(RESOURCE_EXHAUSTED would be the app's per-participant limits, numrep.limits).",
        "p99 flooded/quiet per round: " + "; ".join(f"{name}: {', '.join(fmt_ratio(x) for x in xs) or '-'}"
                                                      for name, xs in per_round.items())
        + f". {r['rounds']} alternating rounds of {r['round_seconds']:g} s; percentiles merge all rounds.",
    ]
    notes.append("'p99 vs quiet' of the default-GC flood is against the default-GC quiet run (that exchange serves no second app). GC pauses of the carrier's exchange "
                 "(numrep.gc_tuning settings, as `numrep serve`; the default-GC rows: another exchange left on CPython's defaults): "
                 + "; ".join(f"{name} {fmt_gc(merged[name]['server_gc'])}" for name, _ in VARIANTS) + ".")
    near = r["neighbour"]
    notes.append(
        f"Another app ({NEIGHBOUR_BATCH} flags per batch, one at a time, {NEIGHBOUR_INTERVAL:g} s apart) on the same process: "
        f"batch latency p50/p99/p999 {fmt_pcts(near['quiet'])} ms without the flood ({near['quiet']['n']} batches), "
        f"{fmt_pcts(near['flooded'])} ms during it ({near['flooded']['n']} batches). Waiting batches take turns by app "
        "(numrep.api.fair.FairTurns).")
    same = ratio.get("flooded")
    targets = [{"target": "carrier lookup p99 under a flag flood <= 2x the quiet p99 (same process; reported, not a gate)",
                "measured": f"{fmt_ratio(same)} ({q99:.1f} -> {merged['flooded']['latency_ms']['p99']:.1f} ms)" if same else "-",
                "holds": None if same is None else same <= 2.0}]
    return {
        "title": "flag_flood: carrier Lookup p99 with and without one app flooding SubmitFlags (SQLite)",
        "header": ["variant", "lookups/s", "p50/p99/p999 ms", "achieved/s", "p99 vs quiet", "flood calls/s", "flags accepted/s"],
        "rows": rows, "targets": targets, "notes": notes, "data": r,
    }
