"""Scenario 5: labels/s through Publish (signature verification, store write,
verdict recomputation), batches of 500, EdDSA and ES256 publishers.

Baseline, same run, same tokens: bare verification in this process, at three
depths: the signature alone (PyJWT's algorithm object on the signing input),
``jwt.decode`` with the key, and the exchange's own ``verify_label``. Each
Publish batch is paired with the verification of the same 500 tokens just
before it, and the reported ratio is the median of the per-batch ratios.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any

from benchmarks import _fixtures as fx
from benchmarks._context import Ctx
from benchmarks._load import loadgen_process
from benchmarks._measure import _median
from benchmarks._servers import exchange_process
from benchmarks._stats import fmt_num, fmt_ratio

NAME = "publish_ingest"
BATCH = 500


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
            verifier = Verifier(ctx, identity)
            verifier.verify_label(batches[0][:20])  # warm the key cache
            rounds = []
            for batch in batches:
                sig = verifier.signature_only(batch)
                dec = verifier.pyjwt_decode(batch)
                ver = verifier.verify_label(batch)
                pub = lg.request({"cmd": "publish", "identity": identity.to_json(), "batches": [batch]}, timeout=600)
                rounds.append({"signature_only": sig, "pyjwt_decode": dec, "verify_label": ver, "publish": pub["labels_per_s"],
                               "statuses": pub["statuses"], "reasons": pub["reasons"]})
            statuses: dict[str, int] = {}
            for r in rounds:
                for key, value in r["statuses"].items():
                    statuses[key] = statuses.get(key, 0) + value
            results[alg] = {
                "rounds": rounds, "sign_seconds": sign_seconds, "labels": per_alg, "statuses": statuses,
                **{key: _median([r[key] for r in rounds]) for key in ("signature_only", "pyjwt_decode", "verify_label", "publish")},
                **{f"ratio_{key}": _median([r["publish"] / r[key] for r in rounds])
                   for key in ("signature_only", "pyjwt_decode", "verify_label")},
            }
        if ctx.profile:
            numbers = space.numbers(9_000_000, 9_000_000 + 4 * BATCH)
            batches, _ = sign_batches(ctx.fed.carrier_ed, numbers)
            ex.request({"cmd": "profile_start"})
            lg.request({"cmd": "publish", "identity": ctx.fed.carrier_ed.to_json(), "batches": batches}, timeout=600)
            results["profile"] = ex.request({"cmd": "profile_stop", "path": ctx.profile_path(NAME, "exchange")})["path"]
    return summarize(ctx, results)


def summarize(ctx: Ctx, r: dict) -> dict:
    rows, targets = [], []
    for alg in ("EdDSA", "ES256"):
        v = r[alg]
        rows.append([f"{alg}: Publish through the exchange", fmt_num(v["publish"]), ""])
        rows.append([f"{alg}: signature only (PyJWT algorithm.verify)", fmt_num(v["signature_only"]), fmt_ratio(v["ratio_signature_only"])])
        rows.append([f"{alg}: jwt.decode with the key", fmt_num(v["pyjwt_decode"]), fmt_ratio(v["ratio_pyjwt_decode"])])
        rows.append([f"{alg}: numrep verify_label", fmt_num(v["verify_label"]), fmt_ratio(v["ratio_verify_label"])])
        for key, name in (("pyjwt_decode", "PyJWT decode"), ("verify_label", "verify_label")):
            ratio_value = v[f"ratio_{key}"]
            targets.append({"target": f"{alg} ingest >= 0.7x bare verification ({name})", "measured": fmt_ratio(ratio_value),
                            "holds": ratio_value is not None and ratio_value >= 0.7})
    notes = [
        f"{r['EdDSA']['labels']:,} labels per key type in batches of {BATCH}, one Publish in flight; every label a new number "
        "(so every label also recomputes and stores a verdict); synchronous=FULL SQLite.",
        "Ingest runs in the exchange's process, verification baselines in the runner's process, alternating batch by batch; "
        "'publish / this' = median over batches of (Publish labels/s / baseline labels/s on the same 500 tokens).",
        "statuses: " + "; ".join(f"{alg} {r[alg]['statuses']}" for alg in ("EdDSA", "ES256")),
    ]
    if r.get("profile"):
        notes.append(f"server profile: {r['profile']}")
    return {
        "title": "publish_ingest: labels/s through Publish vs bare verification of the same tokens",
        "header": ["path", "labels/s", "publish / this"],
        "rows": rows,
        "targets": targets,
        "notes": notes,
        "data": r,
    }
