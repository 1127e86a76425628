"""The consent ledger's store contract. Every backend passes the same
conformance suite (``tests/store/test_consent_conformance.py``).

Narrow on purpose: the per-call read is "every record between this caller and
this callee" (``records_for``), one partition in Cassandra; writes claim a
record id once. Records carry the callee only as a keyed hash, so no backend
ever sees a raw callee number. Writes return only once durable; reads return
``None`` or an empty list for what does not exist.
"""

from __future__ import annotations

import enum
import json
from abc import ABC, abstractmethod
from datetime import datetime
from typing import Any, Sequence

from numrep.core.consent import ANY_CALLER, CallingHours, ConsentRecord, RecordKind
from numrep.store.codec import from_epoch_ms, to_epoch_ms


class RecordOutcome(enum.Enum):
    ADDED = "added"
    DUPLICATE = "duplicate"  # this very record (same id, same token) is stored already
    CONFLICT = "conflict"    # the id is stored for a different token: a replayed or reused id
    REVOKED = "revoked"      # the id was stored and revoked: it stays revoked


class ConsentStore(ABC):
    @abstractmethod
    def add_records(self, records: Sequence[ConsentRecord]) -> list[RecordOutcome]:
        """Store new records; one outcome per record, in order. A record whose id
        is stored already is left as it is. SQLite stores the batch in one
        transaction (all or nothing); Cassandra claims each id with a lightweight
        transaction and then writes its rows, so a failed batch may leave claimed
        ids that a retry completes (answered DUPLICATE) and that no read sees
        before their rows are written."""

    @abstractmethod
    def records_for(self, caller: str, callee_hash: str) -> list[ConsentRecord]:
        """Every record (consents and refusals, revoked and expired ones included
        while kept) between ``callee_hash`` and ``caller`` or every caller (``*``)."""

    @abstractmethod
    def get_record(self, record_id: str) -> ConsentRecord | None:
        """The stored record, revoked or not."""

    @abstractmethod
    def revoke_record(self, record_id: str, at: datetime) -> bool:
        """Mark a record revoked from ``at`` on; False when it does not exist or
        was revoked already (the first revocation time is kept)."""

    def close(self) -> None:
        """Release what this store opened itself (not a connection it shares)."""


def partition_callers(record: ConsentRecord) -> tuple[str, ...]:
    """The caller keys a record is filed under (its numbers, or ``*``)."""
    return record.callers if record.callers else (ANY_CALLER,)


def record_to_json(record: ConsentRecord) -> str:
    """The record without its revocation (kept in a column of its own, so
    revoking is an update, not a rewrite of the body)."""
    data: dict[str, Any] = {
        "id": record.id,
        "k": record.kind.value,
        "iss": record.issuer,
        "clr": list(record.callers),
        "ch": record.callee_hash,
        "iat": to_epoch_ms(record.issued_at),
        "exp": None if record.expires_at is None else to_epoch_ms(record.expires_at),
        "dg": record.token_digest,
    }
    optional = {"ent": record.enterprise, "scp": list(record.scope), "evh": record.evidence_hash,
                "hrs": record.hours.describe() if record.hours else "", "tz": record.time_zone}
    data.update({k: v for k, v in optional.items() if v})
    return json.dumps(data, separators=(",", ":"), sort_keys=True)


def record_from_json(body: str, revoked_at: datetime | None = None) -> ConsentRecord:
    data = json.loads(body)
    return ConsentRecord(
        id=data["id"],
        kind=RecordKind(data["k"]),
        issuer=data["iss"],
        callers=tuple(data["clr"]),
        callee_hash=data["ch"],
        issued_at=from_epoch_ms(data["iat"]),
        expires_at=None if data["exp"] is None else from_epoch_ms(data["exp"]),
        token_digest=data["dg"],
        enterprise=data.get("ent", ""),
        scope=tuple(data.get("scp", ())),
        evidence_hash=data.get("evh", ""),
        hours=CallingHours.parse(data["hrs"]) if data.get("hrs") else None,
        time_zone=data.get("tz", ""),
        revoked_at=revoked_at,
    )
