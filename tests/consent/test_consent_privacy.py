"""Callee numbers are stored only as keyed hashes: after consent, a refusal, a
revocation and lookups, no form of the raw callee number is anywhere in the
store (every byte of the SQLite files; every row of every Cassandra table)."""

from __future__ import annotations

from pathlib import Path

from consent_testkit import ACCEPTED, CALLEE, CALLER, PROOF, WEST_CALLEE
from numrep.core.pseudonym import Pseudonymizer
from numrep.signing.consent import sign_consent, sign_refusal


def callee_forms(e164: str) -> list[bytes]:
    national = e164.removeprefix("+1")
    return [e164.encode(), national.encode(), f"({national[:3]}) {national[3:6]}-{national[6:]}".encode(),
            e164.encode("utf-16-le")]


def sqlite_bytes(store) -> bytes:
    path: Path = store.path
    return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))


def cassandra_text(store) -> str:
    session, keyspace = store._session, store.keyspace
    tables = [r.table_name for r in session.execute(
        "SELECT table_name FROM system_schema.tables WHERE keyspace_name = %s", (keyspace,))]
    return "\n".join(repr(tuple(row)) for table in tables for row in session.execute(f"SELECT * FROM {keyspace}.{table}"))


def test_the_callee_is_stored_only_as_a_keyed_hash(ledger, server):
    carrier, app = ledger.federation.carrier, ledger.federation.app
    [consented] = ledger.register(sign_consent(carrier, CALLER, CALLEE, ["marketing"], PROOF, hours="mon-fri 09:00-20:00"))
    [refused] = ledger.refuse(sign_refusal(app, WEST_CALLEE, "*"))
    assert (consented.status, refused.status) == (ACCEPTED, ACCEPTED)
    ledger.client(carrier).revoke_consent([consented.id])
    ledger.lookup(callee=CALLEE)
    ledger.lookup(callee=WEST_CALLEE)

    inner = getattr(server.store, "inner", server.store)
    if hasattr(inner, "_session"):
        stored = cassandra_text(inner).encode()
    else:
        stored = sqlite_bytes(inner)

    for callee in (CALLEE, WEST_CALLEE):
        for form in callee_forms(callee):
            assert form not in stored, f"{form!r} found in the store"
    hashed = server.exchange.consent.callee_hash(CALLEE)
    assert hashed.encode() in stored  # what is stored instead
    assert CALLER.encode() in stored  # callers are not personal data of the callee: stored as numbers


def test_the_callee_hash_is_keyed_by_the_exchanges_secret(server):
    ledger = server.exchange.consent

    mine = ledger.callee_hash(CALLEE)
    elsewhere = Pseudonymizer(b"another deployment's secret").__call__("callee", CALLEE)

    assert mine != elsewhere
    assert len(mine) == 32 and CALLEE.removeprefix("+") not in mine
