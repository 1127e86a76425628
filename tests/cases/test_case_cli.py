"""``numrep case ...`` against a real exchange: the complaint and the dispute
workflows as a participant and the regulator type them, with --json and one-line
errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from numrep.cli.main import main
from numrep_client import HandsetLabelStore

from numrep_testkit import NUMBER


@pytest.fixture
def cli(server, federation, tmp_path: Path, capsys):
    """``cli(role, *args)``: run ``numrep`` as that federation member; returns
    (exit code, stdout, stderr)."""
    files = {}
    for role in ("regulator", "carrier", "handset", "app"):
        files[role] = tmp_path / f"{role}-identity.json"
        getattr(federation, role).save(files[role])

    def run(role: str, *args: str) -> tuple[int, str, str]:
        code = main([*args, "--server", server.address, "--identity", str(files[role])])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_a_complaint_from_filing_to_the_outcome(cli):
    code, out, _ = cli("app", "case", "complain", "(202) 555-0143", "fraud.impersonation", "--text", "Said he was the IRS.",
                       "--occurred", "2026-11-28T19:30:00+00:00", "--reporter", "user-5", "--json")
    assert code == 0
    filed = json.loads(out)
    assert (filed["number"], filed["status"], filed["kind"]) == (NUMBER, "CASE_STATUS_OPEN", "CASE_KIND_COMPLAINT")

    code, out, _ = cli("regulator", "case", "list", "--status", "open")
    assert code == 0 and filed["case_id"] in out and "text: Said he was the IRS." in out and "filed via: blocker-app" in out

    code, out, _ = cli("regulator", "case", "resolve", filed["case_id"], "confirmed", "--message", "Confirmed, thank you.")
    assert code == 0 and "CONFIRMED" in out

    code, out, _ = cli("app", "case", "show", filed["case_id"])
    assert code == 0
    assert f"{filed['case_id']}  complaint  CONFIRMED  {NUMBER}  fraud.impersonation" in out
    assert "Confirmed, thank you." in out and "Said he was the IRS." not in out


def test_refusals_are_one_line_errors(cli):
    code, out, _ = cli("app", "case", "complain", NUMBER, "fraud", "--text", "x", "--json")
    case_id = json.loads(out)["case_id"]
    cli("regulator", "case", "resolve", case_id, "rejected", "--message", "No.")

    for role, args, words in [
        ("carrier", ("case", "list"), "permission_denied: role carrier may not call CaseService/ListCases"),
        ("regulator", ("case", "resolve", case_id, "confirmed", "--message", "Yes."), "failed_precondition:"),
        ("app", ("case", "show", "no-such-case"), "not_found: no case has this id"),
        ("app", ("case", "complain", NUMBER, "legitimate", "--text", "x"), "invalid_argument:"),
        ("app", ("case", "complain", NUMBER, "fraud", "--text", "x", "--occurred", "yesterday"), "not an ISO 8601 time"),
    ]:
        code, out, err = cli(role, *args)
        assert code == 1, args
        assert words in err and err.strip().count("\n") == 0 and "Traceback" not in err


def test_a_dispute_from_filing_to_the_tombstone_on_a_synced_handset(cli, tmp_path: Path):
    handset_file = tmp_path / "phone-label-store.sqlite3"
    assert cli("carrier", "publish", NUMBER, "fraud.impersonation", "--confidence", "1.0")[0] == 0
    assert cli("regulator", "publish", NUMBER, "fraud.impersonation", "--confidence", "1.0")[0] == 0
    code, out, _ = cli("handset", "sync", "--out", str(handset_file), "--json")
    assert code == 0 and json.loads(out)["numbers_held"] == 1

    code, out, _ = cli("app", "case", "dispute", NUMBER, "--contact", "clinic@example.org", "--evidence", "We are a clinic.", "--json")
    dispute = json.loads(out)
    assert len(dispute["label_ids"]) == 2
    code, out, _ = cli("carrier", "case", "disputes")
    assert code == 0 and dispute["case_id"] in out and "clinic@example.org" not in out

    code, out, _ = cli("regulator", "case", "resolve", dispute["case_id"], "upheld", "--message", "Labels withdrawn.")
    assert code == 0 and "UPHELD" in out
    code, out, err = cli("handset", "sync", "--out", str(handset_file), "--json")

    assert code == 0, err
    synced = json.loads(out)
    assert (synced["started_from"], synced["tombstones"], synced["numbers_held"]) == ("cursor", 1, 0)
    assert NUMBER not in HandsetLabelStore(handset_file).numbers
