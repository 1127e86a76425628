"""Helpers of the fault tests: dedicated Cassandra nodes that a test may kill
and restart, a numrep exchange in its own process, and latency summaries.

The dedicated nodes run beside the shared node at 127.0.0.1:9042 (which other
tests use and which must never be stopped): each set has its own home, its own
loopback network (node N on ``NET.N``) and its own JMX ports, all driven through
``infra/cassandra/cassandra.sh``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "infra" / "cassandra" / "cassandra.sh"
CACHE = Path.home() / ".cache" / "numrep"
# Seconds a node may take to open CQL: a restart under load on a shared 2-core machine
# took over 180 s (cassandra.sh's default), with the load average above 20.
NODE_TIMEOUT = os.environ.get("NUMREP_CASSANDRA_TIMEOUT", "400")
START_TIMEOUT = 1300.0  # seconds for `start` of a whole set, node after node


@dataclass(frozen=True)
class CassandraNodes:
    """One independent set of test nodes (``nodes`` = 1 or 3)."""

    home: Path
    net: str
    jmx_base: int
    nodes: int

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "NUMREP_CASSANDRA_HOME": str(self.home), "NUMREP_CASSANDRA_NET": self.net,
                "NUMREP_CASSANDRA_JMX_BASE": str(self.jmx_base), "NUMREP_CASSANDRA_TIMEOUT": NODE_TIMEOUT}

    def address(self, node: int) -> str:
        return f"{self.net}.{node}"

    def store_url(self, keyspace: str, **options: str) -> str:
        hosts = ",".join(self.address(n) for n in range(1, self.nodes + 1))
        query = "&".join(f"{k}={v}" for k, v in {"lag": "0", **options}.items())
        return f"cassandra://{hosts}:9042/{keyspace}?{query}"

    def run(self, *args: str, timeout: float = START_TIMEOUT, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(["bash", str(SCRIPT), *args], env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise RuntimeError(f"cassandra.sh {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr[-3000:]}")
        return result

    def running(self) -> int:
        """How many of this set's nodes run and answer CQL."""
        result = self.run("status", check=False, timeout=60)
        return result.stdout.count("answers CQL")

    def start(self) -> None:
        self.run("start", "--nodes", str(self.nodes))

    def stop(self) -> None:
        self.run("stop", timeout=300, check=False)

    def kill(self, node: int) -> None:
        self.run("kill", str(node), timeout=60)

    def pause(self, node: int) -> None:
        """SIGSTOP: the node hangs with its connections open, as a node stuck in a long GC
        pause or on a dead disk does; unlike a killed node, nobody is told it is gone."""
        self.run("pause", str(node), timeout=60)

    def resume(self, node: int) -> None:
        self.run("resume", str(node), timeout=60)

    def start_node(self, node: int) -> None:
        self.run("start-node", str(node))

    def wait_all_up(self, timeout: float = 180.0) -> float:
        """Wait until ``nodetool status`` on node 1 shows every node UN; the seconds waited."""
        started = time.monotonic()
        while True:
            result = self.run("nodetool", "status", check=False, timeout=120)
            if result.returncode == 0 and result.stdout.count("\nUN ") >= self.nodes:
                return time.monotonic() - started
            if time.monotonic() - started > timeout:
                raise TimeoutError(f"not every node is UN after {timeout:.0f} s:\n{result.stdout}{result.stderr[-2000:]}")
            time.sleep(1.0)


# The 3-node cluster of `make test-faults` and the single node of the store-outage
# test: two sets, so that one test's outage never touches the other's nodes.
CLUSTER = CassandraNodes(Path(os.environ.get("NUMREP_FAULTS_CLUSTER_HOME", CACHE / "cassandra-faults")),
                         os.environ.get("NUMREP_FAULTS_CLUSTER_NET", "127.0.1"), 7300, 3)
SINGLE = CassandraNodes(Path(os.environ.get("NUMREP_FAULTS_SINGLE_HOME", CACHE / "cassandra-faults-single")),
                        os.environ.get("NUMREP_FAULTS_SINGLE_NET", "127.0.2"), 7400, 1)


class ExchangeProcess:
    """``numrep serve`` in its own process (its own GIL: the load generators of a
    test do not slow it down), on an ephemeral port."""

    def __init__(self, data_dir: Path, store: str) -> None:
        command = [sys.executable, "-m", "numrep.cli.main", "serve", "--listen", "127.0.0.1:0",
                   "--data-dir", str(data_dir), "--store", store]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if "serving" not in line:
            self.process.kill()
            raise RuntimeError(f"the exchange did not start: {line!r}")
        self.address = line.split(" on ")[1].split(" ")[0].strip()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        if self.process.stdout is not None:
            self.process.stdout.close()


def drop_keyspace(session: Any, keyspace: str, attempts: int = 4) -> None:
    """Drop a test keyspace from a node that was just killed and restarted.

    Right after such a restart Cassandra sometimes refuses the drop with a server
    error ("Unknown CF <table id>") while it still opens the keyspace's tables; a
    later attempt succeeds. The nodes are the fault tests' own, so a keyspace left
    behind costs disk only: it is reported as a warning, not as the test's failure.
    """
    for attempt in range(1, attempts + 1):
        try:
            session.execute(f"DROP KEYSPACE IF EXISTS {keyspace}", timeout=120)
            return
        except Exception as refused:  # noqa: BLE001 - any driver error: try again, then report
            if attempt == attempts:
                warnings.warn(f"test keyspace {keyspace} left on the fault nodes: {refused}", stacklevel=2)
                return
            time.sleep(2.0 * attempt)


def percentile(samples: list[float], pct: float) -> float | None:
    """Nearest-rank percentile of ``samples`` (None when empty)."""
    if not samples:
        return None
    ordered = sorted(samples)
    rank = max(0, min(len(ordered) - 1, int(round(pct / 100.0 * len(ordered) + 0.5)) - 1))
    return ordered[rank]
