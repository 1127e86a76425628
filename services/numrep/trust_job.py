"""A trust refit in a process of its own, for a serving exchange.

A refit reads the whole record, fits, stores the epoch and then looks at every
stored verdict: seconds to minutes of Python, and at its peak hundreds of MB on a
large record. On a thread of the serving process it holds the GIL against every
call (a carrier's Lookup p99 went from 4.2 to 21.9 ms while one ran, and from
4.1 to 4.4 ms beside it: ``benchmarks/refit.py``), and its peak stays in the
server's heap. So a server that opened its store from its configuration runs
each refit as ``python -m numrep.trust_job`` on that same store, at a lower CPU
priority.

The job says on its standard output, a JSON object a line: ``{"stored": N}``
once the epoch is stored. The server then serves it and answers ``served`` on
the job's standard input; only then does the job look at the stored verdicts,
so that none the server writes from then on is from the older epoch. Of the
verdicts the new epoch answers differently, a batch at a time:

* on a store with ``serial_rewrites`` (SQLite) the job rewrites them itself and
  says ``{"rewrote": n}``: each rewrite reads the evidence and writes the
  verdict with no other process's write between, so a verdict the server
  stores meanwhile (say, after a retraction) is never overwritten from evidence
  read before it;
* elsewhere (Cassandra) it says ``{"stale": [numbers]}``, and the server
  rewrites them under the same per-number locks as every other write of a
  verdict.

It ends with ``{"epoch": N, "stale": M}``, or ``{"error": kind, "message": ...,
"reason": ...}``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

from numrep.api.auth import run_blocking
from numrep.config import ServerConfig
from numrep.core import errors
from numrep.exchange import Exchange
from numrep.trust import TrustSnapshot

log = logging.getLogger(__name__)

JOB_NICENESS = 10  # a batch job: the serving process, and its calls, come first for the CPU
SERVED = "served"  # the server's answer to {"stored": N}: it serves that epoch now
REWRITE_BATCH = 100  # verdicts rewritten in one write transaction: the server's own writes wait for it


async def refit(exchange: Exchange) -> tuple[TrustSnapshot, int]:
    """A refit for a serving process: in the exchange's job when its server gave it one
    (``RefitJob``), else on a worker thread."""
    if exchange.refit_apart is not None:
        return await exchange.refit_apart()
    return await run_blocking(exchange.refit_trust)


class RefitJob:
    """Refits ``exchange``'s trust in a child process on ``config``'s store, one at a time."""

    def __init__(self, config: ServerConfig, exchange: Exchange) -> None:
        self._command = [sys.executable, "-m", "numrep.trust_job", "--data-dir", str(config.data_dir),
                         "--store", config.store, "--reconciler", config.reconciler]
        self._exchange = exchange
        self._turn = asyncio.Lock()
        self._jobs: set[asyncio.Task[tuple[TrustSnapshot, int]]] = set()
        self._waiting: asyncio.Task[tuple[TrustSnapshot, int]] | None = None  # a job not yet begun: callers share it
        self._running: asyncio.subprocess.Process | None = None
        self._stopped = False

    async def refit(self) -> tuple[TrustSnapshot, int]:
        """The epoch the job stored, served here, and how many verdicts it changed. Callers
        that ask while a job waits for its turn share that job: it has read nothing yet, so
        it sees everything they stored before asking. A caller that gives up leaves the job
        to finish: its epoch is served all the same."""
        job = self._waiting
        if job is None or job.done():  # done before its turn: cancelled by stop()
            job = self._waiting = asyncio.get_running_loop().create_task(self._one())
            self._jobs.add(job)
            job.add_done_callback(self._jobs.discard)
            job.add_done_callback(_logged)
        return await asyncio.shield(job)

    async def _one(self) -> tuple[TrustSnapshot, int]:
        async with self._turn:
            self._waiting = None  # begun: from here on a caller's new data may come too late for it
            if self._stopped:
                raise errors.StoreUnavailable("the exchange is stopping: no new trust refit", "stopping")
            try:
                process = await asyncio.create_subprocess_exec(*self._command, stdin=asyncio.subprocess.PIPE,
                                                               stdout=asyncio.subprocess.PIPE, env=_job_environment())
            except OSError as exc:
                raise errors.NumrepError(f"cannot start the trust refit process: {exc}", "refit_failed") from None
            self._running = process
            try:
                return await self._follow(process)
            finally:
                self._running = None
                if process.returncode is None:  # given up on (the epoch could not be served, say): not left waiting
                    process.kill()
                    await process.wait()

    async def _follow(self, process: asyncio.subprocess.Process) -> tuple[TrustSnapshot, int]:
        keeper = self._exchange.trust
        assert keeper is not None and process.stdout is not None and process.stdin is not None, \
            "a refit job serves an exchange that runs the learned trust engine"
        changed, end, failure = 0, None, None
        async for line in process.stdout:
            said = _said(line)
            if "stored" in said:
                await run_blocking(self._exchange.serve_latest_trust)  # new verdicts from here on use the new epoch
                await _tell(process.stdin, SERVED)
            elif "rewrote" in said and isinstance(said["rewrote"], int):
                changed += said["rewrote"]
            elif "stale" in said and isinstance(said["stale"], list):
                changed += await run_blocking(self._exchange.rewrite_stale, said["stale"])
            elif "error" in said:
                failure = _error(said)
            elif "epoch" in said:
                end = said
        status = await process.wait()
        if failure is not None:
            raise failure
        if status != 0 or end is None:
            raise errors.NumrepError(f"the trust refit process ended with exit status {status} and no result", "refit_failed")
        log.info("trust: the refit job stored epoch %s; %d verdicts changed; serving epoch %d", end["epoch"], changed,
                 keeper.snapshot.epoch)
        return keeper.snapshot, changed

    def stop(self) -> None:
        """End the job under way and refuse new ones (the server is stopping). The epoch a job
        stored stands; verdicts it had not yet listed are brought up to it by the next refit."""
        self._stopped = True
        if self._running is not None and self._running.returncode is None:
            self._running.kill()
        for job in list(self._jobs):
            job.cancel()


async def _tell(job: asyncio.StreamWriter, line: str) -> None:
    try:
        job.write(line.encode() + b"\n")
        await job.drain()
    except (BrokenPipeError, ConnectionResetError):
        pass  # the job has ended: its exit status says how


def _said(line: bytes) -> dict[str, Any]:
    try:
        said = json.loads(line)
    except ValueError:
        return {}
    return said if isinstance(said, dict) else {}


def _error(said: dict[str, Any]) -> errors.NumrepError:
    """The job's error as the exchange's own kind of error (so the RPC's status says what went wrong)."""
    message, reason = str(said.get("message", "the trust refit failed")), str(said.get("reason", ""))
    kind = _error_kinds().get(str(said["error"]), errors.NumrepError)
    try:
        return kind(message, reason)
    except TypeError:  # a kind whose constructor takes more than a message and a reason
        return errors.NumrepError(message, reason)


def _error_kinds() -> dict[str, type[errors.NumrepError]]:
    kinds, pending = {}, [errors.NumrepError]
    while pending:
        kind = pending.pop()
        kinds[kind.__name__] = kind
        pending += kind.__subclasses__()
    return kinds


def _logged(job: "asyncio.Task[object]") -> None:
    """A failed refit is logged even when nobody waits for it any more."""
    if job.cancelled() or job.exception() is None:
        return
    failure = job.exception()
    if isinstance(failure, errors.NumrepError):
        log.warning("trust: refit failed: %s", failure.message)
    else:
        log.error("trust: refit failed", exc_info=failure)


def _job_environment() -> dict[str, str]:
    """The server's environment, with numpy's BLAS on one thread: the job is to take one core, not all."""
    return {**os.environ, **{name: "1" for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}}


def _say(message: dict[str, Any]) -> None:
    print(json.dumps(message), flush=True)


def _rewrite(exchange: Exchange, numbers: list[str]) -> int:
    """Rewrite ``numbers``' stale verdicts in one write transaction, then leave the store to
    other writers for as long again. The server's writes wait in SQLite's busy handler, which
    looks again after 1, 2, 5, 10 ... 100 ms: back to back, the job's transactions left them
    few chances (another process's single-verdict write: p99 56-81 ms while the job rewrote
    20,000 verdicts, 13.8-20.8 ms with the pause, 2-5 ms quiet; the rewrite took 6.0 s, not 3.2)."""
    started = time.monotonic()
    rewrote = exchange.rewrite_stale(numbers)
    time.sleep(time.monotonic() - started)
    return rewrote


def main(argv: list[str] | None = None) -> int:
    """Fit and store a new epoch on the store given, then rewrite or list the verdicts it makes stale (see above)."""
    from numrep.server import build_exchange
    from numrep.telemetry.logs import configure_logging

    parser = argparse.ArgumentParser(prog="python -m numrep.trust_job", description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--store", default="sqlite")
    parser.add_argument("--reconciler", default="trust")
    args = parser.parse_args(argv)
    os.nice(JOB_NICENESS)
    configure_logging(json_format=os.environ.get("NUMREP_LOG_FORMAT") == "json")
    try:
        exchange = build_exchange(ServerConfig.from_env(data_dir=args.data_dir, store=args.store, reconciler=args.reconciler))
        try:
            snapshot = exchange.fit_trust()
            _say({"stored": snapshot.epoch})
            if sys.stdin.readline().strip() != SERVED:
                log.warning("trust: the server did not take up epoch %d; its verdicts are left to the next refit", snapshot.epoch)
                return 3
            stale = 0
            for numbers in exchange.stale_verdicts():
                if exchange.store.serial_rewrites:
                    _say({"rewrote": sum(_rewrite(exchange, numbers[at:at + REWRITE_BATCH])
                                         for at in range(0, len(numbers), REWRITE_BATCH))})
                else:
                    _say({"stale": numbers})
                stale += len(numbers)
        finally:
            exchange.store.close()
    except errors.NumrepError as exc:
        _say({"error": type(exc).__name__, "message": exc.message, "reason": exc.reason})
        return 2
    _say({"epoch": snapshot.epoch, "stale": stale})
    return 0


if __name__ == "__main__":
    sys.exit(main())
