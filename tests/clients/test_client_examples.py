"""The examples in examples/ run against a real exchange and exit 0."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from numrep_client import HandsetLabelStore
from sdk_testkit import SPAM_NUMBER, save_identity

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def run_example(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True, text=True, timeout=120, cwd=EXAMPLES.parent,
    )


@pytest.fixture
def identities(federation, tmp_path) -> dict[str, Path]:
    directory = tmp_path / "identities"
    return {role: save_identity(identity, directory)
            for role, identity in (("carrier", federation.carrier), ("handset", federation.handset), ("app", federation.app))}


def test_carrier_check_example(server, federation, identities, publish):
    publish(federation.regulator, SPAM_NUMBER, "fraud.impersonation", 1.0)
    result = run_example("carrier_check.py", "--server", server.address, "--identity", str(identities["carrier"]),
                         "--deadline-ms", "2000", "(202) 555-0143", "+12025550100", "garbage")
    assert result.returncode == 0, result.stderr
    assert re.search(r"\+12025550143 +block", result.stdout)
    assert "source=cache" in result.stdout
    assert "reason=invalid_number" in result.stdout
    assert "fail_open" not in result.stdout


def test_handset_sync_example(server, federation, identities, publish, tmp_path):
    publish(federation.regulator, SPAM_NUMBER, "fraud.impersonation", 1.0)
    store = tmp_path / "handset.sqlite3"
    args = ["--server", server.address, "--identity", str(identities["handset"]), "--store", str(store)]
    first = run_example("handset_sync.py", *args)
    assert first.returncode == 0, first.stderr
    assert "from a full snapshot" in first.stdout and "1 labels verified" in first.stdout
    assert SPAM_NUMBER in HandsetLabelStore(store).numbers
    again = run_example("handset_sync.py", *args)
    assert again.returncode == 0, again.stderr
    assert "deltas only" in again.stdout


def test_app_flags_example(server, federation, identities, tmp_path, connect):
    result = run_example("app_flags.py", "--server", server.address, "--identity", str(identities["app"]),
                         "--key-file", str(tmp_path / "app.key"), "--spool", str(tmp_path / "spool.sqlite3"))
    assert result.returncode == 0, result.stderr
    assert "4 accepted" in result.stdout and "1 de-duplicated" in result.stdout
    assert "flag_count 0 -> 4" in result.stdout
    assert "user-1001" not in connect(federation.carrier).lookup(SPAM_NUMBER).explanation


def test_examples_fail_cleanly_when_the_exchange_is_down(identities, dead_target, tmp_path):
    carrier = run_example("carrier_check.py", "--server", dead_target, "--identity", str(identities["carrier"]), SPAM_NUMBER)
    assert carrier.returncode == 0, carrier.stderr  # a carrier fails open
    assert "not reachable" in carrier.stdout and "reason=unavailable" in carrier.stdout
    handset = run_example("handset_sync.py", "--server", dead_target, "--identity", str(identities["handset"]),
                          "--store", str(tmp_path / "h.sqlite3"))
    assert handset.returncode == 1 and "UNAVAILABLE" in handset.stderr
