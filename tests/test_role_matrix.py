"""Every cell of numrep.core.roles.PERMISSIONS, over real gRPC: an allowed
role is never refused with PERMISSION_DENIED (any other outcome is fine, e.g.
INVALID_ARGUMENT for an empty request); a denied role always is. And no
numrep.v1 RPC answers without a bearer token."""

from __future__ import annotations

import grpc
import pytest

from numrep.core.model import Role
from numrep.core.roles import PERMISSIONS, allowed
from numrep.signing.tokens import mint_token
from numrep.v1 import registry_pb2

from numrep_testkit import ALL_RPCS, bearer

CELLS = [pytest.param(rpc, role, id=f"{rpc}-{role.value}") for rpc in PERMISSIONS for role in Role]


def test_the_role_matrix_has_a_row_for_every_numrep_v1_rpc():
    assert set(PERMISSIONS) == set(ALL_RPCS)


def test_flags_are_for_apps_sync_is_not_for_carriers_and_only_the_regulator_registers():
    assert PERMISSIONS["FlagsService/SubmitFlags"] == {Role.APP_VENDOR}
    assert PERMISSIONS["SyncService/Sync"] == {Role.HANDSET_VENDOR, Role.APP_VENDOR, Role.REGULATOR}
    assert PERMISSIONS["RegistryService/RegisterParticipant"] == {Role.REGULATOR}


def test_carriers_and_the_regulator_register_consent_and_carriers_and_apps_record_refusals():
    assert PERMISSIONS["ConsentService/RegisterConsent"] == {Role.CARRIER, Role.REGULATOR}
    assert PERMISSIONS["ConsentService/RecordRefusal"] == {Role.CARRIER, Role.APP_VENDOR}
    assert PERMISSIONS["ConsentService/RevokeConsent"] == {Role.CARRIER, Role.APP_VENDOR, Role.REGULATOR}
    assert PERMISSIONS["ConsentService/GetConsentState"] == set(Role)


def test_anyone_files_and_asks_a_case_by_id_only_the_regulator_lists_and_resolves():
    for rpc in ("FileComplaint", "FileDispute", "GetCase", "ListDisputes", "WatchDisputes"):
        assert PERMISSIONS[f"CaseService/{rpc}"] == set(Role)
    assert PERMISSIONS["CaseService/ListCases"] == {Role.REGULATOR}
    assert PERMISSIONS["CaseService/ResolveCase"] == {Role.REGULATOR}


def minimal_request(rpc: str, caller_id: str):
    """An empty request, except that key management names the caller itself, so
    that the per-call ownership check cannot be what refuses it."""
    if rpc == "RegistryService/AddKey":
        return registry_pb2.AddKeyRequest(participant_id=caller_id)
    if rpc == "RegistryService/RevokeKey":
        return registry_pb2.RevokeKeyRequest(participant_id=caller_id, kid=f"{caller_id}#missing")
    return None


@pytest.mark.parametrize(("rpc", "role"), CELLS)
def test_role_matrix_cell_is_enforced(federation, raw, rpc, role):
    identity = federation.by_role(role)

    outcome = raw.call(rpc, minimal_request(rpc, identity.participant_id), bearer(mint_token(identity)))

    if allowed(rpc, role):
        assert outcome.code != grpc.StatusCode.PERMISSION_DENIED, outcome.details
        assert outcome.code != grpc.StatusCode.UNAUTHENTICATED, outcome.details
    else:
        assert outcome.code == grpc.StatusCode.PERMISSION_DENIED
        assert outcome.details == f"role {role.value} may not call {rpc}"


@pytest.mark.parametrize("rpc", sorted(ALL_RPCS))
def test_every_rpc_without_a_token_is_unauthenticated(federation, raw, rpc):
    outcome = raw.call(rpc)

    assert outcome.code == grpc.StatusCode.UNAUTHENTICATED
    assert "missing bearer token" in outcome.details


@pytest.mark.parametrize("rpc", sorted(ALL_RPCS))
def test_every_rpc_with_a_garbage_token_is_unauthenticated(federation, raw, rpc):
    outcome = raw.call(rpc, metadata=bearer("garbage"))

    assert outcome.code == grpc.StatusCode.UNAUTHENTICATED
    assert "(malformed)" in outcome.details


def test_the_readme_shows_the_role_matrix_as_numrep_roles_prints_it():
    from pathlib import Path

    from numrep.core.roles import matrix_markdown

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert matrix_markdown() in readme, "README's role matrix is stale: paste the output of `numrep roles`"
