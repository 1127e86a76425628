"""``python -m sim``: every scenario, a table of trust engine vs majority vote vs mean."""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Sequence

import numpy as np

from sim.evaluate import Result, attacked_numbers, describe_trust, evaluate
from sim.scenarios import SCENARIOS


def run(index: int, seed: int, numbers: int, verbose: bool) -> tuple[list[Result], int, str]:
    """One scenario (its own generator from the seed and its index): results,
    attacked legitimate numbers, and what the engine learned if verbose."""
    rng = np.random.default_rng([seed, index])
    world = SCENARIOS[index].build(rng, numbers)
    return evaluate(world), len(attacked_numbers(world)), describe_trust(world) if verbose else ""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sim", description=__doc__)
    parser.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    parser.add_argument("--numbers", type=int, default=10000, help="numbers per world (default 10000)")
    parser.add_argument("--only", action="append", default=[], help="run only this scenario (repeatable)")
    parser.add_argument("--jobs", type=int, default=2, help="scenarios run in parallel (default 2)")
    parser.add_argument("--verbose", "-v", action="store_true", help="also print what the trust engine learned")
    args = parser.parse_args(argv)
    chosen = [i for i, s in enumerate(SCENARIOS) if not args.only or s.name in args.only]
    if not chosen:
        print(f"no such scenario; known: {', '.join(s.name for s in SCENARIOS)}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    print(f"seed {args.seed}, {args.numbers} numbers per world; predicted spam = WARN or BLOCK; "
          "false-block = BLOCK among legitimate numbers; regulator-confirmed (gold) numbers not scored;\n"
          "attacked->BLOCK = legitimate numbers under attack (sybil flood, competitor labelled fraud) that were blocked\n")
    header = f"{'scenario':<15} {'method':<9} {'F1':>7} {'precision':>9} {'recall':>7} {'false-block':>12} {'attacked->BLOCK':>16} {'seconds':>8}"
    print(header)
    print("-" * len(header))
    if args.jobs > 1 and len(chosen) > 1:
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            futures = [pool.submit(run, i, args.seed, args.numbers, args.verbose) for i in chosen]
            outcomes = [f.result() for f in futures]
    else:
        outcomes = [run(i, args.seed, args.numbers, args.verbose) for i in chosen]
    for index, (results, attacked, learned) in zip(chosen, outcomes):
        scenario = SCENARIOS[index]
        for r in results:
            m = r.metrics
            shown = f"{r.attacked_blocked}/{attacked}" if attacked else "-"
            print(f"{scenario.name:<15} {r.method:<9} {m.f1:7.4f} {m.precision:9.4f} {m.recall:7.4f} "
                  f"{m.false_block_rate:12.3%} {shown:>16} {r.seconds:8.2f}")
        first = results[0].metrics
        print(f"{'':<15} {scenario.description}; {first.numbers} numbers scored, {first.legitimate} legitimate")
        if learned:
            print(learned)
        print()
    print(f"total {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
