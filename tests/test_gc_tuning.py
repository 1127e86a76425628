"""A serving process's garbage collector (numrep.gc_tuning): the start-up heap is
left out of every pass, full passes are rare under cache turnover, and garbage
cycles are still reclaimed. Each case runs in its own interpreter, so the test
process's own collector is untouched."""

from __future__ import annotations

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
        async def main():
            running = await server.start_server(ServerConfig(data_dir=Path({str(tmp_path)!r}), listen="127.0.0.1:0"), tune_gc=True)
            await running.stop(0)
        asyncio.run(main())
        print(json.dumps({{**seen, "expected_every": FULL_PASS_EVERY}}))
    """)
    assert state["frozen"] > 10_000
    assert state["full_pass_every"] == state["expected_every"]
