"""Scenario 4: Sync, labels per second streamed to a client, and the server's
memory while it streams a large snapshot.

* raw stream consumer (load-generator process) reading the whole snapshot of
  N listed numbers with one label each, while the parent samples the server
  process's RSS every 0.1 s: streaming keeps RSS flat, loading would not;
* ``numrep_client.sync_handset`` into a new ``HandsetLabelStore`` (verifying
  every label offline, as a phone does) on a smaller set of really signed labels,
  and on ten times that set (a phone's sync must cost per chunk what the chunk
  holds, not what the phone holds already); its baseline: ``verify_label`` of the
  same labels in the same process, the floor of any verifying client;
* a handset delta, in this process: a phone holding a few labels per number
  applies a delta that re-sends each number's set with one new label; CPU per
  entry against ``verify_label`` of every label the delta carries (what a client
  that checks every signature again pays) and of the new labels alone (the floor);
* baseline: the same rows read straight from SQLite in this process, plus, for
  attribution, ``Exchange.sync`` in-process (no gRPC).

The bulk snapshot's label tokens have the real header, claims and size but a
placeholder signature (the exchange stores tokens verbatim and does not
re-verify them on Sync; signing millions would dominate the run). The handset
set is signed for real, half EdDSA, half ES256.
"""

from __future__ import annotations

import shutil
import sqlite3
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from benchmarks import _fixtures as fx
from benchmarks._context import Ctx
from benchmarks._load import loadgen_process
from benchmarks._procs import rss_bytes
from benchmarks._servers import exchange_process
from benchmarks._stats import fmt_mb, fmt_num, fmt_ratio, ratio

NAME = "sync"
HANDSET_GROWTH = 10  # the second handset set is this many times the first
DELTA_NUMBERS = 300  # numbers in the handset delta
DELTA_HELD = 3  # labels each of them holds before the delta, which adds one
DELTA_ROUNDS = 3


def raw_sqlite(data_dir: Path, cap_seconds: float) -> dict:
    """Baseline: listed verdicts joined with their live labels, straight from SQLite."""
    db = sqlite3.connect(data_dir / fx.DB_FILE)
    try:
        started = time.perf_counter()
        rows = labels = size = 0
        cursor = db.execute(
            "SELECT v.number, v.body, l.token FROM verdicts v JOIN labels l ON l.number = v.number AND l.retracted_at IS NULL"
            " WHERE v.listed = 1 ORDER BY v.number")
        complete = True
        while True:
            batch = cursor.fetchmany(2000)
            if not batch:
                break
            for _number, body, token in batch:
                labels += 1
                size += len(body) + len(token)
            rows += len(batch)
            if time.perf_counter() - started > cap_seconds:
                complete = False
                break
        elapsed = time.perf_counter() - started
        return {"labels": labels, "seconds": elapsed, "labels_per_s": labels / elapsed, "bytes": size, "complete": complete}
    finally:
        db.close()


def inprocess_sync(data_dir: Path, cap_seconds: float) -> dict:
    """``Exchange.sync`` pages and their protobuf conversion, no gRPC, one thread."""
    from numrep.api.convert import sync_page_to_pb
    from numrep.config import pseudonym_secret
    from numrep.core.pseudonym import Pseudonymizer
    from numrep.exchange import Exchange
    from numrep.store.sqlite import SqliteStore

    store = SqliteStore.in_directory(data_dir)
    try:
        exchange = Exchange(store, Pseudonymizer(pseudonym_secret(data_dir)))
        pages = exchange.sync("")
        labels = 0
        in_store = in_pb = 0.0
        complete = True
        started = time.perf_counter()
        while True:
            t0 = time.perf_counter()
            page = next(pages, None)
            t1 = time.perf_counter()
            in_store += t1 - t0
            if page is None:
                break
            chunk = sync_page_to_pb(page)
            in_pb += time.perf_counter() - t1
            labels += sum(len(e.labels) for e in chunk.entries)
            if time.perf_counter() - started > cap_seconds:
                complete = False
                break
        elapsed = time.perf_counter() - started
        return {"labels": labels, "seconds": elapsed, "labels_per_s": labels / elapsed if elapsed else None,
                "exchange_sync_s": in_store, "to_pb_s": in_pb, "complete": complete,
                "exchange_only_labels_per_s": labels / in_store if in_store else None}
    finally:
        store.close()


def rss_profile(samples: list[tuple[float, int | None]]) -> dict:
    points = [(t, r) for t, r in samples if r is not None]
    if not points:
        return {}
    t0, t1 = points[0][0], points[-1][0]

    def at(share: float) -> int:
        target = t0 + share * (t1 - t0)
        return min(points, key=lambda p: abs(p[0] - target))[1]

    return {"samples": len(points), "start": points[0][1], "at25": at(0.25), "at50": at(0.5), "at75": at(0.75),
            "end": points[-1][1], "peak": max(r for _, r in points)}


def handset_dataset(ctx: Ctx, count: int) -> Path:
    from numrep.store.sqlite import SqliteStore

    data_dir = ctx.tmp / f"handset-{count}"
    store = SqliteStore.in_directory(data_dir)
    try:
        fx.register(store, ctx.fed)
        issued = datetime.now(timezone.utc) - timedelta(days=1)
        numbers = fx.NumberSpace(ctx.area_codes).numbers(5_000_000, 5_000_000 + count)
        labels = [fx.signed_label(ctx.fed.carrier_ed if i % 2 == 0 else ctx.fed.carrier_es, n, i, issued) for i, n in enumerate(numbers)]
        store.add_labels(labels)
        listed = [t for t in ctx.templates if fx.is_listed(t)]
        store.put_verdicts([(fx.label_verdict(listed[i % len(listed)], lb), ()) for i, lb in enumerate(labels)])
    finally:
        store.close()
    return data_dir


def handset_delta(ctx: Ctx) -> dict:
    """CPU per delta entry of ``HandsetLabelStore.apply`` on a store holding the
    entries' earlier labels, against ``verify_label`` of all the delta's labels and
    of its new ones only, in alternating rounds (medians; a fresh store per round)."""
    from numrep.api.convert import participant_to_pb
    from numrep.signing.labels import verify_label
    from numrep.v1 import common_pb2, sync_pb2
    from numrep_client import HandsetLabelStore, KeyDirectory, SyncReport

    participants = ctx.fed.participants()
    keys = KeyDirectory([participant_to_pb(p) for p in participants.values()])
    issued = datetime.now(timezone.utc) - timedelta(days=1)
    numbers = fx.NumberSpace(ctx.area_codes).numbers(7_000_000, 7_000_000 + DELTA_NUMBERS)
    signers = (ctx.fed.carrier_ed, ctx.fed.carrier_es)
    held = {n: [fx.signed_label(signers[j % 2], n, i * 8 + j, issued).token for j in range(DELTA_HELD)] for i, n in enumerate(numbers)}
    new = {n: fx.signed_label(signers[i % 2], n, i * 8 + DELTA_HELD, issued).token for i, n in enumerate(numbers)}

    def chunks(sets: dict[str, list[str]], version: int) -> list[Any]:
        entries = [sync_pb2.SyncEntry(number=n, action=common_pb2.ACTION_BLOCK, category="fraud.impersonation",
                                      spam_probability=0.97, labels=tokens, version=version) for n, tokens in sets.items()]
        return [sync_pb2.SyncChunk(cursor=f"v{version}-{i}", entries=entries[i:i + 100]) for i in range(0, len(entries), 100)]

    snapshot = chunks(held, 1)
    delta = chunks({n: [*held[n], new[n]] for n in numbers}, 2)
    every_token = [t for n in numbers for t in (*held[n], new[n])]
    times: dict[str, list[float]] = {"delta": [], "verify_all": [], "verify_new": []}
    reused = 0
    for r in range(DELTA_ROUNDS):
        with HandsetLabelStore(ctx.tmp / f"delta-device-{r}" / "labels.sqlite3") as store:
            for c in snapshot:
                store.apply(c, keys, SyncReport())
            report = SyncReport()
            t0 = time.process_time()
            for c in delta:
                store.apply(c, keys, report)
            times["delta"].append((time.process_time() - t0) / DELTA_NUMBERS)
            reused = report.signatures_reused
        now = datetime.now(timezone.utc)
        for key, tokens in (("verify_all", every_token), ("verify_new", list(new.values()))):
            t0 = time.process_time()
            for token in tokens:
                verify_label(token, keys, now)
            times[key].append((time.process_time() - t0) / DELTA_NUMBERS)
    us = {key: sorted(values)[len(values) // 2] * 1e6 for key, values in times.items()}
    return {"numbers": DELTA_NUMBERS, "held_per_number": DELTA_HELD, "signatures_reused": reused,
            "cpu_us_per_entry": us["delta"], "verify_all_cpu_us_per_entry": us["verify_all"],
            "verify_new_cpu_us_per_entry": us["verify_new"]}


def run(ctx: Ctx) -> dict:
    s = ctx.sizes
    results: dict[str, Any] = {}
    listed = [t for t in ctx.templates if fx.is_listed(t)]
    shape = fx.LabelShape(ctx.fed.carrier_ed.participant_id, ctx.fed.carrier_ed.kid, "EdDSA")
    data_dir = ctx.tmp / "sync"
    ctx.log(f"sync: building a snapshot of {s.sync_labels:,} listed numbers, one label each")
    results["dataset"] = fx.build_store(data_dir, ctx.fed, s.sync_labels, area_codes=ctx.area_codes, templates=listed,
                                        label_shape=shape, exact=ctx.exact_data, log=ctx.log)
    results["dataset"]["listed"] = fx.listed_count(data_dir)

    ctx.log("sync: baseline, the same rows straight from SQLite in this process")
    results["raw_sqlite"] = raw_sqlite(data_dir, max(10.0, s.inproc_sync_seconds))
    ctx.log("sync: Exchange.sync in-process (attribution, time-capped)")
    results["in_process"] = inprocess_sync(data_dir, s.inproc_sync_seconds)

    ctx.log("sync: streaming the snapshot over gRPC to a raw consumer, sampling the server's RSS")
    with exchange_process({"data_dir": str(data_dir), "services": ["sync", "registry"]}) as ex, \
            loadgen_process({"target": ex.hello["address"], "identity": ctx.fed.handset.to_json()}) as lg:
        time.sleep(0.3)
        idle = rss_bytes(ex.pid)
        samples: list[tuple[float, int | None]] = []
        expected = max(60.0, s.sync_labels / 2_000)
        stream = lg.request({"cmd": "sync_stream", "chunk_size": 0, "timeout": expected * 4}, timeout=expected * 4 + 30,
                            on_wait=lambda: samples.append((time.perf_counter(), rss_bytes(ex.pid))))
        results["stream"] = stream
        results["rss"] = {"idle": idle, **rss_profile(samples)}
        if ctx.profile:
            ex.request({"cmd": "profile_start"})
            lg.request({"cmd": "sync_stream", "chunk_size": 0, "timeout": expected * 4}, timeout=expected * 4 + 30)
            results["profile"] = ex.request({"cmd": "profile_stop", "path": ctx.profile_path(NAME, "exchange")})["path"]

    for key, count in (("handset", s.handset_labels), ("handset_10x", HANDSET_GROWTH * s.handset_labels)):
        ctx.log(f"sync: handset sync (sync_handset into a new HandsetLabelStore) of {count:,} really signed labels")
        hs_dir = handset_dataset(ctx, count)
        with exchange_process({"data_dir": str(hs_dir)}) as ex, \
                loadgen_process({"target": ex.hello["address"], "identity": ctx.fed.handset.to_json()}) as lg:
            if key == "handset":
                results["handset_stream"] = lg.request({"cmd": "sync_stream", "chunk_size": 0, "timeout": 600}, timeout=630)
            results[key] = lg.request({"cmd": "sync_handset", "path": str(ctx.tmp / f"{key}-device" / "labels.sqlite3")},
                                      timeout=max(900.0, count / 200))
        if key == "handset":
            results["handset_raw_sqlite"] = raw_sqlite(hs_dir, 30.0)
        shutil.rmtree(hs_dir, ignore_errors=True)
    ctx.log(f"sync: a handset delta in this process ({DELTA_NUMBERS} numbers holding {DELTA_HELD} labels each, one new label each)")
    results["handset_delta"] = handset_delta(ctx)
    return summarize(ctx, results)


def summarize(ctx: Ctx, r: dict) -> dict:
    raw, ip, st, hs, rss = r["raw_sqlite"], r["in_process"], r["stream"], r["handset"], r["rss"]
    big, delta = r["handset_10x"], r["handset_delta"]
    growth_ratio = ratio(big["labels_per_s"], hs["labels_per_s"])
    verify_ratio = ratio(hs["labels_per_s"], hs["verify_only"]["labels_per_s"])
    verify_cpu_ratio = ratio(hs["verify_only"]["cpu_us_per_label"], hs["cpu_us_per_label"])  # verification's share of the CPU
    growth = (rss.get("end") or 0) - (rss.get("at25") or 0)
    peak_growth = (rss.get("peak") or 0) - (rss.get("idle") or 0)
    flat = growth < max(0.10 * st["bytes"], 1) and growth < 64e6
    rows = [
        ["baseline: rows straight from SQLite (this process)", fmt_num(raw["labels_per_s"]), "1.00x",
         f"{raw['labels']:,}{'' if raw['complete'] else ' (time cap)'}"],
        ["Exchange.sync in-process, with protobuf conversion", fmt_num(ip["labels_per_s"]), fmt_ratio(ratio(ip["labels_per_s"], raw["labels_per_s"])),
         f"{ip['labels']:,}{'' if ip['complete'] else ' (time cap)'}"],
        ["  of which Exchange.sync/store only", fmt_num(ip["exchange_only_labels_per_s"]), "", ""],
        ["Sync over gRPC, raw stream consumer", fmt_num(st["labels_per_s"]), fmt_ratio(ratio(st["labels_per_s"], raw["labels_per_s"])),
         f"{st['labels']:,}"],
        ["sync_handset -> HandsetLabelStore (verifies labels)", fmt_num(hs["labels_per_s"]),
         fmt_ratio(ratio(hs["labels_per_s"], r["handset_raw_sqlite"]["labels_per_s"])), f"{hs['labels_verified']:,}"],
        ["  the same, 10x the set", fmt_num(big["labels_per_s"]), "", f"{big['labels_verified']:,}"],
        ["  offline verification alone (verify_label), same labels", fmt_num(hs["verify_only"]["labels_per_s"]), "",
         f"{hs['verify_only']['labels']:,}"],
        ["  raw stream consumer on the same (handset) set", fmt_num(r["handset_stream"]["labels_per_s"]),
         fmt_ratio(ratio(r["handset_stream"]["labels_per_s"], r["handset_raw_sqlite"]["labels_per_s"])), f"{r['handset_stream']['labels']:,}"],
        ["handset delta, entries per CPU s (held labels re-sent, one new each)", fmt_num(1e6 / delta["cpu_us_per_entry"]),
         fmt_ratio(ratio(delta["verify_all_cpu_us_per_entry"], delta["cpu_us_per_entry"])), f"{delta['numbers']:,} entries"],
        ["  baseline: verify_label of every label the delta carries", fmt_num(1e6 / delta["verify_all_cpu_us_per_entry"]), "1.00x", ""],
        ["  floor: verify_label of the new labels only", fmt_num(1e6 / delta["verify_new_cpu_us_per_entry"]),
         fmt_ratio(ratio(delta["verify_all_cpu_us_per_entry"], delta["verify_new_cpu_us_per_entry"])), ""],
    ]
    notes = [
        f"server RSS while streaming {st['labels']:,} labels ({fmt_mb(st['bytes'])} of chunks) in {st['seconds']:.1f} s: idle {fmt_mb(rss.get('idle'))}, "
        f"at 25/50/75/100% of the stream {fmt_mb(rss.get('at25'))} / {fmt_mb(rss.get('at50'))} / {fmt_mb(rss.get('at75'))} / {fmt_mb(rss.get('end'))}, "
        f"peak {fmt_mb(rss.get('peak'))} (peak - idle {fmt_mb(peak_growth)}; growth after the first quarter {fmt_mb(growth)}).",
        f"handset: {hs['chunks']} chunks in {hs['seconds']:.2f} s, client CPU {hs['cpu_us_per_label']:.0f} us/label against "
        f"{hs['verify_only']['cpu_us_per_label']:.0f} us/label for verification alone (CPU ratio, verification / sync, {fmt_ratio(verify_cpu_ratio)}); "
        f"SQLite store {fmt_mb(hs['file_bytes'])}; {hs['labels_dropped']} labels dropped {hs['drop_reasons'] or ''}; "
        f"10x the set: {big['chunks']} chunks in {big['seconds']:.1f} s, {big['cpu_us_per_label']:.0f} us/label, "
        f"store {fmt_mb(big['file_bytes'])}. 'vs base' of the handset rows: against their own set read straight from SQLite.",
        "bulk snapshot tokens carry placeholder signatures (not verified by anyone on this path); the handset set is really signed (EdDSA+ES256).",
        f"time to first chunk {st['first_chunk_s']:.3f} s; client CPU {st['client_cpu']:.2f} cores while streaming.",
        f"handset delta (in this process, CPU, median of {DELTA_ROUNDS} rounds): {delta['numbers']} numbers holding "
        f"{delta['held_per_number']} labels each get one more; the delta re-sends all {delta['held_per_number'] + 1}: "
        f"{delta['cpu_us_per_entry']:.0f} us per entry, {delta['signatures_reused']:,} held signatures not checked again "
        f"(every other check ran); 'vs base' of its rows: entries per CPU second against verifying every label the delta carries "
        f"(the verify_label rows write nothing: the delta's includes its SQLite transaction).",
    ]
    if r.get("profile"):
        notes.append(f"server profile: {r['profile']}")
    return {
        "title": f"sync: labels/s streamed, snapshot of {r['dataset']['listed']:,} listed numbers (ratio = vs straight SQLite read)",
        "header": ["path", "labels/s", "vs base", "labels"],
        "rows": rows,
        "targets": [
            {"target": "sync >= 200,000 labels/s (raw stream consumer)", "measured": f"{st['labels_per_s']:,.0f}/s",
             "holds": st["labels_per_s"] >= 200_000},
            {"target": "handset sync keeps its rate as the set grows: 10x the set >= 0.8x the labels/s",
             "measured": fmt_ratio(growth_ratio), "holds": growth_ratio is not None and growth_ratio >= 0.8},
            {"target": "handset sync >= 0.7x offline verification of the same labels", "measured": fmt_ratio(verify_ratio),
             "holds": verify_ratio is not None and verify_ratio >= 0.7},
            {"target": "server memory flat while streaming", "measured": f"+{fmt_mb(growth)} after the first quarter, {fmt_mb(st['bytes'])} streamed",
             "holds": flat},
        ],
        "notes": notes,
        "data": r,
    }
