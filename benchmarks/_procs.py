"""Processes: the exchange (or a bare gRPC baseline) in one child process, the
load generator in another, both started with ``spawn`` so no gRPC state is
forked. The parent only orchestrates and samples ``/proc`` (RSS, CPU time).

Children talk to the parent over a pipe: one request, one reply. A child reads
its pipe on its own thread, never on the default executor, so the exchange's
``asyncio.to_thread`` pool is exactly what it would be in production.
"""

from __future__ import annotations

import asyncio
import gc
import multiprocessing as mp
import os
import threading
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Sequence

CTX = mp.get_context("spawn")
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


class ChildFailed(RuntimeError):
    pass


# --- /proc -----------------------------------------------------------------------------
def rss_bytes(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/statm") as handle:
            return int(handle.read().split()[1]) * PAGE
    except (OSError, ValueError, IndexError):
        return None


def cpu_seconds(pid: int) -> float | None:
    """utime + stime of every thread of ``pid``."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except (OSError, ValueError, IndexError):
        return None


def settle(pids: Sequence[int], idle: float = 0.05, window: float = 0.5, most: float = 15.0) -> float:
    """Wait until each of ``pids`` used at most ``idle`` of a core over ``window``
    seconds (a server still working off the calls of the run before would spoil the
    next one's first seconds), for at most ``most`` seconds; how long it waited."""
    started = time.perf_counter()
    while time.perf_counter() - started < most:
        before = [cpu_seconds(pid) or 0.0 for pid in pids]
        time.sleep(window)
        if all((cpu_seconds(pid) or 0.0) - b <= idle * window for pid, b in zip(pids, before)):
            break
    return round(time.perf_counter() - started, 1)


def loadavg() -> tuple[float, float, float]:
    try:
        one, five, fifteen = os.getloadavg()
        return (round(one, 2), round(five, 2), round(fifteen, 2))
    except OSError:
        return (0.0, 0.0, 0.0)


# --- the parent's handle on a child ----------------------------------------------------------
class Child:
    def __init__(self, target: Callable[..., None], *args: Any, name: str, start_timeout: float = 60.0) -> None:
        parent_end, child_end = CTX.Pipe()
        self.name = name
        self.proc = CTX.Process(target=target, args=(child_end, *args), name=name, daemon=True)
        self.proc.start()
        child_end.close()
        self.conn = parent_end
        self.hello = self.recv(start_timeout)

    @property
    def pid(self) -> int:
        return self.proc.pid  # type: ignore[return-value]

    def recv(self, timeout: float, on_wait: Callable[[], None] | None = None, poll: float = 0.1) -> Any:
        deadline = time.monotonic() + timeout
        while not self.conn.poll(poll):
            if on_wait is not None:
                on_wait()
            if not self.proc.is_alive():
                raise ChildFailed(f"{self.name} exited with code {self.proc.exitcode}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name} did not answer within {timeout:.0f} s")
        reply = self.conn.recv()
        if isinstance(reply, dict) and reply.get("error"):
            raise ChildFailed(f"{self.name}: {reply['error']}")
        return reply

    def request(self, message: dict, timeout: float = 120.0, on_wait: Callable[[], None] | None = None) -> Any:
        self.conn.send(message)
        return self.recv(timeout, on_wait)

    def close(self, timeout: float = 15.0) -> Any:
        reply = None
        if self.proc.is_alive():
            try:
                reply = self.request({"cmd": "stop"}, timeout)
            except (ChildFailed, TimeoutError, OSError, EOFError, BrokenPipeError):
                pass
        self.proc.join(timeout)
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(5)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(5)
        self.conn.close()
        return reply

    def __enter__(self) -> "Child":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _inbox(conn: Any, loop: asyncio.AbstractEventLoop, queue: "asyncio.Queue[Any]") -> None:
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            message = {"cmd": "stop", "eof": True}
        loop.call_soon_threadsafe(queue.put_nowait, message)
        if message.get("cmd") == "stop":
            return


async def serve_commands(conn: Any, handle: Callable[[dict], Any]) -> dict:
    """Answer the parent's requests with ``await handle(message)`` until "stop"."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Any] = asyncio.Queue()
    threading.Thread(target=_inbox, args=(conn, loop, queue), name="bench-inbox", daemon=True).start()
    while True:
        message = await queue.get()
        if message.get("cmd") == "stop":
            return message
        try:
            reply = await handle(message)
        except Exception:  # noqa: BLE001 - reported to the parent, which decides
            reply = {"error": traceback.format_exc()}
        conn.send(reply)


def child_entry(conn: Any, main: Callable[..., Any], *args: Any) -> None:
    try:
        asyncio.run(main(conn, *args))
    except BaseException:  # noqa: BLE001
        try:
            conn.send({"error": traceback.format_exc()})
        except OSError:
            pass
        raise


# --- profiling inside a child ----------------------------------------------------------------
class Profiler:
    """yappi (all threads, CPU clock) when importable, else cProfile of the
    event-loop thread only. Writes a text report of the top functions."""

    def __init__(self) -> None:
        self.kind = ""
        self._profile: Any = None

    def start(self) -> str:
        try:
            import yappi  # type: ignore[import-not-found]

            yappi.clear_stats()
            yappi.set_clock_type("cpu")
            yappi.start(builtins=True, profile_threads=True)
            self.kind = "yappi (cpu clock, all threads)"
        except ImportError:
            import cProfile

            self._profile = cProfile.Profile()
            self._profile.enable()
            self.kind = "cProfile (event-loop thread only; install yappi for worker threads)"
        return self.kind

    def stop(self, path: str, top: int = 45) -> str:
        if self.kind.startswith("yappi"):
            import io

            import yappi  # type: ignore[import-not-found]

            yappi.stop()
            stats = yappi.get_func_stats()
            out = io.StringIO()
            total = sum(s.tsub for s in stats)
            out.write(f"profiler: {self.kind}; total own CPU {total:.2f} s\n\n")
            for title, key in (("by own time (tsub)", "tsub"), ("by inclusive time (ttot)", "ttot")):
                out.write(f"== top {top} {title} ==\n")
                out.write(f"{'own s':>8} {'own %':>6} {'incl s':>8} {'calls':>9}  function\n")
                for s in sorted(stats, key=lambda s: getattr(s, key), reverse=True)[:top]:
                    share = 100 * s.tsub / total if total else 0.0
                    where = f"{Path(s.module).name}:{s.lineno}" if s.module else ""
                    out.write(f"{s.tsub:8.3f} {share:6.1f} {s.ttot:8.3f} {s.ncall:9d}  {s.name}  {where}\n")
                out.write("\n")
            yappi.clear_stats()
            text = out.getvalue()
        else:
            import io
            import pstats

            self._profile.disable()
            out = io.StringIO()
            out.write(f"profiler: {self.kind}\n\n")
            stats = pstats.Stats(self._profile, stream=out)
            stats.sort_stats("tottime").print_stats(top)
            stats.sort_stats("cumulative").print_stats(top)
            text = out.getvalue()
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text)
        return path


# --- garbage-collection pauses inside a child --------------------------------------------------
GcTake = dict[str, dict[str, float]]  # generation ("0", "1", "2") -> count, total_ms, max_ms; "heap" -> tracked, frozen


class GcPauses:
    """Every cyclic-GC pass in this process (``gc.callbacks``): per generation the
    count, total and longest pause since the last ``take``. A full (generation 2)
    pass stops every thread for as long as it walks the whole heap."""

    def __init__(self) -> None:
        self._started = 0.0
        self._pauses: dict[int, list[float]] = {}
        self._lock = threading.Lock()
        gc.callbacks.append(self._record)

    def _record(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        pause_ms = (time.perf_counter() - self._started) * 1000
        with self._lock:  # no collection starts in here: the collector does not run inside its own callback
            self._pauses.setdefault(info["generation"], []).append(pause_ms)

    def _swap(self) -> dict[int, list[float]]:
        fresh: dict[int, list[float]] = {}  # made before the lock: an allocation may start a collection, whose callback takes it
        with self._lock:
            pauses, self._pauses = self._pauses, fresh
        return pauses

    def reset(self) -> None:
        """Forget the pauses so far (a phase starts)."""
        self._swap()

    def take(self) -> GcTake:
        """{generation: {count, total_ms, max_ms}} since the last take or reset, then
        forget them; and under "heap", the objects a full pass walks now and those frozen out of it."""
        taken: GcTake = {str(gen): {"count": len(p), "total_ms": sum(p), "max_ms": max(p)} for gen, p in sorted(self._swap().items())}
        taken["heap"] = {"tracked": len(gc.get_objects()), "frozen": gc.get_freeze_count()}
        return taken
