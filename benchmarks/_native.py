"""The native open-loop load generator (``benchmarks/native_load``, Go): built on
first use into the cache with the Go toolchain (modules from the Go module proxy,
pinned by its go.sum), then run as a child process per measurement.

Why: the Python load generator spends about as much CPU per call as the server
it measures, so on a 2-core machine it cannot offer the 4,000/s the data-scale
target names (it reaches ~2,100/s even against a bare gRPC server). The Go
generator is lighter and schedules arrivals exactly, so the servers being
compared, not the generator, set the limit."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Sequence

SOURCE = Path(__file__).resolve().parent / "native_load"
CACHE = Path(os.environ.get("NUMREP_CACHE", Path.home() / ".cache" / "numrep")) / "native_load"


def binary() -> Path | str:
    """The built generator, or why there is none (no Go toolchain, a failed build)."""
    go = shutil.which("go") or ("/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").exists() else None)
    if go is None:
        return "no Go toolchain on PATH (the native load generator is built with `go build`)"
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in sorted(SOURCE.glob("*")) if p.is_file())).hexdigest()[:16]
    built = CACHE / f"native_load-{digest}"
    if built.exists():
        return built
    CACHE.mkdir(parents=True, exist_ok=True)
    partial = built.with_suffix(".partial")
    result = subprocess.run([go, "build", "-o", str(partial), "."], cwd=SOURCE, capture_output=True, text=True, timeout=900)
    if result.returncode != 0:
        return f"go build of {SOURCE} failed: {result.stderr.strip()[-1500:]}"
    partial.replace(built)
    return built


def open_loop(generator: Path, target: str, requests: Sequence[bytes], rate: float, seconds: float, *,
              method: str = "/numrep.v1.LookupService/Lookup", warmup: float = 1.0, drain: float = 3.0,
              tls: dict | None = None, connections: int = 32, max_inflight: int = 1000, work_dir: Path,
              stream: bool = False, write_interval: float = 0.0) -> dict:
    """One open-loop run at ``rate`` arrivals/s for ``seconds`` (after ``warmup``):
    achieved rate, latency percentiles from each call's scheduled send time,
    errors by status code, calls unfinished at the end, the generator's CPU.
    ``stream``: each arrival a lookup on a LookupStream (one per connection),
    each stream writing at most once per ``write_interval`` (s)."""
    work_dir.mkdir(parents=True, exist_ok=True)
    listing = work_dir / "native_requests.b64"
    listing.write_text("\n".join(base64.b64encode(r).decode() for r in requests))
    command = [str(generator), "-target", target, "-method", method, "-requests", str(listing), "-rate", str(rate),
               "-duration", f"{seconds}s", "-warmup", f"{warmup}s", "-drain", f"{drain}s",
               "-connections", str(connections), "-max-inflight", str(max_inflight)]
    if tls:
        command += ["-ca", tls["ca"], "-cert", tls["cert"], "-key", tls["key"]]
    if stream:
        command += ["-stream", "-method", "/numrep.v1.LookupService/LookupStream", "-write-interval", f"{write_interval * 1e6:.0f}us"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=seconds + warmup + drain + 120)
    if result.returncode != 0:
        raise RuntimeError(f"native load generator failed ({result.returncode}): {result.stderr.strip()[-1500:]}")
    return json.loads(result.stdout)
