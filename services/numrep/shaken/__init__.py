"""Caller-ID authentication evidence: SHAKEN PASSporT verification (RFC 8224 / 8225 / 8588).

Pure domain code (cryptography, the stdlib, and ``numrep.core.numbers`` for
E.164): no gRPC, no storage, no network. A carrier
passes the SIP Identity header of an incoming call with its Lookup; the
exchange verifies it against configured trust anchors and locally cached
certificates, states the outcome, and moves that one call's risk.

    anchors = TrustAnchors.from_directory("/etc/numrep/sti-ca")
    anchors.load_cache("/var/lib/numrep/sti-certs/index.json")
    result = verify_passport(identity_header, "+12025550143", anchors, now)
    result.reason          # "verified_a" ... or "number_mismatch", ...
    risk_adjustment(result)  # log-odds for this call
"""

from numrep.shaken.anchors import TrustAnchors
from numrep.shaken.passport import MALFORMED, PassportError, PassportToken, parse_identity_header
from numrep.shaken.risk import INTERCEPT_REASONS, RISK_ADJUSTMENTS, adjust_probability, risk_adjustment
from numrep.shaken.verify import (
    ATTESTATIONS,
    BAD_HEADER,
    BAD_SIGNATURE,
    CERTIFICATE_UNAVAILABLE,
    DEFAULT_MAX_AGE,
    FAILURE_REASONS,
    MALFORMED_CLAIMS,
    NUMBER_MISMATCH,
    STALE,
    UNTRUSTED_CERTIFICATE,
    VERIFIED_A,
    VERIFIED_B,
    VERIFIED_C,
    VERIFIED_REASONS,
    ShakenResult,
    canonical_tn,
    verify_passport,
)

__all__ = [
    "ATTESTATIONS",
    "BAD_HEADER",
    "BAD_SIGNATURE",
    "CERTIFICATE_UNAVAILABLE",
    "DEFAULT_MAX_AGE",
    "FAILURE_REASONS",
    "INTERCEPT_REASONS",
    "MALFORMED",
    "MALFORMED_CLAIMS",
    "NUMBER_MISMATCH",
    "RISK_ADJUSTMENTS",
    "STALE",
    "UNTRUSTED_CERTIFICATE",
    "VERIFIED_A",
    "VERIFIED_B",
    "VERIFIED_C",
    "VERIFIED_REASONS",
    "PassportError",
    "PassportToken",
    "ShakenResult",
    "TrustAnchors",
    "adjust_probability",
    "canonical_tn",
    "parse_identity_header",
    "risk_adjustment",
    "verify_passport",
]
