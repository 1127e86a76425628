"""The command line: clear help, one-line errors, and the participant workflow
against a real server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from numrep.cli.main import build_parser, main

NUMREP = [sys.executable, "-m", "numrep.cli.main"]


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*NUMREP, *args], capture_output=True, text=True, timeout=120, env={**os.environ, **(env or {})})


def test_every_subcommand_has_help() -> None:
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert {"serve", "demo", "keys", "participants", "publish", "retract", "lookup", "flag", "sync", "roles", "migrate"} <= set(commands)
    for name in commands:
        result = run_cli(name, "--help")
        assert result.returncode == 0, result.stderr
        assert "usage: numrep " + name in result.stdout


def test_errors_are_one_line_without_traceback(tmp_path: Path) -> None:
    result = run_cli("lookup", "+12025550143", "--identity", str(tmp_path / "missing.json"))
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0
    assert "Traceback" not in result.stderr
    assert "identity file" in result.stderr and "not found" in result.stderr


def test_unreachable_server_is_one_clear_line(tmp_path: Path) -> None:
    identity = tmp_path / "c.json"
    assert main(["keys", "carrier-x", "--role", "carrier", "--out", str(identity)]) == 0
    result = run_cli("lookup", "+12025550143", "--identity", str(identity), "--server", "127.0.0.1:1")
    assert result.returncode == 1
    assert "unavailable" in result.stderr and "Traceback" not in result.stderr


def test_serving_from_a_data_directory_that_is_a_file_is_one_clear_line(tmp_path: Path) -> None:
    (tmp_path / "exchange").write_text("not a directory")
    result = run_cli("serve", "--listen", "127.0.0.1:0", "--data-dir", str(tmp_path / "exchange"))
    assert result.returncode == 1
    assert result.stderr.strip() == f"numrep: error: the data directory {tmp_path / 'exchange'} is a file, not a directory"


def test_keys_refuses_to_overwrite_a_private_key(tmp_path: Path) -> None:
    identity = tmp_path / "c.json"
    assert main(["keys", "carrier-x", "--role", "carrier", "--out", str(identity)]) == 0
    assert oct(identity.stat().st_mode & 0o777) == "0o600"
    assert main(["keys", "carrier-x", "--role", "carrier", "--out", str(identity)]) == 1


def test_roles_prints_the_matrix(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["roles"]) == 0
    out = capsys.readouterr().out
    assert "| FlagsService/SubmitFlags | no | no | yes | no |" in out


def test_participant_workflow_over_a_real_server(tmp_path: Path) -> None:
    """An operator registers a regulator locally, starts the exchange, and the
    regulator admits a carrier that then publishes, looks up and retracts."""
    data = tmp_path / "data"
    reg, reg_pub = tmp_path / "reg.json", tmp_path / "reg.jwk"
    car, car_pub = tmp_path / "car.json", tmp_path / "car.jwk"
    assert main(["keys", "reg", "--role", "regulator", "--out", str(reg), "--public-out", str(reg_pub)]) == 0
    assert main(["keys", "car", "--role", "carrier", "--alg", "ES256", "--out", str(car), "--public-out", str(car_pub)]) == 0
    assert main(["participants", "add", "reg", "--role", "regulator", "--jwk", str(reg_pub), "--data-dir", str(data)]) == 0

    with subprocess.Popen([*NUMREP, "serve", "--listen", "127.0.0.1:0", "--data-dir", str(data)],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as server:
        _exercise(server, reg, car, car_pub)
    assert server.returncode == 0, "SIGTERM must shut the server down cleanly"


def _exercise(server: subprocess.Popen[str], reg: Path, car: Path, car_pub: Path) -> None:
    try:
        address = _wait_for_address(server)
        client = ["--server", address]
        added = run_cli("participants", "add", "car", "--role", "carrier", "--jwk", str(car_pub), *client, "--identity", str(reg), "--json")
        assert added.returncode == 0, added.stderr
        assert json.loads(added.stdout)[0]["role"] == "ROLE_CARRIER"

        published = run_cli("publish", "(202) 555-0143", "fraud.impersonation", *client, "--identity", str(car), "--json")
        assert published.returncode == 0, published.stderr
        label_id = json.loads(published.stdout)[0]["id"]

        looked = run_cli("lookup", "+12025550143", *client, "--identity", str(car))
        assert looked.returncode == 0, looked.stderr
        assert "+12025550143" in looked.stdout and "car (carrier) labelled it" in looked.stdout

        bad = run_cli("lookup", "12345", *client, "--identity", str(car))
        assert bad.returncode == 1 and "invalid phone number '12345'" in bad.stderr

        denied = run_cli("flag", "+12025550143", "fraud", "--reporter", "u1", *client, "--identity", str(car))
        assert denied.returncode == 1 and "permission_denied" in denied.stderr

        retracted = run_cli("retract", label_id, *client, "--identity", str(car))
        assert retracted.returncode == 0 and "accepted" in retracted.stdout
    finally:
        server.terminate()
        server.wait(timeout=30)


def _wait_for_address(server: subprocess.Popen[str]) -> str:
    assert server.stdout is not None
    line = server.stdout.readline()
    assert "serving" in line, line + (server.stderr.read() if server.poll() is not None and server.stderr else "")
    # "numrep: serving ... on 127.0.0.1:0" names the requested port; the bound one is logged next.
    return line.split(" on ")[1].split(" ")[0]


def test_replay_scores_a_labelled_history_without_a_server(tmp_path: Path) -> None:
    history = tmp_path / "history.csv"
    history.write_text(
        "number,participant,label,time,truth\n"
        "+12025550143,carrier-a,fraud,2026-11-01T00:00:00Z,spam\n"
        "+12025550143,app-b,fraud,2026-11-02T00:00:00Z,spam\n"
        "+12025550100,carrier-a,legitimate,2026-11-01T00:00:00Z,ham\n"
    )
    result = run_cli("replay", str(history), "--role", "carrier-a=carrier", "--method", "all")
    assert result.returncode == 0, result.stderr
    assert "comparison" in result.stdout and "false-block" in result.stdout
    assert "+12025550143" in result.stdout and "truth=spam" in result.stdout


def test_replay_of_a_missing_file_is_one_clear_line(tmp_path: Path) -> None:
    result = run_cli("replay", str(tmp_path / "missing.csv"))
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0 and "No such file" in result.stderr
