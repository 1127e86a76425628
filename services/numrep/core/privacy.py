"""Hash buckets for privacy-preserving lookup (k-anonymity, as PhoneBlock's
SHA-1 prefix lookup and Have I Been Pwned's range API do).

A client hashes the number it wants, sends only the first few hex digits, and
receives every listed number in that bucket (as full hashes with verdicts),
matching locally. The exchange learns the bucket, not the number. The hash is
public on purpose: phone numbers are few enough to brute-force any hash, so the
protection is the size of the bucket, not the secrecy of the hash.
"""

from __future__ import annotations

import hashlib

from numrep.core.errors import InvalidArgument

HASH_DOMAIN = b"numrep-v1:"
MIN_PREFIX_HEX = 1
MAX_PREFIX_HEX = 8


def number_hash(e164: str) -> str:
    """Full SHA-256 (hex) of a normalised number, as clients compute it."""
    return hashlib.sha256(HASH_DOMAIN + e164.encode()).hexdigest()


def hash32(e164: str) -> int:
    """The first 32 bits of ``number_hash``: what stores index."""
    return int(number_hash(e164)[:8], 16)


def prefix_range(prefix: str) -> tuple[int, int]:
    """The inclusive range of ``hash32`` values a hex prefix covers."""
    text = prefix.strip().lower()
    if not MIN_PREFIX_HEX <= len(text) <= MAX_PREFIX_HEX or any(c not in "0123456789abcdef" for c in text):
        raise InvalidArgument(
            f"hash prefix must be {MIN_PREFIX_HEX} to {MAX_PREFIX_HEX} hex digits, got {prefix!r}", "bad_prefix"
        )
    shift = 4 * (MAX_PREFIX_HEX - len(text))
    low = int(text, 16) << shift
    return low, low | ((1 << shift) - 1)
