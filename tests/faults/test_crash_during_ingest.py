"""SIGKILL the exchange while participants publish: after a restart on the same
store every acknowledged label is there, none twice, and verdicts agree with the
evidence. Runs on the embedded store and, when a node is available, on Cassandra."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from numrep.config import ServerConfig
from numrep.core.model import Role
from numrep.server import build_exchange
from numrep.signing.keys import generate_identity
from numrep.signing.labels import sign_label
from numrep_client import ExchangeClient, ExchangeError

SERVE = [sys.executable, "-m", "numrep.cli.main", "serve", "--listen", "127.0.0.1:0"]


def _cassandra_url() -> str | None:
    raw = os.environ.get("NUMREP_TEST_CASSANDRA", "")
    if raw in ("", "off"):
        return None
    return f"cassandra://{raw}/numrep_crash_{uuid.uuid4().hex[:10]}?lag=0"


STORES = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("cassandra", id="cassandra", marks=pytest.mark.cassandra),
]


def _start(data: Path, store: str, attempts: int = 1) -> tuple[subprocess.Popen[str], str]:
    """``numrep serve`` on ``data`` and ``store``, and its address once it says it is serving.
    A server that exits first is started again, as a supervisor would, up to ``attempts``
    times in all; then the test fails with the end of what it wrote to stderr."""
    for attempt in range(1, attempts + 1):
        errors = data.parent / f"serve-{time.monotonic_ns()}.stderr"
        with errors.open("w") as sink:
            process = subprocess.Popen([*SERVE, "--data-dir", str(data), "--store", store],
                                       stdout=subprocess.PIPE, stderr=sink, text=True)
        assert process.stdout is not None
        line = process.stdout.readline()
        if "serving" in line:
            return process, line.split(" on ")[1].split(" ")[0]
        process.kill()
        process.wait(timeout=10)
        process.stdout.close()
        report = f"numrep serve did not start (attempt {attempt}, exit {process.returncode}): {errors.read_text()[-3000:]}"
        if attempt == attempts:
            pytest.fail(report)
        print(report)  # shown with the test's output: what the first start met
        time.sleep(5)
    raise AssertionError("unreachable")


@pytest.mark.parametrize("backend", STORES)
def test_every_acknowledged_label_survives_a_sigkill_during_ingest(tmp_path: Path, backend: str) -> None:
    store = "sqlite"
    if backend == "cassandra":
        store = _cassandra_url() or pytest.skip("NUMREP_TEST_CASSANDRA is not set")
    data = tmp_path / "data"
    carrier = generate_identity("carrier-crash", Role.CARRIER)
    regulator = generate_identity("regulator", Role.REGULATOR)
    data.mkdir()
    (data / "pseudonym.key").write_text("ab" * 32)

    # The first start may meet a cluster still settling after the node-fault tests (a
    # node just restarted or resumed); the restart after the SIGKILL below gets one try.
    process, address = _start(data, store, attempts=3)
    # the operator registers the participants on the store before traffic starts
    local = build_exchange(ServerConfig(data_dir=data, store=store))
    for identity in (regulator, carrier):
        local.register_participant(identity.participant_id, identity.role, "", [json.dumps(identity.public_jwk())])
    local.store.close()

    acknowledged: list[str] = []
    stop = threading.Event()

    def publish() -> None:
        with ExchangeClient(address, carrier, timeout=5) as client:
            n = 0
            while not stop.is_set():
                batch = [sign_label(carrier, f"+1212555{(n + i) % 9000 + 1000:04d}", "fraud", 0.9) for i in range(20)]
                n += 20
                try:
                    results = client.publish(batch)
                except ExchangeError:
                    return  # the server died mid-call: nothing in this batch was acknowledged
                acknowledged.extend(r.id for r in results if r.status == 1)

    worker = threading.Thread(target=publish)
    worker.start()
    deadline = time.monotonic() + 30
    while len(acknowledged) < 200 and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait(10)
    process.stdout.close()  # type: ignore[union-attr]
    stop.set()
    worker.join(30)
    assert len(acknowledged) >= 200, "the publisher made too little progress before the kill"

    restarted, address = _start(data, store)
    try:
        local = build_exchange(ServerConfig(data_dir=data, store=store))
        try:
            missing = [lid for lid in acknowledged if local.store.get_label(lid) is None]
            assert missing == [], f"{len(missing)} of {len(acknowledged)} acknowledged labels lost"
            numbers = {local.store.get_label(lid).number for lid in acknowledged}  # type: ignore[union-attr]
            for number in sorted(numbers)[:50]:
                evidence = local.store.evidence(number)
                ids = [lb.id for lb in evidence.labels]
                assert len(ids) == len(set(ids)), "a label is stored twice"
                verdict = local.store.get_verdict(number)
                assert verdict is not None and verdict.label_count == len(ids)
        finally:
            local.store.close()
    finally:
        restarted.send_signal(signal.SIGTERM)
        restarted.wait(30)
        restarted.stdout.close()  # type: ignore[union-attr]
