"""Scenario: CPU cost per call of the exchange's hot paths, in-process.

No gRPC and no second process: each path is timed with ``time.process_time``
(CPU seconds of this process), which a loaded, shared machine disturbs far
less than wall-clock QPS. Baseline: bare signature verification of the same
tokens (PyJWT's algorithm object on the signing input, what any verifier must
pay), alternated with the subject round by round; the ratio is the median of
the per-round ratios of calls per CPU second (subject / baseline).

* ``authenticate``: ``Exchange.prove`` of fresh bearer tokens (parse,
  key, signature, claims, replay cache), and of call tokens of a call session
  (parse, session id, MAC, key, claims, replay cache);
* ``verify_label``: a label as Publish verifies it;
* ``Lookup``: the Lookup servicer's answer as gRPC sends it (the stored verdict's
  encoding with this call's expiry, or the message built for it), for a stored
  verdict; for a number nobody reported (no stored verdict: most numbers a carrier
  asks about); and for a number never asked before (its parse included: most
  callers are new);
* ``batch_lookup``: the BatchLookup servicer's response to 1,000 stored numbers,
  as the bytes it sends (per number);
* ``sync``: ``Exchange.sync`` snapshot pages as the bytes the server sends (per label).
"""

from __future__ import annotations

import base64
import json
import statistics
import time
from datetime import datetime, timezone
from typing import Any, Callable

from benchmarks._context import Ctx
from benchmarks._stats import fmt_num, fmt_ratio

NAME = "hot_paths"
ROUNDS = 5
LISTED = 2_000


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class _Call:
    """What Lookup asks of its gRPC context."""

    def time_remaining(self) -> float | None:
        return None


def _cpu_per_call(work: Callable[[], int]) -> float:
    """CPU seconds per unit of ``work`` (which returns how many units it did)."""
    started = time.process_time()
    units = work()
    return (time.process_time() - started) / max(1, units)


def run(ctx: Ctx) -> dict:
    from jwt.algorithms import ECAlgorithm, OKPAlgorithm

    from numrep.api.convert import sync_page_bytes
    from numrep.api.wire import encoded
    from numrep.api.lookup import LookupServicer
    from numrep.telemetry import Telemetry
    from numrep.v1 import lookup_pb2
    from numrep.core.model import Action, Role
    from numrep.core.pseudonym import Pseudonymizer
    from numrep.exchange import Exchange
    from numrep.signing.keys import generate_identity
    from numrep.signing.labels import sign_label, verify_label
    from numrep.signing.sessions import mint_call_token
    from numrep.signing.tokens import mint_token
    from numrep.store.sqlite import SqliteStore

    from benchmarks import _fixtures as fx

    per_round = 300 if not ctx.full else 1500
    store = SqliteStore(ctx.tmp / "hot_paths" / "db.sqlite3")
    exchange = Exchange(store, Pseudonymizer(b"h" * 32))
    identities = {alg: generate_identity(f"carrier-{alg.lower()}", Role.CARRIER, alg) for alg in ("EdDSA", "ES256")}
    for identity in identities.values():
        exchange.register_participant(identity.participant_id, Role.CARRIER, "", [json.dumps(identity.public_jwk())])
    numbers = fx.sample_numbers(ctx.area_codes, LISTED, LISTED, seed=23)
    publisher = identities["EdDSA"]
    caller = exchange.get_participant(publisher.participant_id)
    assert caller is not None
    ctx.log(f"hot_paths: publishing {LISTED:,} labels (listed verdicts for lookup, batch and sync)")
    for start in range(0, LISTED, 500):
        exchange.publish(caller, [sign_label(publisher, n, "fraud") for n in numbers[start:start + 500]])
    verifiers = {"EdDSA": OKPAlgorithm(), "ES256": ECAlgorithm(ECAlgorithm.SHA256)}
    keys = {alg: identity.private_key.public_key() for alg, identity in identities.items()}

    def bare(alg: str, tokens: list[str]) -> int:
        for token in tokens:
            head, _, signature = token.rpartition(".")
            assert verifiers[alg].verify(head.encode(), keys[alg], _b64url_decode(signature))
        return len(tokens)

    sessions = {alg: exchange.open_session(exchange.prove(mint_token(identity))) for alg, identity in identities.items()}

    def authenticate(tokens: list[str]) -> int:
        for token in tokens:
            exchange.prove(token)
        return len(tokens)

    def labels(alg: str, tokens: list[str]) -> int:
        now = datetime.now(timezone.utc)
        for token in tokens:
            verify_label(token, exchange.participant, now, identities[alg].participant_id)
        return len(tokens)

    servicer = LookupServicer(exchange, Telemetry.disabled())
    requests = {n: lookup_pb2.LookupRequest(number=n) for n in numbers[:per_round]}

    def answer(request: Any) -> None:
        """The servicer's Lookup as the server runs it; it never waits for a local store."""
        try:
            servicer.Lookup(request, _Call()).send(None)
        except StopIteration as done:
            encoded(done.value)
        else:
            raise AssertionError("Lookup waited on the event loop")

    def lookups() -> int:
        for n in numbers[:per_round]:
            answer(requests[n])
        return per_round

    # Numbers past the listed ones in the same space (so no label names them): asked again every round, and
    # never asked before in any round (the number's parse is part of the cost: most callers a carrier sees are new).
    space = fx.NumberSpace(ctx.area_codes)
    unreported = space.numbers(LISTED, LISTED + per_round)
    unseen = iter(space.numbers(LISTED + per_round, LISTED + per_round + ROUNDS * per_round))
    assert exchange.lookup(unreported[0]).action is Action.UNKNOWN, "an 'unreported' number has a verdict"

    unreported_requests = [lookup_pb2.LookupRequest(number=n) for n in unreported]

    def unknown_lookups() -> int:
        for request in unreported_requests:
            answer(request)
        return per_round

    def unseen_lookups() -> int:
        for _ in range(per_round):
            answer(lookup_pb2.LookupRequest(number=next(unseen)))
        return per_round

    batch_request = lookup_pb2.BatchLookupRequest(requests=[lookup_pb2.LookupRequest(number=n) for n in numbers[:1000]])

    def batch() -> int:
        servicer._batch_response(batch_request.requests)
        return 1000

    def sync() -> int:  # as the server sends it; one label per listed number here
        count = 0
        for page in exchange.sync(""):
            sync_page_bytes(page)
            count += page.encoded_count + sum(len(e.tokens) for e in page.entries)
        return count

    samples: dict[str, list[float]] = {}
    ratios: dict[str, list[float]] = {}
    ctx.log(f"hot_paths: {ROUNDS} rounds, subject and bare signature verification alternating")
    for _ in range(ROUNDS):
        for alg, identity in identities.items():
            tokens = [mint_token(identity) for _ in range(per_round)]
            signed = [sign_label(identity, n, "fraud") for n in numbers[:per_round]]
            session = sessions[alg]
            call_tokens = [mint_call_token(session) for _ in range(per_round)]
            for name, subject, own in ((f"{alg} authenticate", lambda: authenticate(tokens), tokens),
                                       (f"{alg} authenticate, call session (HS256 call token)", lambda: authenticate(call_tokens), tokens),
                                       (f"{alg} verify_label", lambda: labels(alg, signed), signed)):
                base = _cpu_per_call(lambda: bare(alg, own))
                cost = _cpu_per_call(subject)
                samples.setdefault(name, []).append(cost)
                samples.setdefault(f"{alg} bare signature", []).append(base)
                ratios.setdefault(name, []).append(base / cost)
        for name, work in (("Lookup answer", lookups), ("Lookup answer, number nobody reported", unknown_lookups),
                           ("Lookup answer, a number never asked before", unseen_lookups),
                           ("BatchLookup response bytes, per number", batch),
                           ("Sync chunk bytes, per label", sync)):
            samples.setdefault(name, []).append(_cpu_per_call(work))
    store.close()

    results: dict[str, Any] = {
        "us_cpu": {name: statistics.median(xs) * 1e6 for name, xs in samples.items()},
        "ratio_vs_bare": {name: statistics.median(xs) for name, xs in ratios.items()},
        "ratio_range": {name: [min(xs), max(xs)] for name, xs in ratios.items()},
        "per_round": per_round,
    }
    return summarize(results)


def summarize(r: dict) -> dict:
    rows = []
    for name, us in r["us_cpu"].items():
        ratio = r["ratio_vs_bare"].get(name)
        span = r["ratio_range"].get(name)
        rows.append([name, f"{us:,.1f}", fmt_num(1e6 / us), "" if ratio is None else f"{fmt_ratio(ratio)} [{span[0]:.2f}-{span[1]:.2f}]"])
    return {
        "title": "hot_paths: CPU per call in-process (process_time; ratio = calls per CPU second vs bare signature verification)",
        "header": ["path", "us CPU/call", "calls per CPU s", "vs bare signature"],
        "rows": rows,
        "notes": [f"{ROUNDS} rounds of {r['per_round']} calls, subject and baseline alternating; medians.",
                  "CPU time, not wall time: comparable across runs on a shared machine, unlike QPS."],
        "targets": [],
        "data": r,
    }
