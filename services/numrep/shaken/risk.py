"""How much a caller-ID authentication outcome moves a call's spam risk.

The numbers are **log-odds**, the scale reconciliation already works on:
``p' = sigmoid(logit(p) + risk_adjustment(result))``. For orientation, with
the default ``ReconcileConfig`` the prior is 20 % (logit -1.39), WARN starts at
50 % (logit 0), BLOCK at 90 % (logit 2.20), and one unit of label weight is
worth 3.0, so a single carrier spam label (weight 0.8) adds about 2.4.

=========================  ======  ==================================================
reason                     adjust  why
=========================  ======  ==================================================
verified_a                 -0.5    the number is not spoofed and the provider knows
                                   the caller; but plenty of unwanted marketing is
                                   signed A, so it lowers risk a little (20 % -> 13 %)
                                   and never outweighs a single carrier spam label
verified_b                  0.0    caller known, right to the number not: typical of
                                   enterprise PBXs and call centres; neutral
verified_c                 +0.25   gateway attestation: the origin is unknown (often
                                   international ingress); slightly up
certificate_unavailable    +0.25   our cache lacks the certificate: a gap on our
                                   side, not proof of anything; treated like C
malformed, bad_header,     +1.0    a real authentication service does not produce
malformed_claims                   these; hand-made or broken (20 % -> 40 %: not a
                                   warning alone, but it tips a borderline number)
stale                      +1.0    replaying a captured PASSporT is how a valid A
                                   signature is reused; slow signalling and clock
                                   skew cause it too, so no more than a broken token
untrusted_certificate      +2.0    signed, but not by a provider on the trust list
                                   (or with an expired certificate): 20 % -> 65 %,
                                   a warning on its own
bad_signature              +3.0    tampered or forged in transit: 20 % -> 83 %
number_mismatch            +3.0    a provider signed for a *different* number: the
                                   number shown is spoofed: 20 % -> 83 %
no PASSporT (None)          0.0    most calls still cross networks that drop the
                                   Identity header; absence says nothing
=========================  ======  ==================================================

``bad_signature`` and ``number_mismatch`` alone reach WARN from the prior, and
with any corroborating spam evidence reach BLOCK territory: the campaign asks
for calls that fail authentication to be intercepted (``INTERCEPT_REASONS``).

These adjustments belong to **one call**, never to the number's stored
verdict: whoever spoofs a victim's number with a broken PASSporT must not
damage the victim's reputation.
"""

from __future__ import annotations

import math

from numrep.shaken.passport import MALFORMED
from numrep.shaken.verify import (
    BAD_HEADER,
    BAD_SIGNATURE,
    CERTIFICATE_UNAVAILABLE,
    MALFORMED_CLAIMS,
    NUMBER_MISMATCH,
    STALE,
    UNTRUSTED_CERTIFICATE,
    VERIFIED_A,
    VERIFIED_B,
    VERIFIED_C,
    ShakenResult,
)

RISK_ADJUSTMENTS: dict[str, float] = {
    VERIFIED_A: -0.5,
    VERIFIED_B: 0.0,
    VERIFIED_C: 0.25,
    CERTIFICATE_UNAVAILABLE: 0.25,
    MALFORMED: 1.0,
    BAD_HEADER: 1.0,
    MALFORMED_CLAIMS: 1.0,
    STALE: 1.0,
    UNTRUSTED_CERTIFICATE: 2.0,
    BAD_SIGNATURE: 3.0,
    NUMBER_MISMATCH: 3.0,
}

# failures that on their own justify intercepting the call (at least WARN)
INTERCEPT_REASONS = frozenset({UNTRUSTED_CERTIFICATE, BAD_SIGNATURE, NUMBER_MISMATCH})

UNKNOWN_FAILURE_ADJUSTMENT = 1.0  # a reason added later without a row here still counts as a failure


def risk_adjustment(result: ShakenResult | None) -> float:
    """Log-odds to add to a call's spam risk for ``result`` (None: no PASSporT, 0.0)."""
    if result is None:
        return 0.0
    if result.reason in RISK_ADJUSTMENTS:
        return RISK_ADJUSTMENTS[result.reason]
    return 0.0 if result.verified else UNKNOWN_FAILURE_ADJUSTMENT


def adjust_probability(probability: float, result: ShakenResult | None) -> float:
    """``probability`` moved by ``risk_adjustment(result)`` in log-odds."""
    p = min(max(probability, 1e-9), 1 - 1e-9)
    x = math.log(p / (1 - p)) + risk_adjustment(result)
    if x >= 0:
        return 1 / (1 + math.exp(-x))
    z = math.exp(x)
    return z / (1 + z)
