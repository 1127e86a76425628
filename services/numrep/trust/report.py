"""What the learned trust says about each source, in words a support agent can read."""

from __future__ import annotations

import math

from numrep.trust.model import SourceReliability, TrustSnapshot
from numrep.trust.reporters import is_flags_source, principal_of


def source_summary(rel: SourceReliability) -> str:
    whose = f"{principal_of(rel.source)}'s users' flags" if is_flags_source(rel.source) else f"{rel.source}'s labels"
    if not rel.fitted:
        return f"{whose}: not learned yet; counted as a {rel.prior} is expected to be"
    parts = [f"spam reports right {rel.spam_precision:.0%} of the time"]
    if rel.legit_votes > 0:
        parts.append(f"'legitimate' reports right {rel.legit_precision:.0%}")
    if not math.isnan(rel.sensitivity):
        parts.append(f"reports {rel.sensitivity:.0%} of the spam it could have seen")
    text = f"{whose}: " + ", ".join(parts) + f" (judged on {rel.spam_votes + rel.legit_votes:.0f} votes)"
    if rel.independence < 1.0:
        text += f"; mostly repeats others' earlier reports, so counts {rel.independence:.0%}"
    return text


def sources_by_participant(snapshot: TrustSnapshot) -> list[SourceReliability]:
    """Every fitted source, ordered by participant then source."""
    return sorted(snapshot.sources.values(), key=lambda r: (principal_of(r.source), r.source))
