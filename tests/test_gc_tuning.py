"""A serving process's garbage collector (numrep.gc_tuning): the start-up heap is
left out of every pass, full passes are rare under cache turnover, young passes
keep their pace under it, and garbage cycles are still reclaimed. Each case runs in its own interpreter, so the test
process's own collector is untouched."""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import textwrap
from pathlib import Path

# A lookup stream over ever new numbers: each decoded verdict enters the codec's
# memo (evicting an old one), and each call leaves a little cyclic garbage.
CHURN = """
import gc, json, sys
from datetime import datetime, timezone
import numrep.server
from numrep.core.model import Action, Contribution, Role, Verdict
from numrep.gc_tuning import tune_for_serving
from numrep.store import codec

now = datetime.now(timezone.utc)
text = codec.verdict_to_json(Verdict("+15752007919", Action.WARN, "fraud", 0.85, 0.6,
    (Contribution("carrier-north", Role.CARRIER, "fraud", 3.1, "label", "x/y"),), now, now))
texts = [text.replace("+15752007919", f"+1575{i:07d}") for i in range(6 * codec.VERDICT_MEMO)]
if sys.argv[1] == "tuned":
    tune_for_serving()
full_passes = []
gc.callbacks.append(lambda phase, info: full_passes.append(1) if phase == "stop" and info["generation"] == 2 else None)

class Call:
    def __init__(self) -> None:
        self.me = self

for t in texts:
    codec.verdict_from_json(t)
    Call(), Call(), Call()
print(json.dumps({"full_passes": len(full_passes), "frozen": gc.get_freeze_count(), "tracked": len(gc.get_objects())}))
"""


# The same turnover on a serving event loop, without the cyclic garbage: every decode
# past the memo's size evicts an old verdict, so deallocations keep pace with allocations.
TURNOVER = """
import asyncio, gc, json, sys
from datetime import datetime, timezone
import numrep.server
from numrep.core.model import Action, Contribution, Role, Verdict
from numrep.gc_tuning import YoungPasses, tune_for_serving
from numrep.store import codec

now = datetime.now(timezone.utc)
text = codec.verdict_to_json(Verdict("+15752007919", Action.WARN, "fraud", 0.85, 0.6,
    (Contribution("carrier-north", Role.CARRIER, "fraud", 3.1, "label", "x/y"),), now, now))
texts = [text.replace("+15752007919", f"+1575{i:07d}") for i in range(4 * codec.VERDICT_MEMO)]
tune_for_serving()

async def serve() -> int:
    paced = YoungPasses(every=0.002) if sys.argv[1] == "paced" else None
    largest = 0
    for i, t in enumerate(texts):
        codec.verdict_from_json(t)
        if i % 256 == 0:
            await asyncio.sleep(0)  # the loop's other work gets a turn
        if i % 1024 == 128 and i >= 2 * codec.VERDICT_MEMO:  # the memo is full: each decode evicts one
            largest = max(largest, len(gc.get_objects(generation=0)))
    if paced is not None:
        paced.stop()
    return largest

print(json.dumps({"largest_young": asyncio.run(serve())}))
"""


def _run(script: str, *args: str) -> dict:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(script), *args], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_full_passes_are_rare_and_skip_the_start_up_heap_under_cache_turnover() -> None:
    default, tuned = _run(CHURN, "default"), _run(CHURN, "tuned")
    assert default["frozen"] == 0
    assert tuned["frozen"] > 10_000  # modules, descriptors, gRPC: no longer walked by any pass
    assert tuned["tracked"] < default["tracked"] - tuned["frozen"] // 2
    assert default["full_passes"] >= 2  # each one a stop of every thread while the whole heap is walked
    assert tuned["full_passes"] == 0


def test_under_cache_turnover_young_passes_come_on_time_and_the_young_generation_stays_small() -> None:
    # CPython counts a young pass due when allocations outnumber deallocations by 700; every
    # eviction is a deallocation, so on its own the young generation grows until one pass
    # must walk it all while the event loop waits (60-150 ms at 4,000 lookups/s).
    unpaced, paced = _run(TURNOVER, "unpaced"), _run(TURNOVER, "paced")
    assert unpaced["largest_young"] > 20_000
    assert paced["largest_young"] < 5_000


def test_young_passes_run_at_their_pace_on_the_loop_and_stop_when_stopped() -> None:
    counted = _run("""
        import asyncio, gc, json
        from numrep.gc_tuning import YoungPasses

        passes = {0: 0, 1: 0, 2: 0}
        gc.callbacks.append(lambda phase, info: passes.__setitem__(info["generation"], passes[info["generation"]] + 1)
                            if phase == "stop" else None)

        async def main() -> dict:
            young = YoungPasses(every=0.005)
            deadline = asyncio.get_running_loop().time() + 30
            while passes[0] + passes[1] < 40 and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.05)  # about 100 due in 0.5 s; a loaded machine delays some
            young.stop()
            running = dict(passes)
            await asyncio.sleep(0.2)
            return {"running": running, "after": {g: passes[g] - running[g] for g in passes}}

        print(json.dumps(asyncio.run(main())))
    """)
    running, after = counted["running"], counted["after"]
    assert running["0"] + running["1"] >= 40
    assert running["1"] >= running["0"] // (gc.get_threshold()[1] + 2) - 1  # a middle pass as often as CPython runs one
    assert running["2"] == 0
    assert after == {"0": 0, "1": 0, "2": 0}


def test_while_young_passes_run_cpython_starts_no_full_pass_of_its_own_even_in_an_allocation_burst() -> None:
    counted = _run("""
        import asyncio, gc, json
        from numrep.gc_tuning import FULL_PASS_EVERY, YoungPasses, tune_for_serving

        tune_for_serving()
        full = []
        gc.callbacks.append(lambda phase, info: full.append(1) if phase == "stop" and info["generation"] == 2 else None)

        async def main() -> dict:
            young = YoungPasses(every=0.001)
            deadline = asyncio.get_running_loop().time() + 30
            while gc.get_count()[2] <= FULL_PASS_EVERY and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.05)  # middle passes by the clock, however slowly: past FULL_PASS_EVERY of them
            counted = gc.get_count()[2]
            kept = [[] for _ in range(200_000)]  # a burst: CPython's own passes start
            during = len(full)
            young.stop()
            restored = gc.get_threshold()[2]
            return {"middle_passes": counted, "full_during": during, "restored": restored, "expected": FULL_PASS_EVERY}

        print(json.dumps(asyncio.run(main())))
    """)
    assert counted["middle_passes"] > counted["expected"]
    assert counted["full_during"] == 0
    assert counted["restored"] == counted["expected"]


def test_young_passes_run_a_full_pass_every_full_every_seconds() -> None:
    counted = _run("""
        import asyncio, gc, json
        from numrep.gc_tuning import YoungPasses

        full = []
        gc.callbacks.append(lambda phase, info: full.append(1) if phase == "stop" and info["generation"] == 2 else None)

        async def main() -> dict:
            loop = asyncio.get_running_loop()
            started = loop.time()
            young = YoungPasses(every=0.005, full_every=0.1)
            while len(full) < 2 and loop.time() < started + 30:
                await asyncio.sleep(0.02)
            young.stop()
            return {"full": len(full), "elapsed": loop.time() - started}

        print(json.dumps(asyncio.run(main())))
    """)
    assert counted["full"] >= 2
    assert counted["full"] <= counted["elapsed"] / 0.1 + 1  # never more often than full_every


def test_garbage_cycles_made_after_tuning_are_still_reclaimed_without_a_full_pass() -> None:
    counted = _run("""
        import gc, json, weakref
        from numrep.gc_tuning import tune_for_serving

        tune_for_serving()
        passes = {0: 0, 1: 0, 2: 0}
        gc.callbacks.append(lambda phase, info: passes.__setitem__(info["generation"], passes[info["generation"]] + 1)
                            if phase == "stop" else None)
        class Node:
            pass
        gone = []
        for _ in range(1000):
            a, b = Node(), Node()
            a.other, b.other = b, a  # a cycle: reference counting alone never frees it
            weakref.finalize(a, gone.append, 1)
        middle_while_making = passes[1]
        del a, b
        kept = [[] for _ in range(50_000)]  # objects that stay: enough of them to trigger young passes
        print(json.dumps({"reclaimed": len(gone), "middle_while_making": middle_while_making,
                          "young": passes[0], "full": passes[2]}))
    """)
    assert counted["young"] > 0 and counted["full"] == 0
    # A middle pass moves the one pair still in use at that moment to the old generation, where it waits for
    # a full pass; every other cycle is garbage while young and goes at the next young pass.
    assert counted["reclaimed"] >= 1000 - counted["middle_while_making"]


def test_a_server_started_for_serving_is_tuned_before_its_first_call(tmp_path: Path) -> None:
    state = _run(f"""
        import asyncio, gc, json
        from pathlib import Path
        from numrep.config import ServerConfig
        from numrep.gc_tuning import FULL_PASS_EVERY
        import numrep.server as server

        seen = {{}}
        original = server.grpc.aio.server

        def watched(*args, **kwargs):  # the gRPC server, noting the collector's state when it starts listening
            made = original(*args, **kwargs)
            start = made.start
            async def noted_start():
                seen.update(frozen=gc.get_freeze_count(), full_pass_every=gc.get_threshold()[2])
                await start()
            made.start = noted_start
            return made

        server.grpc.aio.server = watched
        passes = []
        gc.callbacks.append(lambda phase, info: passes.append(info["generation"]) if phase == "stop" else None)
        async def main():
            running = await server.start_server(ServerConfig(data_dir=Path({str(tmp_path)!r}), listen="127.0.0.1:0"), tune_gc=True)
            before = len(passes)
            deadline = asyncio.get_running_loop().time() + 30
            while len(passes) - before < 10 and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.05)  # serving, idle
            seen["passes_while_idle"] = len(passes) - before
            await running.stop(0)
        asyncio.run(main())
        print(json.dumps({{**seen, "expected_every": FULL_PASS_EVERY}}))
    """)
    assert state["frozen"] > 10_000
    assert state["full_pass_every"] == state["expected_every"]
    assert state["passes_while_idle"] >= 10  # young passes at their pace (YOUNG_PASS_EVERY), not only after allocations
