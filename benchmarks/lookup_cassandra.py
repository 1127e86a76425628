"""Scenario 2: Lookup on the Cassandra store (no cache in the exchange: every
call is a Cassandra read) vs the raw driver's prepared single-row read of
``verdict_by_number`` from one Python process at the same concurrency.

Runs only when ``NUMREP_BENCH_CASSANDRA=host:port`` names a reachable node on
this machine (``bash infra/cassandra/cassandra.sh start`` starts one on
127.0.0.1:9042; this benchmark never starts or stops it). It creates its own
keyspace ``numrep_bench_<random>`` and drops it at the end.
"""

from __future__ import annotations

import os
import random
import secrets
import socket
from contextlib import ExitStack, contextmanager
from typing import Any, Iterator

from benchmarks import _fixtures as fx
from benchmarks._context import Ctx
from benchmarks._load import loadgen_process
from benchmarks._measure import Variant, closed_rounds, merge_closed, merge_open, open_rounds, paired_ratio
from benchmarks._procs import Child
from benchmarks._servers import baseline_process, exchange_process, mtls_files
from benchmarks._stats import fmt_num, fmt_paired, fmt_pcts, fmt_ratio, fmt_server_ms

NAME = "lookup_cassandra"
LOCAL = {"127.0.0.1", "localhost", "::1"}


def target() -> tuple[str, int] | str:
    spec = os.environ.get("NUMREP_BENCH_CASSANDRA", "").strip()
    if not spec:
        return "NUMREP_BENCH_CASSANDRA is not set (e.g. NUMREP_BENCH_CASSANDRA=127.0.0.1:9042 after `bash infra/cassandra/cassandra.sh start`)"
    host, _, port_text = spec.rpartition(":") if ":" in spec else (spec, "", "9042")
    host = host or "127.0.0.1"
    if host not in LOCAL:
        return f"NUMREP_BENCH_CASSANDRA={spec}: only a node on this machine (127.0.0.1) is used by the benchmarks"
    try:
        port = int(port_text)
        socket.create_connection((host, port), timeout=3).close()
    except (OSError, ValueError) as exc:
        return f"Cassandra at {spec} is not reachable ({exc}); start it with `bash infra/cassandra/cassandra.sh start`"
    return ("127.0.0.1" if host == "localhost" else host), port


def run(ctx: Ctx) -> dict:
    where = target()
    if isinstance(where, str):
        return {"skipped": where}
    host, port = where
    s = ctx.sizes
    with bench_keyspace(ctx, where, NAME) as store:
        keyspace = store.keyspace
        ctx.log(f"lookup_cassandra: {s.cassandra_numbers:,} verdicts")
        results: dict[str, Any] = {"keyspace": keyspace}
        space = fx.NumberSpace(ctx.area_codes)
        numbers = space.numbers(0, s.cassandra_numbers)
        templates = ctx.templates
        for low in range(0, len(numbers), 500):
            store.put_verdicts([(fx.verdict_for(templates[i % len(templates)], n), ()) for i, n in enumerate(numbers[low:low + 500], low)])
        rng = random.Random(9)
        rng.shuffle(numbers)
        sixth = len(numbers) // 6
        # disjoint: no side reads rows another has just read
        ours, cert_ours, floor_ours, stream_ours, floor_stream_ours, raw = (numbers[i * sixth:(i + 1) * sixth] for i in range(6))
        from numrep.api.convert import verdict_to_pb

        answer = verdict_to_pb(store.get_verdict(ours[0])).SerializeToString()
        url = f"cassandra://{host}:{port}/{keyspace}?lag=0"
        tls = mtls_files(ctx.tmp / "cassandra-mtls", ctx.fed.carrier_es)
        with ExitStack() as stack:
            start = stack.enter_context
            ex = start(exchange_process({"data_dir": str(ctx.tmp / "cassandra-exchange"), "store": url, "services": ["lookup", "registry"]}))
            ex_cert = start(exchange_process({"data_dir": str(ctx.tmp / "cassandra-exchange-mtls"), "store": url, "services": ["lookup"],
                                              "tls": tls["server"]}, name="bench-exchange-mtls"))
            lg_ex = start(loadgen_process({"target": ex.hello["address"], "identity": ctx.fed.carrier_ed.to_json(), "numbers": ours},
                                          name="bench-loadgen-exchange"))
            lg_cert = start(loadgen_process({"target": ex_cert.hello["address"], "identity": ctx.fed.carrier_es.to_json(),
                                             "numbers": cert_ours, "tls": tls["client"]}, name="bench-loadgen-cert"))
            floor = start(baseline_process({"verdict": answer, "cassandra": {"host": host, "port": port, "keyspace": keyspace}},
                                           name="bench-grpc-driver"))
            lg_floor = start(loadgen_process({"target": floor.hello["address"], "numbers": floor_ours}, name="bench-loadgen-floor"))
            ceiling = start(baseline_process({"verdict": answer}, name="bench-grpc-memory"))
            lg_ceiling = start(loadgen_process({"target": ceiling.hello["address"], "numbers": floor_ours}, name="bench-loadgen-memory"))
            lg_stream = start(loadgen_process({"target": ex.hello["address"], "identity": ctx.fed.carrier_ed.to_json(), "numbers": stream_ours},
                                              name="bench-loadgen-stream"))
            lg_floor_stream = start(loadgen_process({"target": floor.hello["address"], "numbers": floor_stream_ours},
                                                    name="bench-loadgen-floor-stream"))
            lg_raw = start(loadgen_process({"target": None, "numbers": []}, name="bench-loadgen-driver"))
            raw_msg = {"cmd": "cassandra_raw", "host": host, "port": port, "keyspace": keyspace, "numbers": raw,
                       "concurrency": s.cassandra_concurrency, "duration": s.cassandra_seconds / 2, "warmup": s.warmup}
            exchange = Variant("exchange", lg_ex, [ex], {"method": "lookup", "tokens": "session"})
            cert = Variant("exchange_cert", lg_cert, [ex_cert], {"method": "lookup", "tokens": "none"})
            grpc_driver = Variant("grpc_driver", lg_floor, [floor], {"method": "lookup", "tokens": "none"})
            grpc_memory = Variant("grpc_memory", lg_ceiling, [ceiling], {"method": "lookup", "tokens": "none"})
            # the carrier SDK's per-call path (AsyncCarrierClient(stream=True)): one stream, its token checked when it opens
            stream = Variant("exchange_stream", lg_stream, [ex], {"method": "stream", "tokens": "static"})
            floor_stream = Variant("grpc_driver_stream", lg_floor_stream, [floor], {"method": "stream", "tokens": "none"})
            ctx.log(f"lookup_cassandra: {s.rounds} interleaved rounds, {s.cassandra_concurrency} in flight "
                    "(call-session tokens, certificate identity over mutual TLS, raw driver)")
            ex_rounds, cert_rounds, floor_rounds, ceiling_rounds, raw_rounds = [], [], [], [], []
            stream_rounds, floor_stream_rounds, stream_open = [], [], []
            sent = {"exchange": [0, 0], "exchange_stream": [0, 0], "exchange_stream_open": [0, 0]}  # store reads, numbers in them

            def one_round(variant: Variant) -> list[dict]:
                return closed_rounds([variant], 1, s.cassandra_seconds / 2, s.warmup, s.cassandra_concurrency,
                                     estimate=2000.0)[variant.name]

            for _ in range(s.rounds):
                with reads_sent(ex, sent["exchange"]):
                    ex_rounds += one_round(exchange)
                cert_rounds += one_round(cert)
                floor_rounds += one_round(grpc_driver)
                ceiling_rounds += one_round(grpc_memory)
                with reads_sent(ex, sent["exchange_stream"]):
                    stream_rounds += one_round(stream)
                floor_stream_rounds += one_round(floor_stream)
                raw_rounds.append(lg_raw.request(raw_msg, timeout=120))
                # arrivals at half this round's driver rate, spread in time as a carrier's calls come: the closed loop's
                # lookups travel together, so its reads carry more numbers than spread arrivals give
                half = 0.5 * raw_rounds[-1]["qps"]
                if half > 0:
                    with reads_sent(ex, sent["exchange_stream_open"]):
                        stream_open += open_rounds([stream], {"exchange_stream": half}, 1, s.cassandra_seconds / 2,
                                                   s.warmup)["exchange_stream"]
            results["exchange_cert"] = merge_closed(cert_rounds)
            results["ratio_cert"] = paired_ratio(cert_rounds, raw_rounds)
            results["grpc_driver"] = merge_closed(floor_rounds)
            results["ratio_floor"] = paired_ratio(floor_rounds, raw_rounds)
            results["grpc_memory"] = merge_closed(ceiling_rounds)
            results["ratio_ceiling"] = paired_ratio(ceiling_rounds, raw_rounds)
            results["ratio_exchange_ceiling"] = paired_ratio(ex_rounds, ceiling_rounds)
            results["ratio_exchange_floor"] = paired_ratio(ex_rounds, floor_rounds)
            results["ratio_cert_floor"] = paired_ratio(cert_rounds, floor_rounds)
            results["verdict_reads"] = {side: {"reads": reads, "numbers": numbers} for side, (reads, numbers) in sent.items()}
            results["exchange_stream"] = merge_closed(stream_rounds)
            if stream_open:
                results["exchange_stream_open"] = {"offered": [r["rate"] for r in stream_open],
                                                   "achieved": [r["achieved_qps"] for r in stream_open], **merge_open(stream_open)}
            results["ratio_stream"] = paired_ratio(stream_rounds, raw_rounds)
            results["grpc_driver_stream"] = merge_closed(floor_stream_rounds)
            results["ratio_floor_stream"] = paired_ratio(floor_stream_rounds, raw_rounds)
            results["ratio_stream_floor"] = paired_ratio(stream_rounds, floor_stream_rounds)
            results["exchange"] = merge_closed(ex_rounds)
            results["driver"] = merge_closed(raw_rounds)
            results["ratio"] = paired_ratio(ex_rounds, raw_rounds)
    return summarize(ctx, results)


@contextmanager
def reads_sent(exchange: Child, totals: list[int]) -> Iterator[None]:
    """Adds the store reads ``exchange`` sends for lookups meanwhile, and the numbers in them, to ``totals``."""
    before = exchange.request({"cmd": "verdict_reads"})
    yield
    after = exchange.request({"cmd": "verdict_reads"})
    totals[0] += after["reads"] - before["reads"]
    totals[1] += after["numbers"] - before["numbers"]


@contextmanager
def bench_keyspace(ctx: Ctx, where: tuple[str, int], who: str) -> Iterator[Any]:
    """A store on the node at ``where`` in a keyspace of its own (``store.keyspace``), the run's
    federation registered; the keyspace is dropped at the end."""
    from numrep.store.cassandra import CassandraStore

    host, port = where
    keyspace = f"numrep_bench_{secrets.token_hex(4)}"
    ctx.log(f"{who}: keyspace {keyspace} on {host}:{port}")
    store = CassandraStore.connect([host], port, keyspace, feed_safety_lag_seconds=0)
    try:
        fx.register(store, ctx.fed)
        yield store
    finally:
        try:
            store._session.execute(f"DROP KEYSPACE IF EXISTS {keyspace}", timeout=60)  # noqa: SLF001 - our own keyspace
        except Exception as exc:  # noqa: BLE001
            ctx.log(f"{who}: could not drop {keyspace}: {exc}")
        store.close()


def summarize(ctx: Ctx, r: dict) -> dict:
    ratio_value = r["ratio"]["median"]
    rows = [
        ["raw driver: prepared SELECT body FROM verdict_by_number", fmt_num(r["driver"]["qps"]), "1.00x", fmt_pcts(r["driver"]["latency_ms"])],
        ["exchange Lookup on CassandraStore, call session (a call token MAC'd per call, as the carrier SDK sends)", fmt_num(r["exchange"]["qps"]),
         fmt_paired(r["ratio"]), fmt_pcts(r["exchange"]["latency_ms"])],
    ]
    cert = r.get("ratio_cert")
    if cert:
        rows.append(["exchange Lookup, mutual TLS, certificate identity (no token)", fmt_num(r["exchange_cert"]["qps"]),
                     fmt_paired(cert), fmt_pcts(r["exchange_cert"]["latency_ms"])])
    stream = r.get("ratio_stream")
    if stream:
        rows.append(["exchange LookupStream on CassandraStore (one stream, signed token checked when it opens; the carrier SDK's "
                     "stream=True)", fmt_num(r["exchange_stream"]["qps"]),
                     fmt_paired(stream), fmt_pcts(r["exchange_stream"]["latency_ms"])])
    spread = r.get("exchange_stream_open")
    if spread:  # offered, not found: the ratio column is the driver's capacity, which this row does not measure
        kept = min(a / o for a, o in zip(spread["achieved"], spread["offered"]))
        missed = spread["unfinished"] + sum(spread["errors"].values())
        rows.append([f"the same stream, arrivals at a fixed rate of half each round's driver rate: answered {kept:.1%} of the rate "
                     f"offered at worst, {missed} unanswered or refused", fmt_num(spread["achieved_qps"]), "-",
                     ("latency >= " if spread["latency_ms"].get("lower_bound") else "") + fmt_pcts(spread["latency_ms"])])
    floor = r.get("ratio_floor")
    if floor:
        rows.append(["floor: bare grpc.aio whose Lookup awaits the same driver read (no auth, no decode)", fmt_num(r["grpc_driver"]["qps"]),
                     fmt_paired(floor), fmt_pcts(r["grpc_driver"]["latency_ms"])])
    floor_stream = r.get("ratio_floor_stream")
    if floor_stream:
        rows.append(["floor on a stream: bare grpc.aio LookupStream, each lookup answered after its own driver read",
                     fmt_num(r["grpc_driver_stream"]["qps"]),
                     fmt_paired(floor_stream), fmt_pcts(r["grpc_driver_stream"]["latency_ms"])])
    ceiling = r.get("ratio_ceiling")
    if ceiling:
        rows.append(["ceiling: bare grpc.aio answering the same bytes from memory (no read at all)", fmt_num(r["grpc_memory"]["qps"]),
                     fmt_paired(ceiling), fmt_pcts(r["grpc_memory"]["latency_ms"])])
    return {
        "title": "lookup_cassandra: Lookup QPS on Cassandra vs the raw driver (ratio = exchange / driver)",
        "header": ["path", "QPS", "vs driver", "closed-loop p50/p99/p999 ms"],
        "rows": rows,
        "targets": [{"target": "Cassandra lookup >= 0.5x raw driver", "measured": fmt_ratio(ratio_value),
                     "holds": ratio_value is not None and ratio_value >= 0.5}]
                   + ([{"target": "Cassandra lookup >= 0.5x raw driver (certificate identity)", "measured": fmt_ratio(cert["median"]),
                        "holds": cert["median"] is not None and cert["median"] >= 0.5}] if cert else [])
                   + ([{"target": "Cassandra lookup >= 0.5x raw driver (LookupStream: its store reads carry many numbers, "
                                  "the driver's one)", "measured": fmt_ratio(stream["median"]),
                        "holds": stream["median"] is not None and stream["median"] >= 0.5}] if stream else []),
        "notes": [
            f"{ctx.sizes.cassandra_concurrency} requests in flight on both sides, closed loop, interleaved rounds; LOCAL_QUORUM, "
            "token-aware routing, protocol v5 on both sides. The driver baseline runs in its own Python process (like the exchange), "
            "issuing the next read from each completion callback; it does not decode the verdict JSON.",
            "cache cold: the exchange keeps no verdict cache (every lookup reads Cassandra); the six sides read disjoint random numbers. "
            f"Keyspace {r['keyspace']} was dropped afterwards.",
            "The Cassandra node shares the 2 cores with the exchange and the load generator.",
            "Both driver sides (raw read and the floor) use plain tuple rows, the driver's cheapest; the store uses named rows with one class "
            "per column list (numrep.store.cassandra_rows).",
        ] + ([
            f"Of the floor (what any gRPC service doing this one read reaches here): exchange {fmt_ratio(r['ratio_exchange_floor']['median'])}, "
            f"certificate identity {fmt_ratio(r['ratio_cert_floor']['median'])}."
        ] if floor else []) + ([
            f"On a stream, of the stream floor: exchange {fmt_ratio(r['ratio_stream_floor']['median'])}. Server CPU a lookup: "
            f"exchange stream {fmt_server_ms(r['exchange_stream'])} ms, stream floor {fmt_server_ms(r['grpc_driver_stream'])} ms, "
            f"exchange Lookup {fmt_server_ms(r['exchange'])} ms, floor Lookup {fmt_server_ms(r['grpc_driver'])} ms. "
            f"Numbers per store read (lookups waiting together go in one read, numrep.store.read_coalescer): "
            f"{_per_read(r['verdict_reads']['exchange_stream'])} on the stream in the closed loop, "
            f"{_per_read(r['verdict_reads']['exchange_stream_open'])} with arrivals at a fixed rate, "
            f"{_per_read(r['verdict_reads']['exchange'])} with a Lookup call each; the floors and the driver read one number at a time."
        ] if stream and floor_stream and floor else []) + ([
            f"Of the ceiling (a gRPC server that reads nothing, same client and concurrency): exchange "
            f"{fmt_ratio(r['ratio_exchange_ceiling']['median'])}. 0.5x of the driver asks the exchange to answer "
            f"from Cassandra at {fmt_ratio(0.5 / ceiling['median'] if ceiling['median'] else None)} of what gRPC alone answers from memory "
            "on this machine.",
        ] if ceiling else []),
        "data": r,
    }



def _per_read(sent: dict) -> str:
    return f"{sent['numbers'] / sent['reads']:.1f}" if sent["reads"] else "-"
