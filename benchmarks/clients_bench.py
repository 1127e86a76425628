"""Participant SDK benchmark: carrier checks and app flag batches.

    .venv/bin/python -m benchmarks.clients_bench [--checks 200] [--flags 10000] [--batch 500]

Starts its own exchange in a child process (``numrep.server.start_server`` on
127.0.0.1 port 0, SQLite in a temporary data directory, participants
registered directly), so the clients measured here do not share a GIL with
the server. Then it measures, and prints as one table:

* fail-open latency with the exchange down (a port bound but not listening,
  so connections are refused), breaker disabled: every check goes to the
  network and must come back inside the deadline; and with the default
  breaker, which answers ``circuit_open`` without the network;
* fail-open latency with the exchange stalled (a bare gRPC LookupService in
  this process that sleeps far longer than the deadline);
* ``check()`` against the live exchange: cache misses (cache disabled) and
  cache hits, for an EdDSA and an ES256 carrier, blocking and asyncio; the
  blocking client with a Lookup call per check and on one LookupStream
  (``stream=True``), one check at a time and from many threads;
  ``check_many`` of 100 numbers; bearer-token signing time. The breaker is
  off here, so that every check measures the exchange (with it on, a few
  timeouts in a row would turn the following checks into instant
  ``circuit_open`` answers and hide the latency being measured);
* flag throughput: N flags queued, then ``flush()`` in batches, concentrated
  on few numbers or spread over many (the exchange recomputes each flagged
  number's verdict), in memory and with a SQLite spool.

Numbers are reported, never asserted: they depend on the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

DEADLINE = 0.050


# --- the server child ------------------------------------------------------------------
def serve(data_dir: Path) -> None:
    """Child process: register the participants in ``data_dir/participants.json``,
    serve on 127.0.0.1:0, print the address, stop when stdin closes."""
    from numrep.config import ServerConfig
    from numrep.core.model import Role
    from numrep.server import build_exchange, start_server

    async def main() -> None:
        config = ServerConfig(listen="127.0.0.1:0", data_dir=data_dir)
        exchange = build_exchange(config)
        for entry in json.loads((data_dir / "participants.json").read_text()):
            exchange.register_participant(entry["id"], Role(entry["role"]), entry["id"], [entry["jwk"]])
        running = await start_server(config, exchange)
        print(f"ADDRESS {running.address}", flush=True)
        await asyncio.to_thread(sys.stdin.read)  # until the parent closes our stdin
        await running.stop(1)
        exchange.store.close()

    asyncio.run(main())


class ServerChild:
    def __init__(self, data_dir: Path, identities: Sequence[Any]) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        (data_dir / "participants.json").write_text(json.dumps(
            [{"id": i.participant_id, "role": i.role.value, "jwk": json.dumps(i.public_jwk())} for i in identities]))
        self.process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.clients_bench", "--serve", str(data_dir)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[1],
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line.startswith("ADDRESS "):
            self.stop()
            raise RuntimeError(f"server child did not start: {line!r}")
        self.address = line.split()[1]

    def stop(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


# --- a stalled exchange (in this process; it only sleeps) ------------------------------------
class StalledLookup:
    def __init__(self, stall: float) -> None:
        import grpc

        from numrep.v1 import common_pb2, lookup_pb2_grpc

        class Servicer(lookup_pb2_grpc.LookupServiceServicer):
            async def Lookup(self, request: Any, context: Any) -> Any:
                await asyncio.sleep(stall)
                return common_pb2.Verdict(number=request.number)

        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

        async def start() -> tuple[Any, int]:
            server = grpc.aio.server()
            lookup_pb2_grpc.add_LookupServiceServicer_to_server(Servicer(), server)
            port = server.add_insecure_port("127.0.0.1:0")
            await server.start()
            return server, port

        self.server, port = asyncio.run_coroutine_threadsafe(start(), self.loop).result(10)
        self.address = f"127.0.0.1:{port}"

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(0), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


# --- measuring ----------------------------------------------------------------------------------
@dataclass
class Row:
    what: str
    n: int
    p50_ms: float | None = None
    p99_ms: float | None = None
    max_ms: float | None = None
    rate: str = ""
    note: str = ""


def pct(samples: Sequence[float], point: float) -> float:
    ordered = sorted(samples)
    rank = max(1, -(-len(ordered) * point // 100))
    return ordered[int(rank) - 1]


def latency_row(what: str, seconds: Sequence[float], note: str = "") -> Row:
    ms = [s * 1000 for s in seconds]
    return Row(what, len(ms), pct(ms, 50), pct(ms, 99), max(ms), note=note)


def numbers(count: int, start: int = 0) -> list[str]:
    """Distinct valid US numbers (NANP 555-01xx is fiction-only; use real-shaped exchanges)."""
    out = []
    area_codes = ["212", "202", "312", "415", "617", "713", "305", "206"]
    for i in range(start, start + count):
        area = area_codes[i % len(area_codes)]
        out.append(f"+1{area}55{(i // len(area_codes)) % 100000:05d}")
    return out


def run(args: argparse.Namespace) -> list[Row]:
    from numrep.core.model import Role
    from numrep.signing.keys import generate_identity
    from numrep.signing.labels import sign_label
    from numrep.signing.tokens import mint_token
    from numrep_client import AppFlagClient, AsyncCarrierClient, CarrierClient, ExchangeClient, NullBreaker

    regulator = generate_identity("bench-regulator", Role.REGULATOR, "EdDSA")
    carrier_ed = generate_identity("bench-carrier-ed", Role.CARRIER, "EdDSA")
    carrier_es = generate_identity("bench-carrier-es", Role.CARRIER, "ES256")
    app = generate_identity("bench-app", Role.APP_VENDOR, "EdDSA")
    rows: list[Row] = []

    with tempfile.TemporaryDirectory(prefix="numrep-clients-bench-") as tmp:
        child = ServerChild(Path(tmp) / "exchange", [regulator, carrier_ed, carrier_es, app])
        try:
            print(f"exchange child on {child.address} (pid {child.process.pid})", file=sys.stderr)
            listed = numbers(1000)
            with ExchangeClient(child.address, regulator) as reg:
                reg.publish([sign_label(regulator, n, "fraud.impersonation", 0.9) for n in listed[:500]])
            probe = listed[:250] + numbers(250, start=5000)  # half listed, half unknown

            # -- exchange down ---------------------------------------------------------------
            dead = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            dead.bind(("127.0.0.1", 0))
            dead_target = f"127.0.0.1:{dead.getsockname()[1]}"
            with CarrierClient(dead_target, carrier_ed, deadline=DEADLINE, breaker=NullBreaker(), cache_size=0) as c:
                c.wait_ready(timeout=0.01)  # warms the signer and number metadata; the connection fails
                decisions = [c.check(n) for n in probe[: args.checks]]
                reasons = sorted({d.reason for d in decisions})
                inside = sum(d.latency < DEADLINE for d in decisions)
                rows.append(latency_row("fail-open, exchange down (refused), no breaker",
                                        [d.latency for d in decisions], f"reasons {reasons}; {inside}/{len(decisions)} < 50 ms"))
            with CarrierClient(dead_target, carrier_ed, deadline=DEADLINE, cache_size=0) as c:
                c.wait_ready(timeout=0.01)
                decisions = [c.check(n) for n in probe[: args.checks]]
                counts = {r: sum(d.reason == r for d in decisions) for r in sorted({d.reason for d in decisions})}
                rows.append(latency_row("fail-open, exchange down, default breaker",
                                        [d.latency for d in decisions], f"{counts}"))
            dead.close()

            # -- exchange stalled --------------------------------------------------------------
            stalled = StalledLookup(stall=1.0)
            try:
                with CarrierClient(stalled.address, carrier_ed, deadline=DEADLINE, breaker=NullBreaker(), cache_size=0) as c:
                    c.wait_ready()
                    decisions = [c.check(n) for n in probe[: args.stalled]]
                    inside = sum(d.latency < DEADLINE for d in decisions)
                    rows.append(latency_row("fail-open, exchange stalled 1 s, no breaker",
                                            [d.latency for d in decisions],
                                            f"reasons {sorted({d.reason for d in decisions})}; {inside}/{len(decisions)} < 50 ms"))
            finally:
                stalled.stop()

            # -- live exchange -------------------------------------------------------------------
            for identity in (carrier_ed, carrier_es):
                with CarrierClient(child.address, identity, deadline=DEADLINE, cache_size=0, breaker=NullBreaker()) as c:
                    c.wait_ready()
                    for n in probe[:50]:
                        c.check(n)  # warm the path
                    c.reset_stats()
                    decisions = [c.check(n) for n in probe * 2]
                    stats = c.stats()
                    sources = {s: sum(d.source == s for d in decisions) for s in sorted({d.source for d in decisions})}
                    rows.append(latency_row(f"check() cache miss, live exchange ({identity.alg})",
                                            [d.latency for d in decisions], f"{sources}"))
                    rows.append(Row(f"  bearer token signing ({identity.alg})", stats.token_mint.count,
                                    stats.token_mint.p50 * 1000, stats.token_mint.p99 * 1000, stats.token_mint.max * 1000))
            for stream in (False, True):  # the blocking client's lookups: a Lookup call each, or one LookupStream
                path = "on a LookupStream" if stream else "a Lookup call each"
                with CarrierClient(child.address, carrier_ed, deadline=DEADLINE, cache_size=0, breaker=NullBreaker(),
                                   stream=stream) as c:
                    c.wait_ready()
                    for n in probe[:50]:
                        c.check(n)
                    decisions = [c.check(n) for n in probe * 2]
                    rows.append(latency_row(f"check() cache miss, sequential, {path}", [d.latency for d in decisions]))
                    with ThreadPoolExecutor(args.workers) as pool:
                        cpu, started = time.process_time(), time.perf_counter()
                        pooled = list(pool.map(c.check, probe * 8))
                        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
                    sources = {s: sum(d.source == s for d in pooled) for s in sorted({d.source for d in pooled})}
                    rows.append(latency_row(f"check() cache miss, {args.workers} threads, {path}", [d.latency for d in pooled],
                                            f"{sources}; client CPU {cpu / len(pooled) * 1e6:.0f} us a check"))
                    rows[-1].rate = f"{len(pooled) / elapsed:,.0f} checks/s"
            with CarrierClient(child.address, carrier_ed, deadline=DEADLINE, breaker=NullBreaker()) as c:
                c.wait_ready()
                for n in probe:
                    c.check(n)
                c.reset_stats()
                started = time.perf_counter()
                decisions = [c.check(probe[i % len(probe)]) for i in range(args.hits)]
                elapsed = time.perf_counter() - started
                sources = {s: sum(d.source == s for d in decisions) for s in sorted({d.source for d in decisions})}
                rows.append(latency_row("check() cache hit", [d.latency for d in decisions], f"{sources}"))
                rows[-1].rate = f"{len(decisions) / elapsed:,.0f} checks/s"
            with CarrierClient(child.address, carrier_ed, deadline=DEADLINE, cache_size=0, breaker=NullBreaker()) as c:
                c.wait_ready()
                batches = [probe[i:i + 100] for i in range(0, len(probe), 100)] * 4
                c.check_many(batches[0])
                results = [c.check_many(batch) for batch in batches]
                failed = sum(d.failed_open for batch in results for d in batch)
                rows.append(latency_row("check_many(100 numbers), cache miss", [batch[0].latency for batch in results],
                                        f"{failed} of {sum(map(len, results))} failed open"))

            async def async_checks() -> tuple[list[float], list[Any], float, list[Any]]:
                async with AsyncCarrierClient(child.address, carrier_ed, deadline=DEADLINE, cache_size=0,
                                              breaker=NullBreaker()) as c:
                    await c.wait_ready()
                    for n in probe[:50]:
                        await c.check(n)
                    sequential = [(await c.check(n)).latency for n in probe]
                    queue = list(probe * 2)
                    pooled: list[Any] = []

                    async def worker() -> None:
                        while queue:
                            pooled.append(await c.check(queue.pop()))

                    started = time.perf_counter()
                    await asyncio.gather(*(worker() for _ in range(args.workers)))
                    rate = len(pooled) / (time.perf_counter() - started)
                    burst = await asyncio.gather(*(c.check(n) for n in probe[: args.burst]))
                    return sequential, pooled, rate, list(burst)

            sequential, pooled, rate, burst = asyncio.run(async_checks())
            rows.append(latency_row("async check() cache miss, sequential", sequential))
            rows.append(latency_row(f"async check() cache miss, {args.workers} in flight", [d.latency for d in pooled],
                                    f"{sum(d.failed_open for d in pooled)} failed open"))
            rows[-1].rate = f"{rate:,.0f} checks/s"
            rows.append(latency_row(f"async check() burst of {args.burst} at once", [d.latency for d in burst],
                                    f"{sum(d.failed_open for d in burst)} failed open (one loop signs and sends them all first)"))

            mint = []
            for identity in (carrier_ed, carrier_es):
                samples = []
                for _ in range(500):
                    t0 = time.perf_counter()
                    mint_token(identity)
                    samples.append(time.perf_counter() - t0)
                mint.append(latency_row(f"mint_token alone ({identity.alg})", samples))
            rows.extend(mint)

            # -- flags -----------------------------------------------------------------------------
            key = os.urandom(32)
            # Two shapes of 10,000 flags from 100 users (5 flags per reporter per batch
            # of 500; the exchange caps one reporter at 50 per batch), no duplicates:
            #   concentrated: 100 numbers, each flagged by all 100 users (a batch touches 5 numbers);
            #   spread:       one flag per number (a batch touches 500 numbers, each recomputed).
            users = 100
            concentrated = numbers(-(-args.flags // users), start=20000)
            spread = numbers(args.flags, start=40000)
            shapes = [
                ("concentrated, in memory", None, lambda i: (concentrated[i // users], i % users)),
                ("spread, in memory", None, lambda i: (spread[i], i % users)),
                ("spread, SQLite spool", Path(tmp) / "spool.sqlite3", lambda i: (spread[i], i % users)),
            ]
            for label, spool, shape in shapes:
                with AppFlagClient(child.address, app, key, batch_size=args.batch, spool_path=spool) as client:
                    started = time.perf_counter()
                    for i in range(args.flags):
                        number, user = shape(i)
                        client.flag(number, "fraud.impersonation", f"{label}-user-{user}")
                    queued = time.perf_counter() - started
                    report = client.flush()
                    total = time.perf_counter() - started
                    rows.append(Row(f"flag() x{args.flags} ({label})", args.flags, rate=f"{args.flags / queued:,.0f} flags/s queued"))
                    rows.append(Row(f"flush() {report.batches} batches of {args.batch} ({label})", report.sent,
                                    rate=f"{report.sent / report.elapsed:,.0f} flags/s sent",
                                    note=f"{report.accepted} accepted, rejected {report.rejected or 'none'}, "
                                         f"{report.retries} retries; {report.elapsed:.2f} s flush, {total:.2f} s end to end"))
        finally:
            child.stop()
    return rows


def scheduler_noise(samples: int = 500) -> Row:
    """How late this process wakes from a 1 ms sleep: on a busy machine the OS,
    not the client, decides the tail of every latency below."""
    late = []
    for _ in range(samples):
        t0 = time.perf_counter()
        time.sleep(0.001)
        late.append(time.perf_counter() - t0 - 0.001)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return latency_row("scheduler noise: lateness of a 1 ms sleep", late, f"load average {load}")


def table(rows: Sequence[Row]) -> str:
    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f}"

    header = ("measurement", "n", "p50 ms", "p99 ms", "max ms", "rate", "note")
    body = [(r.what, str(r.n), ms(r.p50_ms), ms(r.p99_ms), ms(r.max_ms), r.rate, r.note) for r in rows]
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header) - 1)]
    lines = []
    for row in [header, *body]:
        cells = [row[i].ljust(widths[i]) if i == 0 else row[i].rjust(widths[i]) for i in range(len(widths))]
        lines.append("  ".join(cells) + "  " + row[-1])
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Benchmark the numrep participant SDK clients.")
    parser.add_argument("--checks", type=int, default=200, help="fail-open checks with the exchange down")
    parser.add_argument("--stalled", type=int, default=100, help="checks against the stalled exchange")
    parser.add_argument("--hits", type=int, default=20000, help="cache-hit checks")
    parser.add_argument("--workers", type=int, default=16, help="concurrent async checks in flight, and threads checking at once")
    parser.add_argument("--burst", type=int, default=100, help="async checks started at the same instant")
    parser.add_argument("--flags", type=int, default=10000, help="flags to queue and flush")
    parser.add_argument("--batch", type=int, default=500, help="flags per batch")
    parser.add_argument("--full", action="store_true",
                        help="more samples: 1000 fail-open checks, 200 stalled, 100k cache hits, 50k flags")
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.serve)
        return 0
    if args.full:
        args.checks, args.stalled, args.hits, args.flags = max(args.checks, 1000), max(args.stalled, 200), 100_000, 50_000
    noise_before = scheduler_noise()
    rows = run(args)
    rows = [noise_before, *rows, scheduler_noise()]
    print(f"numrep SDK clients, deadline {DEADLINE * 1000:.0f} ms, Python {sys.version.split()[0]}, "
          f"{os.cpu_count()} CPUs; exchange in a child process (SQLite, temp dir)")
    print(table(rows))
    # Last line: the same rows as one JSON object, for benchmarks/_clients_runner.py.
    print(json.dumps({"deadline_ms": DEADLINE * 1000, "rows": [asdict(r) for r in rows]}, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
