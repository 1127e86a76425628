"""A carrier's call-setup hook: decide about incoming calls inside 50 ms.

Start the demo exchange in one terminal (``make run``; it serves on
127.0.0.1:50051 and writes its identities to ``var/demo/identities/``), then,
from the repository root::

    .venv/bin/python examples/carrier_check.py --server 127.0.0.1:50051 \\
        --identity var/demo/identities/carrier-east.json '(202) 555-0143' +12025550100

Every number gets a decision within the deadline: ``block``/``warn``/``allow``
from the exchange or the local cache, ``unknown`` (treat as allow) when the
exchange has no evidence or did not answer in time (``source=fail_open`` with
the reason), and ``source=invalid`` for something that is not a phone number.
Each number is checked twice (the second answer comes from the cache), then
all at once with ``check_many``; the client's counters and latency
percentiles come last. Stop the exchange and run it again to see fail-open.
Numbers the demo warns about or blocks are listed by ``examples/handset_sync.py``
(or ``numrep sync``); pass one of them to see a ``warn``/``block`` decision.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from numrep.signing.keys import Identity
from numrep_client import CallDecision, CarrierClient, TlsFiles

DEFAULT_NUMBERS = ["(202) 555-0143", "+12025550100", "not-a-number"]


def show(decision: CallDecision) -> str:
    why = f" reason={decision.reason}" if decision.reason else ""
    return (f"  {decision.number:<16} {decision.action:<8} {decision.category or '-':<24} "
            f"p={decision.spam_probability:.2f} source={decision.source}{why} {decision.latency * 1000:.2f} ms")


def tls(args: argparse.Namespace) -> TlsFiles | None:
    return TlsFiles(args.tls_ca, args.tls_cert, args.tls_key) if args.tls_ca or args.tls_cert else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", default="127.0.0.1:50051", help="exchange address (default 127.0.0.1:50051)")
    parser.add_argument("--identity", type=Path, default=Path("var/demo/identities/carrier-east.json"),
                        help="the carrier's identity file")
    parser.add_argument("--deadline-ms", type=float, default=50.0, help="per-call budget in milliseconds")
    parser.add_argument("numbers", nargs="*", default=DEFAULT_NUMBERS, help="calling numbers to check")
    parser.add_argument("--tls-ca", type=Path, help="PEM CA of the exchange's certificate (the exchange serves TLS)")
    parser.add_argument("--tls-cert", type=Path, help="client certificate, for mutual TLS")
    parser.add_argument("--tls-key", type=Path, help="client key, for mutual TLS")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="  [%(name)s] %(message)s")  # shows breaker transitions

    identity = Identity.load(args.identity)
    with CarrierClient(args.server, identity, deadline=args.deadline_ms / 1000, tls=tls(args)) as client:
        connected = client.wait_ready(timeout=2.0)
        print(f"carrier {identity.participant_id} -> {args.server} "
              f"({'connected' if connected else 'not reachable: checks will fail open'})")
        print("one call at a time:")
        for number in args.numbers:
            print(show(client.check(number)))
        print("the same numbers again:")
        for number in args.numbers:
            print(show(client.check(number)))
        print("all at once (check_many):")
        for decision in client.check_many(args.numbers):
            print(show(decision))

        stats = client.stats()
        print(f"stats: {stats.checks} checks, {stats.hits} cache hits, {stats.misses} misses, "
              f"{stats.rpcs} RPCs, fail-opens {stats.fail_opens or 'none'}, {stats.invalid} invalid, "
              f"breaker {stats.breaker.state}")
        print(f"check() latency p50 {stats.latency.p50 * 1000:.2f} ms, p99 {stats.latency.p99 * 1000:.2f} ms; "
              f"token signing p50 {stats.token_mint.p50 * 1000:.3f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
