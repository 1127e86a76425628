"""The consent ledger's use cases: register signed consent records, record
signed refusals, revoke them, and answer the consent state of a call (for
``GetConsentState`` and for a ``Lookup`` whose call context names the callee).

Callee numbers are hashed here, with the exchange's pseudonymisation secret,
before anything reaches the store; they are never logged.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Callable, Sequence

from numrep.core.categories import category as parse_category
from numrep.core.consent import CallFacts, ConsentCheck, ConsentPolicy, ConsentRecord, RecordKind, decide
from numrep.core.errors import InvalidArgument
from numrep.core.model import Action, Participant, Role, Verdict
from numrep.core.numbers import DEFAULT_REGION, normalize
from numrep.core.pseudonym import Pseudonymizer
from numrep.exchange import ItemOutcome, check_size
from numrep.signing.consent import verify_record
from numrep.signing.jws import JwsRejected, ParticipantLookup
from numrep.store.consent_base import ConsentStore, RecordOutcome

Clock = Callable[[], datetime]
MAX_BATCH = 1000
MARKETING = "marketing"  # the category of a call that declares none


class ConsentLedger:
    def __init__(
        self,
        store: ConsentStore,
        pseudonymizer: Pseudonymizer,
        participants: ParticipantLookup,
        clock: Clock,
        policy: ConsentPolicy = ConsentPolicy(),
        default_region: str = DEFAULT_REGION,
    ) -> None:
        self.store = store
        self.policy = policy
        self._pseudonym = pseudonymizer
        self._participants = participants
        self._clock = clock
        self._region = default_region

    def callee_hash(self, e164: str) -> str:
        """The keyed hash a callee is stored under (128 bits of HMAC-SHA256)."""
        return self._pseudonym("callee", e164)

    # --- writes ------------------------------------------------------------------------
    def register(self, sender: Participant, tokens: Sequence[str]) -> list[ItemOutcome]:
        return self._add(sender, tokens, RecordKind.CONSENT)

    def refuse(self, sender: Participant, tokens: Sequence[str]) -> list[ItemOutcome]:
        return self._add(sender, tokens, RecordKind.REFUSAL)

    def _add(self, sender: Participant, tokens: Sequence[str], kind: RecordKind) -> list[ItemOutcome]:
        check_size(f"{kind.value} records", len(tokens), MAX_BATCH)
        now = self._clock()
        results: list[ItemOutcome | None] = []
        verified: list[tuple[int, ConsentRecord]] = []
        for index, token in enumerate(tokens):
            try:
                record = verify_record(token, kind, self._participants, now, self.callee_hash, sender.id, self.policy)
            except JwsRejected as exc:
                results.append(ItemOutcome(index, "", "rejected", exc.reason, exc.message))
                continue
            verified.append((index, record))
            results.append(None)
        outcomes = self.store.add_records([record for _, record in verified]) if verified else []
        for (index, record), outcome in zip(verified, outcomes):
            results[index] = _result(index, record.id, outcome)
        return [r for r in results if r is not None]

    def revoke(self, sender: Participant, record_ids: Sequence[str]) -> list[ItemOutcome]:
        check_size("record ids", len(record_ids), MAX_BATCH)
        results = []
        for index, record_id in enumerate(record_ids):
            record = self.store.get_record(record_id)
            if record is None:
                results.append(ItemOutcome(index, record_id, "rejected", "not_found", f"no consent record or refusal {record_id!r}"))
            elif record.issuer != sender.id and sender.role is not Role.REGULATOR:
                results.append(ItemOutcome(index, record_id, "rejected", "not_owner", f"{record_id!r} was registered by another participant"))
            elif not self.store.revoke_record(record_id, self._clock()):
                results.append(ItemOutcome(index, record_id, "duplicate", "already_revoked", "record already revoked"))
            else:
                results.append(ItemOutcome(index, record_id, "accepted"))
        return results

    # --- reads -------------------------------------------------------------------------
    def state_for(self, caller: str, callee: str, at: datetime | None = None, category: str = "") -> ConsentCheck:
        """The consent state of a call from ``caller`` to ``callee`` at ``at`` (default now)."""
        code = category or MARKETING
        parse_category(code)
        facts = CallFacts(self._number(caller, "caller"), self._number(callee, "callee"), at or self._clock(), code)
        return self.check(facts)

    def check(self, call: CallFacts) -> ConsentCheck:
        records = self.store.records_for(call.caller, self.callee_hash(call.callee))
        return decide(records, call, self.policy)

    def apply(self, verdict: Verdict, callee: str, at: datetime | None, declared_category: str) -> tuple[Verdict, ConsentCheck]:
        """A lookup's verdict for one call to ``callee``: with its consent check,
        and BLOCK when the check blocks (a marketing call to a callee who refused,
        or outside the allowed hours). The call is marketing when its declared
        category is, or else when the caller's verdict category is."""
        if declared_category:
            parse_category(declared_category)
        facts = CallFacts(verdict.number, self._number(callee, "callee"), at or self._clock(), declared_category or verdict.category)
        check = self.check(facts)
        for_this_call = min(verdict.expires_at, self._clock())  # an answer about one call: not for a per-number cache
        if not check.blocks:
            return dataclasses.replace(verdict, expires_at=for_this_call), check
        explanation = f"Block for this call. {check.explanation} Reputation alone: {verdict.explanation}"
        return dataclasses.replace(verdict, action=Action.BLOCK, explanation=explanation.strip(), expires_at=for_this_call), check

    def _number(self, raw: str, what: str) -> str:
        if not raw:
            raise InvalidArgument(f"the {what} number is missing", f"missing_{what}")
        return normalize(raw, self._region)


def _result(index: int, record_id: str, outcome: RecordOutcome) -> ItemOutcome:
    if outcome is RecordOutcome.ADDED:
        return ItemOutcome(index, record_id, "accepted")
    if outcome is RecordOutcome.DUPLICATE:
        return ItemOutcome(index, record_id, "duplicate", "duplicate", "record already stored")
    if outcome is RecordOutcome.REVOKED:
        return ItemOutcome(index, record_id, "rejected", "revoked", "record id was revoked and cannot be registered again")
    return ItemOutcome(index, record_id, "rejected", "replayed_id", "record id is taken by a different signed record")


