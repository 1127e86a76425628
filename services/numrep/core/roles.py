"""Which role may call which RPC. The README's role matrix is generated from
this table (``numrep roles``) and every cell is tested."""

from __future__ import annotations

from numrep.core.model import Role

ALL_ROLES = frozenset(Role)

PERMISSIONS: dict[str, frozenset[Role]] = {
    "LookupService/Lookup": ALL_ROLES,
    "LookupService/BatchLookup": ALL_ROLES,
    "LookupService/PrefixLookup": ALL_ROLES,
    "PublishService/Publish": ALL_ROLES,
    "PublishService/Retract": ALL_ROLES,
    "FlagsService/SubmitFlags": frozenset({Role.APP_VENDOR}),
    "SyncService/Sync": frozenset({Role.HANDSET_VENDOR, Role.APP_VENDOR, Role.REGULATOR}),
    "RegistryService/ListParticipants": ALL_ROLES,
    "RegistryService/GetParticipant": ALL_ROLES,
    "RegistryService/RegisterParticipant": frozenset({Role.REGULATOR}),
    # Any participant manages its own keys; the regulator anyone's (checked per call).
    "RegistryService/AddKey": ALL_ROLES,
    "RegistryService/RevokeKey": ALL_ROLES,
}


def allowed(rpc: str, role: Role) -> bool:
    return role in PERMISSIONS.get(rpc, frozenset())


def matrix_markdown() -> str:
    roles = list(Role)
    lines = ["| RPC | " + " | ".join(r.value for r in roles) + " |", "|---" * (len(roles) + 1) + "|"]
    for rpc, permitted in PERMISSIONS.items():
        cells = ["yes" if r in permitted else "no" for r in roles]
        if rpc.endswith(("AddKey", "RevokeKey")):
            cells = ["own keys" if r is not Role.REGULATOR else "any participant" for r in roles]
        lines.append(f"| {rpc} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
