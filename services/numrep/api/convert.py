"""Translation between domain value objects and numrep.v1 messages."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timezone
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from numrep.core.model import Action, Participant, Role, SyncEntry, SyncPage, Verdict
from numrep.exchange import ItemOutcome
from numrep.trust import TrustSnapshot
from numrep.trust.report import source_summary, sources_by_participant
from numrep.trust.reporters import principal_of
from numrep.v1 import common_pb2, publish_pb2, registry_pb2, sync_pb2

ROLE_TO_PB = {
    Role.CARRIER: common_pb2.ROLE_CARRIER,
    Role.HANDSET_VENDOR: common_pb2.ROLE_HANDSET_VENDOR,
    Role.APP_VENDOR: common_pb2.ROLE_APP_VENDOR,
    Role.REGULATOR: common_pb2.ROLE_REGULATOR,
}
ROLE_FROM_PB = {v: k for k, v in ROLE_TO_PB.items()}
ACTION_TO_PB = {
    Action.UNKNOWN: common_pb2.ACTION_UNKNOWN,
    Action.ALLOW: common_pb2.ACTION_ALLOW,
    Action.WARN: common_pb2.ACTION_WARN,
    Action.BLOCK: common_pb2.ACTION_BLOCK,
}
ACTION_FROM_PB = {v: k for k, v in ACTION_TO_PB.items()}
STATUS_TO_PB = {
    "accepted": publish_pb2.ITEM_STATUS_ACCEPTED,
    "duplicate": publish_pb2.ITEM_STATUS_DUPLICATE,
    "rejected": publish_pb2.ITEM_STATUS_REJECTED,
}


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def timestamp(when: datetime) -> Timestamp:
    """``Timestamp.FromDatetime`` in exact integer arithmetic, at a fraction of its
    cost; a naive ``when`` is read as UTC."""
    return set_timestamp(Timestamp(), when)


def set_timestamp(message: Timestamp, when: datetime) -> Timestamp:
    """Set ``message`` (a Timestamp, possibly a field of another message) to ``when``."""
    message.seconds, message.nanos = timestamp_parts(when)
    return message


def timestamp_parts(when: datetime) -> tuple[int, int]:
    """``when`` as a Timestamp's (seconds, nanos); a naive ``when`` is read as UTC."""
    since = (when if when.tzinfo is not None else when.replace(tzinfo=timezone.utc)) - _EPOCH
    return since.days * 86_400 + since.seconds, since.microseconds * 1000


def from_timestamp(ts: Timestamp) -> datetime:
    return ts.ToDatetime(tzinfo=timezone.utc)


def verdict_to_pb(verdict: Verdict) -> common_pb2.Verdict:
    return fill_verdict(common_pb2.Verdict(), verdict)


def fill_verdict(message: common_pb2.Verdict, verdict: Verdict) -> common_pb2.Verdict:
    """Write ``verdict`` into an empty ``message`` in place: a field of a larger
    message (a BatchLookup result) is filled where it lies instead of being built
    and then copied in, and field by field is cheaper than one constructor call
    with nested messages (every lookup pays this)."""
    message.number = verdict.number
    message.action = ACTION_TO_PB[verdict.action]
    message.category = verdict.category
    message.spam_probability = verdict.spam_probability
    message.confidence = verdict.confidence
    add = message.contributions.add
    for c in verdict.contributions:
        add(participant_id=c.participant_id, role=ROLE_TO_PB[c.role], category=c.category, weight=c.weight, kind=c.kind,
            label_id=c.label_id, reporter_count=c.reporter_count, explanation=c.explanation)
    message.version = verdict.version
    set_timestamp(message.computed_at, verdict.computed_at)
    set_timestamp(message.expires_at, verdict.expires_at)
    message.explanation = verdict.explanation
    message.label_count = verdict.label_count
    message.flag_count = verdict.flag_count
    message.caller_id_authentication = verdict.caller_id_authentication
    message.caller_id_risk = verdict.caller_id_risk
    message.trust_epoch = verdict.trust_epoch
    return message


def outcome_to_pb(outcome: ItemOutcome) -> publish_pb2.ItemResult:
    return publish_pb2.ItemResult(
        index=outcome.index, id=outcome.id, status=STATUS_TO_PB[outcome.status], reason=outcome.reason, message=outcome.message
    )


def participant_to_pb(participant: Participant) -> registry_pb2.Participant:
    return registry_pb2.Participant(
        id=participant.id,
        role=ROLE_TO_PB[participant.role],
        display_name=participant.display_name,
        keys=[
            registry_pb2.PublicKey(
                kid=k.kid,
                jwk=k.jwk,
                added_at=timestamp(k.added_at),
                revoked_at=timestamp(k.revoked_at) if k.revoked_at else None,
            )
            for k in participant.keys
        ],
    )


def sync_entry_to_pb(entry: SyncEntry) -> sync_pb2.SyncEntry:
    return add_sync_entry(sync_pb2.SyncChunk().entries, entry)


def sync_page_to_pb(page: SyncPage) -> sync_pb2.SyncChunk:
    """A chunk with its entries added where they lie (not built and then copied in)."""
    chunk = sync_pb2.SyncChunk(cursor=page.cursor, snapshot=page.snapshot, caught_up=page.caught_up)
    if page.encoded:
        chunk.MergeFromString(page.encoded)  # encoded SyncChunk.entries elements: appended as they are
    entries = chunk.entries
    for entry in page.entries:
        add_sync_entry(entries, entry)
    return chunk


def sync_page_bytes(page: SyncPage) -> bytes:
    """``sync_page_to_pb(page)``, encoded, with the page's stored entries copied as
    they are rather than parsed and encoded again (serialised messages concatenate:
    repeated fields append)."""
    rest = sync_page_to_pb(dataclasses.replace(page, encoded=b"", encoded_count=0)) if page.encoded else sync_page_to_pb(page)
    return page.encoded + rest.SerializeToString()


def add_sync_entry(entries: Any, entry: SyncEntry) -> sync_pb2.SyncEntry:
    """Append ``entry`` to a repeated SyncEntry field and return the new element."""
    verdict = entry.verdict
    if entry.tombstone or verdict is None:
        return entries.add(number=entry.number, tombstone=True, removed_label_ids=entry.removed_label_ids,
                           version=verdict.version if verdict else 0)
    return entries.add(number=entry.number, action=ACTION_TO_PB[verdict.action], category=verdict.category,
                       spam_probability=verdict.spam_probability, labels=entry.tokens,
                       removed_label_ids=entry.removed_label_ids, version=verdict.version)


def trust_report_to_pb(snapshot: TrustSnapshot, verdicts_changed: int = 0) -> registry_pb2.TrustReport:
    return registry_pb2.TrustReport(
        epoch=snapshot.epoch,
        fitted_at=timestamp(snapshot.fitted_at) if snapshot.fitted_at else None,
        base_probability=snapshot.base_probability,
        numbers=snapshot.numbers,
        labels=snapshot.labels,
        flags=snapshot.flags,
        gold=snapshot.gold,
        iterations=snapshot.iterations,
        converged=snapshot.converged,
        sources=[
            registry_pb2.SourceTrust(
                source=r.source, participant_id=principal_of(r.source), prior=r.prior, fitted=r.fitted,
                spam_precision=r.spam_precision, legit_precision=r.legit_precision, sensitivity=r.sensitivity,
                specificity=r.specificity, spam_votes=r.spam_votes, legit_votes=r.legit_votes,
                independence=r.independence, summary=source_summary(r),
            )
            for r in sources_by_participant(snapshot)
        ],
        verdicts_changed=verdicts_changed,
    )
