"""``numrep consent register|refuse|revoke|state`` and ``numrep lookup --callee``
against a real exchange: the ledger end to end from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from consent_testkit import CALLEE, CALLER, NEW_YORK, WEDNESDAY, at_local, late_evening
from numrep.cli.main import main


@pytest.fixture
def cli(ledger, server, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    paths = {}
    for identity in ledger.federation.members:
        paths[identity.role.value] = tmp_path / f"{identity.participant_id}.json"
        identity.save(paths[identity.role.value])

    def run(*args: str, role: str = "carrier") -> tuple[int, str, str]:
        code = main([*args, "--server", server.address, "--identity", str(paths[role])])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_consent_register_state_revoke_from_the_command_line(cli, tmp_path: Path):
    proof = tmp_path / "opt-in.txt"
    proof.write_text("caller recorded opt-in 2026-11-01")
    eleven = at_local(NEW_YORK, WEDNESDAY, 11).isoformat()

    code, out, _ = cli("consent", "register", CALLER, CALLEE, "--scope", "marketing.loans", "--evidence-file", str(proof),
                       "--hours", "mon-fri 09:00-17:00", "--json")
    assert code == 0
    [result] = json.loads(out)
    assert result["status"] == "ITEM_STATUS_ACCEPTED"

    code, out, _ = cli("consent", "state", CALLER, CALLEE, "--at", eleven, "--category", "marketing.loans", "--json", role="handset_vendor")
    assert code == 0
    state = json.loads(out)
    assert state["state"] == "CONSENT_STATE_CONSENTED" and state["within_allowed_hours"] is True
    assert state["record_id"] == result["id"]

    code, out, _ = cli("consent", "revoke", result["id"])
    assert code == 0 and "accepted" in out

    code, out, _ = cli("consent", "state", CALLER, CALLEE, "--at", eleven, role="handset_vendor")
    assert code == 0 and "Consent: none (the consent was revoked)" in out


def test_consent_refuse_then_lookup_with_the_callee_says_block_and_why(cli):
    code, out, _ = cli("consent", "refuse", CALLEE, "--caller", CALLER, role="app_vendor")
    assert code == 0 and "accepted" in out

    code, out, _ = cli("lookup", CALLER, "--callee", CALLEE, "--category", "marketing.loans")

    assert code == 0
    assert f"{CALLER}  BLOCK" in out
    assert "Consent: refused" in out and "a marketing call to a callee who refused is blocked" in out


def test_lookup_outside_calling_hours_from_the_command_line(cli):
    code, out, _ = cli("lookup", CALLER, "--callee", CALLEE, "--at", late_evening().isoformat(), "--category", "marketing", "--json")

    assert code == 0
    [verdict] = json.loads(out)["verdicts"]
    assert verdict["action"] == "ACTION_BLOCK"
    assert verdict["consent"]["block_reason"] == "outside_calling_hours"


def test_a_role_that_may_not_register_consent_gets_one_line(cli):
    code, _, err = cli("consent", "register", CALLER, CALLEE, "--scope", "marketing", "--evidence-hash", "sha256:" + "0" * 64,
                       role="app_vendor")

    assert code == 1
    assert err.strip() == "numrep: permission_denied: role app_vendor may not call ConsentService/RegisterConsent"


def test_a_time_without_an_offset_is_one_line(cli):
    code, _, err = cli("consent", "state", CALLER, CALLEE, "--at", "2026-12-02T10:00:00")

    assert code == 1 and err.count("\n") == 1 and "needs a UTC offset" in err
