"""Which role may call which RPC. The README's role matrix is generated from
this table (``numrep roles``) and every cell is tested."""

from __future__ import annotations

from numrep.core.model import Role

ALL_ROLES = frozenset(Role)

PERMISSIONS: dict[str, frozenset[Role]] = {
    "LookupService/Lookup": ALL_ROLES,
    "LookupService/BatchLookup": ALL_ROLES,
    "LookupService/PrefixLookup": ALL_ROLES,
    "LookupService/LookupStream": ALL_ROLES,
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
    # A call session: any participant, for itself (numrep.signing.sessions).
    "RegistryService/OpenSession": ALL_ROLES,
    # What the learned trust believes about each participant: the regulator's view only
    # (participants are competitors; each one's reliability is sensitive).
    "RegistryService/GetTrust": frozenset({Role.REGULATOR}),
    "RegistryService/RefitTrust": frozenset({Role.REGULATOR}),
    # Consent ledger: carriers register consent for their enterprise customers (and the
    # regulator); refusals come from carriers and apps; revocation is of one's own records
    # (the regulator: any; checked per call).
    "ConsentService/RegisterConsent": frozenset({Role.CARRIER, Role.REGULATOR}),
    "ConsentService/RecordRefusal": frozenset({Role.CARRIER, Role.APP_VENDOR}),
    "ConsentService/RevokeConsent": frozenset({Role.CARRIER, Role.APP_VENDOR, Role.REGULATOR}),
    "ConsentService/GetConsentState": ALL_ROLES,
    # Complaints and disputes: any participant files for its users and asks a case's
    # status by its id; only the regulator lists and resolves cases (and reads their
    # personal data); a publisher lists the disputes of its own labels.
    "CaseService/FileComplaint": ALL_ROLES,
    "CaseService/FileDispute": ALL_ROLES,
    "CaseService/GetCase": ALL_ROLES,
    "CaseService/ListCases": frozenset({Role.REGULATOR}),
    "CaseService/ResolveCase": frozenset({Role.REGULATOR}),
    "CaseService/ListDisputes": ALL_ROLES,
    "CaseService/WatchDisputes": ALL_ROLES,
}


# What a call token of a call session may call (numrep.signing.sessions): the calls
# that change nothing, and Publish, whose labels each carry the publisher's own
# signature. The rest (retractions, flags, consent and case writes, keys, the
# registry, opening a session) needs a token signed with the key, or the
# certificate: a stolen session key can read for a while, but can neither take
# over the participant nor undo its work.
SESSION_RPCS = frozenset({
    "LookupService/Lookup",
    "LookupService/BatchLookup",
    "LookupService/PrefixLookup",
    "LookupService/LookupStream",
    "PublishService/Publish",
    "SyncService/Sync",
    "RegistryService/ListParticipants",
    "RegistryService/GetParticipant",
    "RegistryService/GetTrust",
    "ConsentService/GetConsentState",
    "CaseService/GetCase",
    "CaseService/ListCases",
    "CaseService/ListDisputes",
    "CaseService/WatchDisputes",
})


def allowed(rpc: str, role: Role) -> bool:
    return role in PERMISSIONS.get(rpc, frozenset())


def allowed_in_session(rpc: str) -> bool:
    return rpc in SESSION_RPCS


def matrix_markdown() -> str:
    roles = list(Role)
    lines = ["| RPC | " + " | ".join(r.value for r in roles) + " |", "|---" * (len(roles) + 1) + "|"]
    for rpc, permitted in PERMISSIONS.items():
        cells = ["yes" if r in permitted else "no" for r in roles]
        if rpc.endswith(("AddKey", "RevokeKey")):
            cells = ["own keys" if r is not Role.REGULATOR else "any participant" for r in roles]
        lines.append(f"| {rpc} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
