"""Scenario 5: labels/s through Publish (signature verification, store write,
verdict recomputation), batches of 500, EdDSA and ES256 publishers.

Baseline, same run, same tokens: bare verification in this process, at three
depths: the signature alone (PyJWT's algorithm object on the signing input),
``jwt.decode`` with the key, and the exchange's own ``verify_label``. Each
Publish batch is paired with the verification of the same 500 tokens just
before it, and the reported ratio is the median of the per-batch ratios. CPU
per label is reported beside it: the exchange process's against the
baselines', over the same batches.

With ``NUMREP_BENCH_CASSANDRA=host:port`` (see ``lookup_cassandra``) the EdDSA
side runs once more on an exchange whose store is that Cassandra node.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any

from benchmarks import _fixtures as fx
from benchmarks._context import Ctx
from benchmarks._load import loadgen_process
from benchmarks._procs import cpu_seconds
from benchmarks.lookup_cassandra import bench_keyspace, target as cassandra_target
from benchmarks._measure import _median
from benchmarks._servers import exchange_process
from benchmarks._stats import fmt_num, fmt_ratio

NAME = "publish_ingest"
BATCH = 500
BASELINES = ("signature_only", "pyjwt_decode", "verify_label")


def sign_batches(identity: Any, numbers: list[str]) -> tuple[list[list[str]], float]:
    from numrep.signing.labels import sign_label

    started = time.perf_counter()
    tokens = [sign_label(identity, n, "fraud.impersonation" if i % 3 else "marketing.robocall", 0.9) for i, n in enumerate(numbers)]
    return [tokens[i:i + BATCH] for i in range(0, len(tokens), BATCH)], time.perf_counter() - started


class Verifier:
    """The three baseline depths for one publisher's tokens."""

    def __init__(self, ctx: Ctx, identity: Any) -> None:
        import jwt

        from numrep.signing.keys import load_public_key

        self.participants = ctx.fed.participants()
        self.identity = identity
        self.alg, self.key = load_public_key(fx.public_jwk_text(identity))
        self.algorithm = jwt.get_algorithm_by_name(self.alg)
        self.jwt = jwt

    def signature_only(self, tokens: list[str]) -> float:
        import base64

        prepared = []
        for token in tokens:
            head, payload, sig = token.rsplit(".", 2)
            prepared.append(((head + "." + payload).encode(), base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4))))
        t0 = time.perf_counter()
        for message, signature in prepared:
            if not self.algorithm.verify(message, self.key, signature):
                raise AssertionError("signature does not verify")
        return len(tokens) / (time.perf_counter() - t0)

    def pyjwt_decode(self, tokens: list[str]) -> float:
        options = {"verify_exp": False, "verify_iat": False, "verify_nbf": False, "verify_aud": False}
        t0 = time.perf_counter()
        for token in tokens:
            self.jwt.decode(token, self.key, algorithms=[self.alg], options=options)
        return len(tokens) / (time.perf_counter() - t0)

    def verify_label(self, tokens: list[str]) -> float:
        from numrep.signing.labels import verify_label

        lookup = self.participants.get
        now = datetime.now(timezone.utc)
        t0 = time.perf_counter()
        for token in tokens:
            verify_label(token, lookup, now, self.identity.participant_id)
        return len(tokens) / (time.perf_counter() - t0)


def measure(ctx: Ctx, ex: Any, lg: Any, identity: Any, batches: list[list[str]]) -> dict[str, Any]:
    """Each Publish batch paired with the baselines' verification of the same tokens just before it,
    and the CPU the exchange's process spent on it against the baselines' CPU in this process."""
    verifier = Verifier(ctx, identity)
    verifier.verify_label(batches[0][:20])  # warm the key cache
    rounds = []
    server_cpu, baseline_cpu = 0.0, {key: 0.0 for key in BASELINES}
    for batch in batches:
        rates = {}
        for key in BASELINES:
            started = time.process_time()
            rates[key] = getattr(verifier, key)(batch)
            baseline_cpu[key] += time.process_time() - started
        before = cpu_seconds(ex.pid) or 0.0
        pub = lg.request({"cmd": "publish", "identity": identity.to_json(), "batches": [batch]}, timeout=600)
        server_cpu += (cpu_seconds(ex.pid) or 0.0) - before
        rounds.append({**rates, "publish": pub["labels_per_s"], "statuses": pub["statuses"], "reasons": pub["reasons"]})
    statuses: dict[str, int] = {}
    for r in rounds:
        for key, value in r["statuses"].items():
            statuses[key] = statuses.get(key, 0) + value
    labels = sum(len(batch) for batch in batches)
    return {
        "rounds": rounds, "labels": labels, "statuses": statuses,
        "server_cpu_us": server_cpu / labels * 1e6,
        **{f"cpu_us_{key}": baseline_cpu[key] / labels * 1e6 for key in BASELINES},
        **{f"cpu_ratio_{key}": (baseline_cpu[key] / server_cpu if server_cpu else None) for key in BASELINES},
        **{key: _median([r[key] for r in rounds]) for key in (*BASELINES, "publish")},
        **{f"ratio_{key}": _median([r["publish"] / r[key] for r in rounds]) for key in BASELINES},
    }


def run(ctx: Ctx) -> dict:
    from numrep.store.sqlite import SqliteStore

    s = ctx.sizes
    data_dir = ctx.tmp / "publish"
    store = SqliteStore.in_directory(data_dir)
    fx.register(store, ctx.fed)
    store.close()
    space = fx.NumberSpace(ctx.area_codes)
    per_alg = s.publish_batches * BATCH
    publishers = {"EdDSA": ctx.fed.carrier_ed, "ES256": ctx.fed.carrier_es}
    results: dict[str, Any] = {}
    with exchange_process({"data_dir": str(data_dir)}) as ex, \
            loadgen_process({"target": ex.hello["address"], "identity": ctx.fed.carrier_ed.to_json()}) as lg:
        for k, (alg, identity) in enumerate(publishers.items()):
            numbers = space.numbers(8_000_000 + k * per_alg, 8_000_000 + (k + 1) * per_alg)
            batches, sign_seconds = sign_batches(identity, numbers)
            ctx.log(f"publish_ingest: {alg}, {len(batches)} batches of {BATCH}, verification and Publish interleaved per batch")
            results[alg] = {**measure(ctx, ex, lg, identity, batches), "sign_seconds": sign_seconds}
        if ctx.profile:
            numbers = space.numbers(9_000_000, 9_000_000 + 4 * BATCH)
            batches, _ = sign_batches(ctx.fed.carrier_ed, numbers)
            ex.request({"cmd": "profile_start"})
            lg.request({"cmd": "publish", "identity": ctx.fed.carrier_ed.to_json(), "batches": batches}, timeout=600)
            results["profile"] = ex.request({"cmd": "profile_stop", "path": ctx.profile_path(NAME, "exchange")})["path"]
    where = cassandra_target()
    if isinstance(where, str):
        results["cassandra_skipped"] = where
    else:
        numbers = space.numbers(8_500_000, 8_500_000 + per_alg)
        results["EdDSA on Cassandra"] = on_cassandra(ctx, where, sign_batches(ctx.fed.carrier_ed, numbers)[0])
    return summarize(ctx, results)


def on_cassandra(ctx: Ctx, where: tuple[str, int], batches: list[list[str]]) -> dict[str, Any]:
    """The same measure on an exchange whose store is the Cassandra node at ``where``."""
    host, port = where
    with bench_keyspace(ctx, where, NAME) as store:
        url = f"cassandra://{host}:{port}/{store.keyspace}?lag=0"
        with exchange_process({"data_dir": str(ctx.tmp / "publish-cassandra"), "store": url}) as ex, \
                loadgen_process({"target": ex.hello["address"], "identity": ctx.fed.carrier_ed.to_json()}) as lg:
            return measure(ctx, ex, lg, ctx.fed.carrier_ed, batches)


BASELINE_NAMES = {"signature_only": "signature only (PyJWT algorithm.verify)", "pyjwt_decode": "jwt.decode with the key",
                  "verify_label": "numrep verify_label"}


def summarize(ctx: Ctx, r: dict) -> dict:
    rows, targets = [], []
    sides = [side for side in ("EdDSA", "ES256", "EdDSA on Cassandra") if side in r]
    for side in sides:
        v = r[side]
        rows.append([f"{side}: Publish through the exchange", fmt_num(v["publish"]), "", f"{v['server_cpu_us']:.0f}", ""])
        for key, name in BASELINE_NAMES.items():
            rows.append([f"{side}: {name}", fmt_num(v[key]), fmt_ratio(v[f"ratio_{key}"]), f"{v[f'cpu_us_{key}']:.0f}",
                         fmt_ratio(v[f"cpu_ratio_{key}"])])
            ratio_value = v[f"ratio_{key}"]
            targets.append({"target": f"{side} ingest >= 0.7x bare verification ({name})", "measured": fmt_ratio(ratio_value),
                            "holds": ratio_value is not None and ratio_value >= 0.7})
    notes = [
        f"{r['EdDSA']['labels']:,} labels per key type in batches of {BATCH}, one Publish in flight; every label a new number "
        "(so every label also recomputes and stores a verdict); synchronous=FULL SQLite.",
        "Ingest runs in the exchange's process, verification baselines in the runner's process, alternating batch by batch; "
        "'publish / this' = median over batches of (Publish labels/s / baseline labels/s on the same 500 tokens).",
        "CPU us/label: the exchange process's CPU (utime+stime, all threads) over all Publish calls, and the baseline's "
        "process_time, per label; 'CPU: this / publish' = baseline CPU / exchange CPU (the less noisy ratio on a shared machine).",
        "statuses: " + "; ".join(f"{side} {r[side]['statuses']}" for side in sides),
    ]
    if r.get("cassandra_skipped"):
        notes.append(f"Cassandra side skipped: {r['cassandra_skipped']}")
    if r.get("profile"):
        notes.append(f"server profile: {r['profile']}")
    return {
        "title": "publish_ingest: labels/s through Publish vs bare verification of the same tokens",
        "header": ["path", "labels/s", "publish / this", "CPU us/label", "CPU: this / publish"],
        "rows": rows,
        "targets": targets,
        "notes": notes,
        "data": r,
    }
