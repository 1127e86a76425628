"""``python -m benchmarks [--scenario NAME ...] [--full] [--profile]``

Runs the scenarios in order, prints one table per scenario plus a summary of
the targets, and writes everything to ``benchmarks/results/<timestamp>.json``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import shutil
import sys
import tempfile
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path

from benchmarks import SCENARIOS
from benchmarks._context import FULL, QUICK, Ctx
from benchmarks._procs import loadavg
from benchmarks._stats import render_table

HERE = Path(__file__).resolve().parent
MODULES = {name: f"benchmarks.{name}" for name in SCENARIOS}
MODULES["clients"] = "benchmarks._clients_runner"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", "-s", action="append", default=[],
                        help=f"run only this scenario (repeatable or comma-separated): {', '.join(SCENARIOS)}")
    parser.add_argument("--full", action="store_true", help="larger sizes and longer phases (tens of minutes)")
    parser.add_argument("--profile", action="store_true",
                        help="also profile the server under load (yappi if importable, else cProfile); reports go to results/")
    parser.add_argument("--out", type=Path, default=None, help="JSON output path (default benchmarks/results/<timestamp>.json)")
    parser.add_argument("--exact-data", action="store_true",
                        help="write every generated row through SqliteStore.put_verdicts/add_labels (slow: minutes per million) "
                             "instead of seeding through the store and letting SQLite produce verified-identical rows")
    parser.add_argument("--keep-data", action="store_true", help="keep the temporary data directory")
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    return parser.parse_args(argv)


def _jsonable(value: object) -> object:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def collect_errors(data: object, path: str = "") -> list[str]:
    """Every non-empty ``errors`` count in a scenario's data, with where it was found."""
    found: list[str] = []
    if isinstance(data, dict):
        for key, value in data.items():
            where = f"{path}.{key}" if path else str(key)
            if key == "errors" and isinstance(value, dict) and any(value.values()):
                found.append(f"{path or '-'}: {value}")
            elif key in ("unfinished",) and isinstance(value, int) and value:
                continue
            else:
                found.extend(collect_errors(value, where))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            found.extend(collect_errors(value, f"{path}[{index}]"))
    return found


def print_result(name: str, result: dict) -> None:
    print()
    if result.get("skipped"):
        print(f"== {name}: skipped - {result['skipped']}")
        return
    if result.get("failed"):
        print(f"== {name}: FAILED - {result['failed']}")
        return
    print(f"== {result.get('title', name)}")
    if result.get("rows"):
        print(render_table(result["header"], result["rows"]))
    for note in result.get("notes", []):
        print(f"  * {note}")
    for error in result.get("errors_seen", [])[:8]:
        print(f"  ! failed calls in {error}")
    for t in result.get("targets", []):
        verdict = "holds" if t["holds"] else ("n/a" if t["holds"] is None else "DOES NOT HOLD")
        print(f"  target: {t['target']}: {t['measured']} -> {verdict}")
    print(f"  ({result.get('seconds', 0):.0f} s)")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.list:
        for name in SCENARIOS:
            module = importlib.import_module(MODULES[name])
            print(f"{name:18s} {(module.__doc__ or '').strip().splitlines()[0]}")
        return 0
    selected = [s.strip() for item in args.scenario for s in item.split(",") if s.strip()] or list(SCENARIOS)
    unknown = [s for s in selected if s not in MODULES]
    if unknown:
        print(f"unknown scenario(s): {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}", file=sys.stderr)
        return 2

    from benchmarks import _fixtures as fx

    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    results_dir = HERE / "results"
    results_dir.mkdir(parents=True, exist_ok=True)
    out_path = args.out or results_dir / f"{stamp}.json"
    tmp = Path(tempfile.mkdtemp(prefix="numrep-bench-"))
    ctx = Ctx(full=args.full, tmp=tmp, results_dir=results_dir, stamp=stamp, profile=args.profile,
              sizes=FULL if args.full else QUICK, fed=fx.make_federation(), exact_data=args.exact_data)
    report: dict = {
        "started": stamp, "profile": "full" if args.full else "quick", "scenarios_selected": selected,
        "host": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                 "loadavg_start": loadavg()},
        "sizes": ctx.sizes.__dict__, "results": {},
    }
    try:
        import grpc

        report["host"]["grpcio"] = grpc.__version__
    except Exception:  # noqa: BLE001
        pass
    ctx.log(f"numrep benchmarks ({report['profile']} profile), data in {tmp}; load average {loadavg()}")
    try:
        for name in selected:
            started = time.monotonic()
            ctx.log(f"--- {name}")
            try:
                module = importlib.import_module(MODULES[name])
                result = module.run(ctx)
            except KeyboardInterrupt:
                raise
            except Exception as exc:  # noqa: BLE001 - one scenario failing must not lose the others
                result = {"failed": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
                ctx.log(result["traceback"])
            result["errors_seen"] = collect_errors(result.get("data", {}))
            result["seconds"] = time.monotonic() - started
            result["loadavg_after"] = loadavg()
            report["results"][name] = result
            print_result(name, result)
            sys.stdout.flush()
            out_path.write_text(json.dumps(_jsonable(report), indent=2))
    finally:
        report["host"]["loadavg_end"] = loadavg()
        report["seconds"] = time.monotonic() - ctx.started
        out_path.write_text(json.dumps(_jsonable(report), indent=2))
        if args.keep_data:
            ctx.log(f"data kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    print()
    print("== summary of targets")
    for name, result in report["results"].items():
        if result.get("skipped") or result.get("failed"):
            print(f"  {name}: {'skipped' if result.get('skipped') else 'FAILED'}")
        for t in result.get("targets", []):
            verdict = "holds" if t["holds"] else ("n/a" if t["holds"] is None else "DOES NOT HOLD")
            print(f"  {name}: {t['target']}: {t['measured']} -> {verdict}")
    print(f"\nresults: {out_path} ({report['seconds']:.0f} s; load average at start {report['host']['loadavg_start']}, "
          f"end {report['host']['loadavg_end']})")
    failed = [n for n, r in report["results"].items() if r.get("failed")]
    return 1 if failed else 0
