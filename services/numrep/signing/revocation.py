"""Labels whose signing key was revoked after the exchange accepted them.

Revocation is judged when a label arrives: a label signed with a key revoked at
that moment is refused (``revoked_key``) whatever its ``iat`` says, because
whoever holds a stolen key can also backdate. A label accepted *before* its key
was revoked stays valid and keeps counting, but every verdict it contributes to
says so, so a carrier or a regulator can see which evidence rests on a key its
owner has since withdrawn.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import jwt

from numrep.core.model import Contribution, Label, PublicKeyRecord, Verdict
from numrep.signing.jws import ParticipantLookup

LabelLookup = Callable[[str], Label | None]


def signing_key(label: Label, participants: ParticipantLookup) -> PublicKeyRecord | None:
    """The registered key named by the label's ``kid`` (None if unknown)."""
    try:
        kid = jwt.get_unverified_header(label.token).get("kid")
    except jwt.InvalidTokenError:
        return None
    issuer = participants(label.issuer)
    return issuer.key(kid) if issuer is not None and isinstance(kid, str) else None


def revoked_signing_key(label: Label, participants: ParticipantLookup) -> PublicKeyRecord | None:
    """The key that signed a stored label, when it has been revoked since. (The
    exchange refuses labels signed with a key revoked when they arrive, so for a
    stored label the revocation came after it was accepted.)"""
    record = signing_key(label, participants)
    return record if record is not None and record.revoked_at is not None else None


def mark_revoked_keys(verdict: Verdict, participants: ParticipantLookup, labels: LabelLookup) -> Verdict:
    """``verdict`` with a note on each label contribution whose signing key was
    revoked after the label was accepted. Costs nothing for a participant that
    never revoked a key (the participant lookup is cached); otherwise one label
    read per contribution of that participant."""
    marked = [_marked(contribution, participants, labels) for contribution in verdict.contributions]
    if all(a is b for a, b in zip(marked, verdict.contributions)):
        return verdict
    return dataclasses.replace(verdict, contributions=tuple(marked))


def _marked(contribution: Contribution, participants: ParticipantLookup, labels: LabelLookup) -> Contribution:
    if not contribution.label_id:
        return contribution
    publisher = participants(contribution.participant_id)
    if publisher is None or all(key.revoked_at is None for key in publisher.keys):
        return contribution
    label = labels(contribution.label_id)
    record = None if label is None else revoked_signing_key(label, participants)
    if record is None or record.revoked_at is None:
        return contribution
    note = (f"signed with key {record.kid}, which {contribution.participant_id} revoked at "
            f"{record.revoked_at:%Y-%m-%dT%H:%M:%SZ}, after this label was accepted: it still counts")
    explanation = f"{contribution.explanation}; {note}" if contribution.explanation else note
    return dataclasses.replace(contribution, explanation=explanation)
