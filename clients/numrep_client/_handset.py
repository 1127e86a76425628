"""What a handset vendor keeps: the synced label set in a local file, applied
chunk by chunk, every label verified offline against its publisher's key."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

import jwt

from numrep.api.convert import ACTION_FROM_PB, ROLE_FROM_PB
from numrep.core.model import Label, Participant, PublicKeyRecord
from numrep.signing.jws import JwsRejected, time_claim
from numrep.signing.labels import verify_label
from numrep.v1 import registry_pb2, sync_pb2

if TYPE_CHECKING:
    from numrep_client._client import ExchangeClient


@dataclass
class SyncReport:
    chunks: int = 0
    upserts: int = 0
    tombstones: int = 0
    labels_verified: int = 0
    labels_dropped: list[tuple[str, str]] = field(default_factory=list)  # (number, reason)
    # (number, label id, kid): kept, but signed with a key its owner revoked after the label was issued
    labels_with_revoked_key: list[tuple[str, str, str]] = field(default_factory=list)


class KeyDirectory:
    """Publishers' public keys as fetched from the registry, for offline checks."""

    def __init__(self, participants: Iterable[registry_pb2.Participant]) -> None:
        self._by_id = {
            p.id: Participant(
                p.id,
                ROLE_FROM_PB[p.role],
                p.display_name,
                tuple(
                    PublicKeyRecord(
                        k.kid,
                        k.jwk,
                        k.added_at.ToDatetime(tzinfo=timezone.utc),
                        k.revoked_at.ToDatetime(tzinfo=timezone.utc) if k.HasField("revoked_at") else None,
                    )
                    for k in p.keys
                ),
            )
            for p in participants
        }

    def __call__(self, participant_id: str) -> Participant | None:
        return self._by_id.get(participant_id)


class HandsetLabelStore:
    """A JSON file holding ``{cursor, numbers: {e164: {action, category, p, labels}}}``.
    It is rewritten atomically after each chunk, so an interrupted sync resumes
    from the last applied cursor with no gap and no duplicate."""

    def __init__(self, path: Path) -> None:
        self.path = path
        if path.exists():
            data = json.loads(path.read_text())
            self.cursor: str = data.get("cursor", "")
            self.numbers: dict[str, dict] = data.get("numbers", {})
        else:
            self.cursor, self.numbers = "", {}

    def apply(self, chunk: sync_pb2.SyncChunk, keys: KeyDirectory, report: SyncReport, now: datetime | None = None) -> None:
        when = now or datetime.now(timezone.utc)
        for entry in chunk.entries:
            if entry.tombstone:
                self.numbers.pop(entry.number, None)
                report.tombstones += 1
                continue
            tokens = []
            for token in entry.labels:
                try:
                    label = verify_label(token, keys, when)
                except JwsRejected as exc:
                    label = _issued_before_revocation(token, keys, when) if exc.reason == "revoked_key" else None
                    if label is None:
                        report.labels_dropped.append((entry.number, exc.reason))
                        continue
                    report.labels_with_revoked_key.append((entry.number, label.id, jwt.get_unverified_header(token)["kid"]))
                if label.number != entry.number:
                    report.labels_dropped.append((entry.number, "number_mismatch"))
                    continue
                tokens.append(token)
                report.labels_verified += 1
            self.numbers[entry.number] = {
                "action": ACTION_FROM_PB[entry.action].value,
                "category": entry.category,
                "spam_probability": entry.spam_probability,
                "version": entry.version,
                "labels": tokens,
            }
            report.upserts += 1
        self.cursor = chunk.cursor
        report.chunks += 1
        self.save()

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(self.path.suffix + ".tmp")
        with open(tmp, "w") as out:
            json.dump({"cursor": self.cursor, "numbers": self.numbers}, out, separators=(",", ":"), sort_keys=True)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, self.path)

    def block_list(self) -> list[tuple[str, str, str]]:
        """(number, action, category), sorted by number: what a call-directory extension takes."""
        return sorted((n, v["action"], v["category"]) for n, v in self.numbers.items())


def _issued_before_revocation(token: str, keys: KeyDirectory, now: datetime) -> Label | None:
    """A synced label whose key was revoked after the label was issued. The exchange
    refuses labels signed with a key that is revoked when they arrive, so this one was
    accepted before the revocation and stays valid: verified as of its issue time, and
    still unexpired now."""
    try:
        issued = time_claim(jwt.decode(token, options={"verify_signature": False}), "iat")
        label = verify_label(token, keys, issued)
    except (jwt.InvalidTokenError, JwsRejected):
        return None
    return label if label.expires_at > now else None


def sync_handset(client: "ExchangeClient", store: HandsetLabelStore, chunk_size: int = 0) -> SyncReport:
    """Bring ``store`` up to date: a snapshot on the first run, deltas after."""
    keys = KeyDirectory(client.list_participants())
    report = SyncReport()
    for chunk in client.sync(store.cursor, chunk_size):
        store.apply(chunk, keys, report)
    return report
