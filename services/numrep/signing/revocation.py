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

from numrep.core.model import Contribution, Label, Verdict
from numrep.signing.jws import ParticipantLookup

KidLookup = Callable[[str], str | None]  # label id -> the kid that signed it (cached by the caller)


def signing_kid(label: Label) -> str | None:
    """The ``kid`` in the stored label's header."""
    try:
        kid = jwt.get_unverified_header(label.token).get("kid")
    except jwt.InvalidTokenError:
        return None
    return kid if isinstance(kid, str) else None


def mark_revoked_keys(verdict: Verdict, participants: ParticipantLookup, kid_of: KidLookup) -> Verdict:
    """``verdict`` with a note on each label contribution whose signing key was
    revoked after the label was accepted. Costs nothing for a participant that
    never revoked a key (the participant lookup is cached); otherwise one
    ``kid_of`` per contribution of that participant (a label's kid never changes,
    so the caller caches it)."""
    marked: list[Contribution] | None = None
    for index, contribution in enumerate(verdict.contributions):
        noted = _marked(contribution, participants, kid_of)
        if noted is not contribution:
            marked = marked or list(verdict.contributions)
            marked[index] = noted
    return verdict if marked is None else dataclasses.replace(verdict, contributions=tuple(marked))


class RevocationMarks:
    """``mark_revoked_keys`` for the many verdicts of one batch: whether a publisher
    ever revoked a key is asked once per publisher, and a verdict none of whose
    labels' publishers did is returned as it is without further calls."""

    def __init__(self, participants: ParticipantLookup, kid_of: KidLookup) -> None:
        self._participants = participants
        self._kid_of = kid_of
        self._revoking: dict[str, bool] = {}

    def __call__(self, verdict: Verdict) -> Verdict:
        revoking = self._revoking
        for contribution in verdict.contributions:
            if contribution.label_id:
                publisher = contribution.participant_id
                revoked = revoking.get(publisher)
                if revoked is None:
                    found = self._participants(publisher)
                    revoked = revoking[publisher] = found is not None and found.has_revoked_keys
                if revoked:
                    return mark_revoked_keys(verdict, self._participants, self._kid_of)
        return verdict


def _marked(contribution: Contribution, participants: ParticipantLookup, kid_of: KidLookup) -> Contribution:
    if not contribution.label_id:
        return contribution
    publisher = participants(contribution.participant_id)
    if publisher is None or not publisher.has_revoked_keys:
        return contribution
    kid = kid_of(contribution.label_id)
    record = publisher.key(kid) if kid is not None else None
    if record is None or record.revoked_at is None:
        return contribution
    note = (f"signed with key {record.kid}, which {contribution.participant_id} revoked at "
            f"{record.revoked_at:%Y-%m-%dT%H:%M:%SZ}, after this label was accepted: it still counts")
    explanation = f"{contribution.explanation}; {note}" if contribution.explanation else note
    return dataclasses.replace(contribution, explanation=explanation)
