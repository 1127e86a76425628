"""A trust refit in a process of its own, for a serving exchange.

A refit reads the whole record, fits, stores the epoch and recomputes every
stored verdict: seconds to minutes of Python, and at its peak hundreds of MB on a
large record. On a thread of the serving process it holds the GIL against every
call (a carrier's Lookup p99 went from 4.3 to 20.5 ms while one ran:
``benchmarks/refit.py``), and its peak stays in the server's heap. So a server
that opened its store from its configuration runs each refit as
``python -m numrep.trust_job`` on that same store, on the machine's other core,
then installs the epoch the job stored, as another replica would.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from pathlib import Path

from numrep.api.auth import run_blocking
from numrep.config import ServerConfig
from numrep.core import errors
from numrep.exchange import Exchange
from numrep.trust import TrustSnapshot

log = logging.getLogger(__name__)

JOB_NICENESS = 10  # a batch job: the serving process, and its calls, come first for the CPU

# What a job may report and the server raises again: the store's failures, and a precondition.
_PASSED_ON = {cls.__name__: cls for cls in (errors.StoreUnavailable, errors.StoreTimeout, errors.FailedPrecondition)}


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
        self._running: asyncio.subprocess.Process | None = None

    async def refit(self) -> tuple[TrustSnapshot, int]:
        """The epoch the job stored, installed here, and how many verdicts it changed. A
        caller that gives up leaves the job to finish: its epoch is installed all the same."""
        job = asyncio.get_running_loop().create_task(self._one())
        self._jobs.add(job)
        job.add_done_callback(_settled)
        job.add_done_callback(self._jobs.discard)
        return await asyncio.shield(job)

    async def _one(self) -> tuple[TrustSnapshot, int]:
        async with self._turn:
            process = await asyncio.create_subprocess_exec(*self._command, stdout=asyncio.subprocess.PIPE, env=_job_environment())
            self._running = process
            try:
                output, _ = await process.communicate()
            finally:
                self._running = None
        answer = _answer(output, process.returncode)
        keeper = self._exchange.trust
        assert keeper is not None, "a refit job serves an exchange that runs the learned trust engine"
        await asyncio.to_thread(keeper.load_latest, even_same_epoch=True)
        log.info("trust: the refit job stored epoch %d (%d verdicts changed); serving epoch %d",
                 answer["epoch"], answer["changed"], keeper.snapshot.epoch)
        return keeper.snapshot, answer["changed"]

    def stop(self) -> None:
        """End the job under way and those waiting (the server is stopping). What a job
        stored stands; a refit cut short is done again by the next."""
        if self._running is not None and self._running.returncode is None:
            self._running.kill()
        for job in list(self._jobs):
            job.cancel()


def _job_environment() -> dict[str, str]:
    """The server's environment, with numpy's BLAS on one thread: the job is to take one core, not all."""
    return {**os.environ, **{name: "1" for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}}


def _settled(job: "asyncio.Task[object]") -> None:
    if not job.cancelled() and job.exception() is not None and not isinstance(job.exception(), errors.NumrepError):
        log.error("trust: refit job failed", exc_info=job.exception())


def _answer(output: bytes, returncode: int | None) -> dict:
    try:
        answer = json.loads(output.decode().strip().splitlines()[-1]) if output.strip() else {}
    except ValueError:
        answer = {}
    if "error" in answer:
        kind = _PASSED_ON.get(answer["error"], errors.StoreUnavailable)
        raise kind(answer["message"], answer.get("reason", ""))
    if returncode != 0 or "changed" not in answer:
        raise errors.NumrepError(f"the trust refit process ended with exit status {returncode} and no result", "refit_failed")
    return answer


def main(argv: list[str] | None = None) -> int:
    """Refit once on the store given, print ``{"epoch": N, "changed": M}`` (or the error) on one line."""
    from numrep.server import build_exchange

    parser = argparse.ArgumentParser(prog="python -m numrep.trust_job", description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--store", default="sqlite")
    parser.add_argument("--reconciler", default="trust")
    args = parser.parse_args(argv)
    os.nice(JOB_NICENESS)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s [refit job] %(message)s")
    try:
        exchange = build_exchange(ServerConfig.from_env(data_dir=args.data_dir, store=args.store, reconciler=args.reconciler))
        try:
            snapshot, changed = exchange.refit_trust()
        finally:
            exchange.store.close()
    except errors.NumrepError as exc:
        print(json.dumps({"error": type(exc).__name__, "message": exc.message, "reason": exc.reason}), flush=True)
        return 2
    print(json.dumps({"epoch": snapshot.epoch, "changed": changed}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
