"""Scenario 11: a learned-trust refit over a federation's whole record, and what a
carrier sees while one runs.

The store holds N numbers (quick 50,000; --full 1,000,000): labels from two
carriers, a handset vendor, an app vendor and the regulator (about 1.3 a number),
and flags from an app's users (a fifth of the numbers, 1-4 flags each, reporters
as 32-hex pseudonyms), with every number's verdict stored. A refit reads every
label and flag, fits the trust model (``numrep.trust``), stores the epoch, then
recomputes every stored verdict (``Exchange.refresh_verdicts``).

In a spawned process of its own (so its memory is its own):

* **fit** vs **the reads it makes** (``scan_label_votes`` and ``scan_flag_votes``
  alone), in alternating rounds: observations/s, the ratio, and the process's peak
  memory above where it started (``/proc/self/clear_refs`` resets the peak);
* **refresh** vs **the reads it makes** (each batch of 500 numbers' stored verdicts
  and evidence), after a refit that changes every verdict (the first after the
  role priors) and one that changes none (the usual one);
* the snapshot's size;
* another process's writes of one verdict, quiet and while a refit job rewrites
  every verdict of the store as built (as beside a server on SQLite, where each
  batch of the job's rewrites is one write transaction).

Then the carrier's view: Lookup at a fixed arrival rate on an exchange process
serving this store, in alternating rounds without and with a refit (the
regulator's ``RefitTrust``) under way; for an exchange that runs its refits in a
process of its own (``numrep.trust_job``, what ``numrep serve`` does) and, as the
baseline, one that runs them on a worker thread of the serving process. Once for
the usual refit, which changes no verdict, and once for the first refit after
the role priors, which changes every one (each exchange on a fresh copy of the
store as built).
"""

from __future__ import annotations

import concurrent.futures
import itertools
import random
import shutil
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from benchmarks import _fixtures as fx
from benchmarks._context import Ctx
from benchmarks._load import loadgen_process
from benchmarks._measure import _median, phase
from benchmarks._procs import CTX, settle
from benchmarks._servers import exchange_process
from benchmarks._stats import fmt_mb, fmt_num, fmt_pcts, fmt_ratio, percentiles

NAME = "refit"
PUBLISHERS = (("carrier_ed", 0.7), ("carrier_es", 0.3), ("handset", 0.2), ("app", 0.1), ("regulator", 0.01))
FLAGGED_SHARE = 0.2
BATCH = 500  # numbers per recompute, as refresh_verdicts takes them
LOOKUP_RATE = 200.0  # carrier lookups per second while a refit runs (well below the exchange's max)


# --- in a child process ----------------------------------------------------------------
def _status_mb() -> dict[str, float]:
    found = {}
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(("VmHWM:", "VmRSS:")):
                found[line.split(":")[0]] = int(line.split()[1]) / 1024
    return found


def _reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")


def _open(spec: dict) -> tuple[Any, Any]:
    from numrep.config import pseudonym_secret
    from numrep.core.pseudonym import Pseudonymizer
    from numrep.exchange import Exchange
    from numrep.store.sqlite import SqliteStore

    data_dir = Path(spec["data_dir"])
    store = SqliteStore.in_directory(data_dir)
    return store, Exchange(store, Pseudonymizer(pseudonym_secret(data_dir)))


def build(spec: dict) -> dict:
    """Fill ``data_dir`` with the scenario's labels, flags and verdicts (the verdicts as the
    exchange computes them before any refit)."""
    from numrep.core.model import Flag

    fed = fx.Federation(**{name: fx.Identity.from_json(text) for name, text in spec["federation"].items()})
    store, exchange = _open(spec)
    fx.register(store, fed)
    space = fx.NumberSpace(spec["area_codes"])
    rng = random.Random(7)
    shapes = {name: fx.LabelShape(getattr(fed, name).participant_id, getattr(fed, name).kid, getattr(fed, name).alg)
              for name, _ in PUBLISHERS}
    now = fx.LABEL_ISSUED + timedelta(days=1)
    reporters = [f"{rng.getrandbits(128):032x}" for _ in range(max(1, spec["numbers"] // 4))]
    started = time.perf_counter()
    labels, flags, count = [], [], 0
    numbers = space.numbers(0, spec["numbers"])
    for start in range(0, len(numbers), 5000):
        for number in numbers[start:start + 5000]:
            for name, share in PUBLISHERS:
                if rng.random() < share:
                    count += 1
                    labels.append(fx.shaped_label(shapes[name], number, count, now - timedelta(days=rng.randint(1, 60))))
            if rng.random() < FLAGGED_SHARE:
                flags += [Flag(number, fed.app.participant_id, rng.choice(reporters), "fraud.impersonation",
                               now - timedelta(days=rng.randint(1, 30))) for _ in range(rng.randint(1, 4))]
        store.add_labels(labels)
        store.add_flags(fed.app.participant_id, f"bench-{start}", flags, now)
        spec["labels"] = spec.get("labels", 0) + len(labels)
        spec["flags"] = spec.get("flags", 0) + len(flags)
        labels, flags = [], []
    stored = time.perf_counter() - started
    for start in range(0, len(numbers), BATCH):
        exchange._recompute_many(set(numbers[start:start + BATCH]))
    return {"numbers": len(numbers), "labels": spec["labels"], "flags": spec["flags"], "reporters": len(reporters),
            "store_seconds": stored, "verdict_seconds": time.perf_counter() - started - stored}


def _timed(work: Any) -> dict[str, float]:
    before = _status_mb()
    _reset_peak()
    wall, cpu = time.perf_counter(), time.process_time()
    work()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"seconds": wall, "cpu_seconds": cpu, "peak_mb": _status_mb()["VmHWM"] - before["VmRSS"]}


def measure(spec: dict) -> dict:
    """The fit and the refresh against the reads each makes, in this (fresh) process."""
    from collections import deque

    store, exchange = _open(spec)
    keeper = exchange.trust
    assert keeper is not None, "the benchmark exchange runs the learned trust engine"
    now = fx.LABEL_ISSUED + timedelta(days=1)
    out: dict[str, Any] = {"scan": [], "fit": []}
    for _ in range(spec["rounds"]):
        out["scan"].append(_timed(lambda: (deque(store.scan_label_votes(), 0), deque(store.scan_flag_votes(), 0))))
        out["fit"].append(_timed(lambda: keeper.model.refit(store.scan_label_votes(), keeper.gold(),
                                                            flags=store.scan_flag_votes(), now=now)))

    def reads() -> None:
        batch: list[str] = []
        for number in itertools.chain(store.scan_verdict_numbers(), [None]):
            if number is not None:
                batch.append(number)
            if len(batch) >= BATCH or (number is None and batch):
                store.get_verdicts(batch)
                store.evidence_many(batch)
                batch = []

    changed: list[int] = []

    def refresh() -> None:
        changed.append(exchange.refresh_verdicts())

    out["refit_store"] = _timed(lambda: keeper.refit(now))  # the first epoch: every verdict moves off the role priors
    out["refresh_reads"] = [_timed(reads)]
    out["refresh_first"] = _timed(refresh)
    keeper.refit(now)
    for _ in range(2):
        out["refresh_reads"].append(_timed(reads))
        out.setdefault("refresh_same", []).append(_timed(refresh))
    out["changed"] = changed
    snapshot = store.latest_trust_snapshot()
    out["snapshot_chars"] = len(snapshot[1]) if snapshot else 0
    out["observations"] = sum(1 for _ in store.scan_label_votes()) + sum(1 for _ in store.scan_flag_votes())
    out["verdicts"] = sum(1 for _ in store.scan_verdict_numbers())
    store.close()
    return out


def writes_during_rewrite(spec: dict) -> dict:
    """Another process's writes of one verdict (``Exchange.recompute``, as a Publish ends) every
    20 ms: quiet, then while a refit job (``numrep.trust_job``) rewrites every verdict of the
    store as built, as it does beside a server on SQLite (each batch in one write transaction)."""
    import subprocess
    import sys

    store, exchange = _open(spec)
    target = next(iter(store.scan_verdict_numbers()))

    def writes(until: Any) -> list[float]:
        taken = []
        while not until():
            started = time.perf_counter()
            exchange.recompute(target)
            taken.append((time.perf_counter() - started) * 1000)
            time.sleep(0.02)
        return taken

    ends = time.monotonic() + 5
    quiet = writes(lambda: time.monotonic() > ends)
    job = subprocess.Popen([sys.executable, "-m", "numrep.trust_job", "--data-dir", spec["data_dir"]],
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert job.stdin is not None and job.stdout is not None
    job.stdout.readline()  # {"stored": 1}
    job.stdin.write("served\n")
    job.stdin.flush()
    started = time.perf_counter()
    during = writes(lambda: job.poll() is not None)
    said = [line for line in job.stdout.read().splitlines() if line.strip()]
    store.close()
    return {"quiet_ms": quiet, "rewriting_ms": during, "rewrite_seconds": time.perf_counter() - started,
            "job_end": said[-1] if said else "", "job_status": job.returncode}


def _in_child(function: Any, spec: dict) -> dict:
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=CTX) as pool:
        return pool.submit(function, spec).result()


# --- the scenario ---------------------------------------------------------------------------
def run(ctx: Ctx) -> dict:
    count = 1_000_000 if ctx.full else 50_000
    rounds = 5 if ctx.full else 3
    data_dir = ctx.tmp / "refit"
    data_dir.mkdir(parents=True, exist_ok=True)
    members = ("regulator", "carrier_ed", "carrier_es", "handset", "app", "other_app")
    spec = {"data_dir": str(data_dir), "numbers": count, "rounds": rounds, "area_codes": ctx.area_codes,
            "federation": {name: getattr(ctx.fed, name).to_json() for name in members}}
    ctx.log(f"refit: building {count:,} numbers with labels, flags and verdicts")
    results: dict[str, Any] = {"build": _in_child(build, spec)}
    pristine = ctx.tmp / "refit-as-built"  # no epoch yet: the first refit changes every verdict
    shutil.copytree(data_dir, pristine)
    ctx.log(f"refit: {results['build']}; fit and refresh in-process, {rounds} rounds")
    results["inproc"] = _in_child(measure, spec)
    copy = ctx.tmp / "refit-writes"
    shutil.copytree(pristine, copy)
    ctx.log("refit: another process's verdict writes, quiet and while a refit job rewrites every verdict")
    results["writes"] = _in_child(writes_during_rewrite, {**spec, "data_dir": str(copy)})
    shutil.rmtree(copy, ignore_errors=True)
    results["carrier"] = _carrier_during_refit(ctx, data_dir, pristine, rounds, results["inproc"])
    return summarize(results)


VARIANTS = (("job", "refit in a process of its own (numrep.trust_job, as `numrep serve` does)"),
            ("thread", "refit on a worker thread of the serving process (before)"))
KINDS = (("usual", "a refit that changes no verdict (the usual one)"),
         ("first", "the first refit after the role priors, which changes every verdict"))


def _carrier_during_refit(ctx: Ctx, data_dir: Path, pristine: Path, rounds: int, inproc: dict) -> dict:
    fit = _median([f["seconds"] for f in inproc["fit"]])
    seconds = {"usual": max(4.0, (fit + _median([r["seconds"] for r in inproc["refresh_same"]])) * 1.2),
               # the job leaves the store to the server as long as it holds it: twice the in-process refresh, and more
               "first": max(4.0, (fit + 2 * inproc["refresh_first"]["seconds"]) * 1.2)}
    queries = fx.NumberSpace(ctx.area_codes).numbers(0, 5000)
    carrier = {"identity": ctx.fed.carrier_ed.to_json(), "numbers": queries, "channels": 1}
    out: dict[str, Any] = {"rate": LOOKUP_RATE, "round_seconds": seconds[KINDS[0][0]], "first_round_seconds": seconds["first"],
                           **{_key(name, kind, step): [] for name, _ in VARIANTS for kind, _ in KINDS
                              for step in ("quiet", "refit", "seconds")}}
    services = ["lookup", "registry"]
    ctx.log(f"refit: carrier lookups at {LOOKUP_RATE:g}/s, {rounds} rounds of {seconds['usual']:.1f} s quiet / with a refit "
            "that changes no verdict, for an exchange refitting in a job and one refitting on its own thread (one at a time, "
            "same store)")
    with exchange_process({"data_dir": str(data_dir), "services": services}) as job_ex, \
            exchange_process({"data_dir": str(data_dir), "services": services, "refit_in_process": True},
                             name="bench-exchange-refit-thread") as thread_ex, \
            loadgen_process({**carrier, "target": job_ex.hello["address"]}, name="bench-loadgen-carrier") as job_lg, \
            loadgen_process({**carrier, "target": thread_ex.hello["address"]}, name="bench-loadgen-carrier-thread") as thread_lg:
        for _ in range(rounds):
            for name, ex, lg in (("job", job_ex, job_lg), ("thread", thread_ex, thread_lg)):
                _round(ctx, ex, lg, _lookups(seconds["usual"]), out, name, "usual")
    first_rounds = max(1, rounds - 1)
    ctx.log(f"refit: the same, {first_rounds} rounds of {seconds['first']:.1f} s with the first refit after the role priors "
            "(every verdict changes), each exchange on a copy of the store as built")
    for turn in range(first_rounds):
        for name, _ in VARIANTS:
            copy = ctx.tmp / f"refit-first-{name}-{turn}"
            shutil.copytree(pristine, copy)
            with exchange_process({"data_dir": str(copy), "services": services, "refit_in_process": name == "thread"},
                                  name=f"bench-exchange-first-{name}") as ex, \
                    loadgen_process({**carrier, "target": ex.hello["address"]}, name="bench-loadgen-carrier-first") as lg:
                phase(lg, [ex], _lookups(4.0))  # a new process: its first seconds of lookups are not the quiet baseline
                _round(ctx, ex, lg, _lookups(seconds["first"]), out, name, "first")
            shutil.rmtree(copy, ignore_errors=True)
    return out


def _key(name: str, kind: str, step: str) -> str:
    return f"{name}_{step}" if kind == "usual" else f"{name}_{kind}_{step}"


def _lookups(seconds: float) -> dict:
    return {"cmd": "open", "method": "lookup", "tokens": "premint", "rate": LOOKUP_RATE, "duration": seconds,
            "warmup": 0.5, "samples": True, "max_inflight": 1000, "drain": 5.0}


def _round(ctx: Ctx, ex: Any, lg: Any, message: dict, out: dict, name: str, kind: str) -> None:
    """Carrier lookups on ``ex`` without, then with, a RefitTrust under way."""
    from numrep_client import ExchangeClient

    settle([ex.pid])
    out[_key(name, kind, "quiet")].append(phase(lg, [ex], message))
    settle([ex.pid])
    with ExchangeClient(ex.hello["address"], ctx.fed.regulator, timeout=600) as regulator:
        took: list[float] = []

        def refit() -> None:
            started = time.perf_counter()
            regulator.refit_trust()
            took.append(time.perf_counter() - started)

        worker = threading.Thread(target=refit, name="bench-refit")
        worker.start()
        out[_key(name, kind, "refit")].append(phase(lg, [ex], message))
        worker.join()
    out[_key(name, kind, "seconds")] += took


def _p99_ratio(quiet: dict, refitting: dict) -> float | None:
    return refitting["p99"] / quiet["p99"] if quiet["p99"] and refitting["p99"] else None


def summarize(r: dict) -> dict:
    b, m, c = r["build"], r["inproc"], r["carrier"]
    observations = m["observations"]
    fit_ratio = [f["seconds"] / s["seconds"] for f, s in zip(m["fit"], m["scan"])]
    fit_s = _median([f["seconds"] for f in m["fit"]])
    scan_s = _median([s["seconds"] for s in m["scan"]])
    fit_peak = max(f["peak_mb"] for f in m["fit"])
    reads_s = _median([x["seconds"] for x in m["refresh_reads"]])
    same_s = _median([x["seconds"] for x in m["refresh_same"]])
    first_s = m["refresh_first"]["seconds"]
    verdicts = m["verdicts"]
    merged = {_key(name, kind, step): percentiles(list(itertools.chain.from_iterable(
                  x.pop("samples_ms", []) for x in c[_key(name, kind, step)])))
              for name, _ in VARIANTS for kind, _ in KINDS for step in ("quiet", "refit")}
    p99_ratio = {_key(name, kind, "p99"): _p99_ratio(merged[_key(name, kind, "quiet")], merged[_key(name, kind, "refit")])
                 for name, _ in VARIANTS for kind, _ in KINDS}
    rows = [
        ["the reads a fit makes (scan_label_votes, scan_flag_votes)", fmt_num(observations / scan_s), f"{scan_s:.2f}", "-",
         fmt_mb(max(s["peak_mb"] for s in m["scan"]) * 2**20)],
        ["fit (not stored)", fmt_num(observations / fit_s), f"{fit_s:.2f}",
         f"{fmt_ratio(_median(fit_ratio))} [{fmt_ratio(min(fit_ratio))}-{fmt_ratio(max(fit_ratio))}]",
         f"{fmt_mb(fit_peak * 2**20)} ({fit_peak * 2**20 / observations:,.0f} B an observation)"],
        ["refit: fit and store the epoch", fmt_num(observations / m["refit_store"]["seconds"]), f"{m['refit_store']['seconds']:.2f}",
         "-", fmt_mb(m["refit_store"]["peak_mb"] * 2**20)],
        ["the reads a refresh makes (verdicts and evidence, 500 a batch)", fmt_num(verdicts / reads_s), f"{reads_s:.2f}", "-", "-"],
        [f"refresh, every verdict changed ({m['changed'][0]:,})", fmt_num(verdicts / first_s), f"{first_s:.2f}",
         fmt_ratio(first_s / reads_s), fmt_mb(m["refresh_first"]["peak_mb"] * 2**20)],
        [f"refresh, none changed ({', '.join(f'{x:,}' for x in m['changed'][1:])})", fmt_num(verdicts / same_s), f"{same_s:.2f}",
         fmt_ratio(same_s / reads_s), fmt_mb(max(x["peak_mb"] for x in m["refresh_same"]) * 2**20)],
    ]
    notes = [
        f"{b['numbers']:,} numbers: {b['labels']:,} labels, {b['flags']:,} flags from {b['reporters']:,} reporters "
        f"({observations:,} observations), {verdicts:,} verdicts; the snapshot is {m['snapshot_chars'] / 2**20:.1f} MiB of JSON. "
        "Rates: observations/s for the fit and the scan, verdicts/s for the refresh; 'vs reads' is wall time over the reads' "
        f"wall time (fit: median of {len(fit_ratio)} alternating rounds [min-max]). Memory: the process's peak above its "
        "resident size before the step.",
        f"Carrier Lookup at {c['rate']:g}/s (tokens pre-minted, open loop, latency from the scheduled send time) on an exchange "
        "serving this store, without and with a RefitTrust under way, p50/p99/p999 ms. " + " ".join(
            f"{kind_label.capitalize()}, {len(c[_key('job', kind, 'quiet')])} rounds of "
            f"{c['round_seconds' if kind == 'usual' else 'first_round_seconds']:.1f} s: " + "; ".join(
                f"{label}: quiet {fmt_pcts(merged[_key(name, kind, 'quiet')])}, refitting {fmt_pcts(merged[_key(name, kind, 'refit')])} "
                f"(p99 {fmt_ratio(p99_ratio[_key(name, kind, 'p99')])}; refits took "
                f"{', '.join(f'{x:.1f}' for x in c[_key(name, kind, 'seconds')])} s)" for name, label in VARIANTS) + "."
            for kind, kind_label in KINDS)
        + " The usual refit's two exchanges share the store and take turns; for the first refit each runs on a fresh copy "
          "of the store as built.",
    ]
    w = r["writes"]
    writes = {name: percentiles(w[f"{name}_ms"]) for name in ("quiet", "rewriting")}
    notes.append(
        f"Another process's writes of one verdict (as a Publish ends), every 20 ms, p50/p99/max ms: quiet "
        f"{fmt_pcts(writes['quiet'], ('p50', 'p99', 'max'))} ({writes['quiet']['n']} writes); while a refit job rewrites "
        f"every verdict of the store as built, {fmt_pcts(writes['rewriting'], ('p50', 'p99', 'max'))} "
        f"({writes['rewriting']['n']} writes over the job's {w['rewrite_seconds']:.1f} s; it said {w['job_end'] or w['job_status']}).")
    targets = [{"target": f"carrier lookup p99 during {kind_label} <= 2x its quiet p99 (reported, not a gate)",
                "measured": (f"{fmt_ratio(ratio)} ({merged[_key('job', kind, 'quiet')]['p99']:.1f} -> "
                             f"{merged[_key('job', kind, 'refit')]['p99']:.1f} ms; on the exchange's own thread "
                             f"{fmt_ratio(p99_ratio[_key('thread', kind, 'p99')])})") if ratio else "-",
                "holds": None if ratio is None else ratio <= 2.0}
               for kind, kind_label in KINDS for ratio in [p99_ratio[_key("job", kind, "p99")]]]
    r["summary"] = {"fit_vs_scan": fit_ratio, "fit_peak_bytes_per_observation": fit_peak * 2**20 / observations,
                    "refresh_vs_reads_same": same_s / reads_s, "lookup": merged, "p99_ratio": p99_ratio, "writes": writes}
    w.pop("quiet_ms")
    w.pop("rewriting_ms")
    return {
        "title": "refit: a learned-trust refit over the whole record, and carrier lookups while it runs (SQLite)",
        "header": ["step", "per s", "seconds", "vs reads", "peak memory"],
        "rows": rows, "targets": targets, "notes": notes, "data": r,
    }
