"""clients: the SDK benchmarks in benchmarks/clients_bench.py (written separately), when present.

Run as a subprocess (``python -m benchmarks.clients_bench [--full]``) with a
time limit; its output is kept verbatim in the JSON report. If its last line
of output is a JSON object, that object is stored as its results.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from benchmarks._context import Ctx

HERE = Path(__file__).resolve().parent
TIMEOUT_QUICK, TIMEOUT_FULL = 240, 1800


def run(ctx: Ctx) -> dict:
    script = HERE / "clients_bench.py"
    if not script.exists():
        return {"skipped": "benchmarks/clients_bench.py does not exist (yet)"}
    command = [sys.executable, "-m", "benchmarks.clients_bench"] + (["--full"] if ctx.full else [])
    ctx.log(f"clients: {' '.join(command[1:])}")
    try:
        done = subprocess.run(command, cwd=HERE.parent, capture_output=True, text=True,
                              timeout=TIMEOUT_FULL if ctx.full else TIMEOUT_QUICK)
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        return {"failed": f"clients_bench did not finish within {exc.timeout} s", "stdout_tail": out[-4000:]}
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    parsed = None
    if lines:
        try:
            candidate = json.loads(lines[-1])
            parsed = candidate if isinstance(candidate, dict) else None
        except json.JSONDecodeError:
            parsed = None
    result = {
        "title": "clients: benchmarks/clients_bench.py (its own output follows)",
        "notes": [line for line in lines[-40:] if parsed is None or line != lines[-1]],
        "data": {"returncode": done.returncode, "results": parsed, "stdout": done.stdout[-20000:], "stderr": done.stderr[-4000:]},
    }
    if done.returncode != 0:
        result["failed"] = f"clients_bench exited with {done.returncode}: {done.stderr.strip().splitlines()[-1:]}"
    return result
