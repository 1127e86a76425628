"""Benchmark (not a test): a refit inside the exchange, end to end on the
embedded store: scan every live label and flag from SQLite, fit the new trust
epoch, store it, and bring every stored verdict up to it.

    python -m sim.bench_exchange_refit [--labels 200000] [--participants 50] [--flags 0]

The labels come from ``sim.bench_refit``'s generator (a third of the numbers
spam, a tenth of the participants bad) and are written straight into the store
(their signatures are never read by a refit); the first verdicts are computed
by the exchange as ingest would. Reported: the time of each phase, verdicts
changed, and the phases' rates. ``sim.bench_refit`` times the fit alone.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Sequence

from numrep.core.model import Flag, Label, Participant
from numrep.core.pseudonym import Pseudonymizer
from numrep.exchange import Exchange
from numrep.store.sqlite import SqliteStore
from sim.bench_refit import generate

WRITE_BATCH = 5000


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sim.bench_exchange_refit", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--labels", type=int, default=200_000)
    parser.add_argument("--participants", type=int, default=50)
    parser.add_argument("--flags", type=int, default=0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)

    rows, flag_rows, roles, _truth = generate(args.labels, args.participants, args.flags, args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteStore(Path(tmp) / "bench.sqlite3")
        for pid, role in roles.items():
            store.add_participant(Participant(pid, role, pid))
        t = time.perf_counter()
        labels = [Label(f"{r.issuer}/{i}", r.issuer, r.number, r.category, r.confidence, r.issued_at,
                        r.issued_at.replace(year=r.issued_at.year + 5), "unread.signature.token") for i, r in enumerate(rows)]
        for i in range(0, len(labels), WRITE_BATCH):
            store.add_labels(labels[i:i + WRITE_BATCH])
        flags = [Flag(f.number, f.app_id, f.reporter, f.category, f.time) for f in flag_rows]
        for i in range(0, len(flags), WRITE_BATCH):
            store.add_flags(flags[i].app_id, f"batch-{i}", flags[i:i + WRITE_BATCH], flags[i].time)
        print(f"stored {len(labels):,} labels and {len(flags):,} flags in {time.perf_counter() - t:.1f} s (not counted)")

        exchange = Exchange(store, Pseudonymizer(b"bench" * 8))
        numbers = sorted({r.number for r in rows})
        t = time.perf_counter()
        for i in range(0, len(numbers), 500):
            exchange._recompute_many(set(numbers[i:i + 500]))
        first = time.perf_counter() - t
        print(f"first verdicts (epoch 0) for {len(numbers):,} numbers: {first:.1f} s ({len(numbers) / first:,.0f} numbers/s)")

        t = time.perf_counter()
        snapshot = exchange._trust_keeper().refit(exchange.clock())
        fit = time.perf_counter() - t
        t = time.perf_counter()
        changed = exchange.refresh_verdicts()
        refresh = time.perf_counter() - t
        print(f"refit to epoch {snapshot.epoch}: scan + fit + store {fit:.1f} s ({snapshot.labels:,} labels, "
              f"{snapshot.iterations} EM iterations); verdict refresh {refresh:.1f} s for {len(numbers):,} numbers "
              f"({len(numbers) / refresh:,.0f} numbers/s), {changed:,} changed")
        print(f"total refit: {fit + refresh:.1f} s")
        store.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
