"""Keyed pseudonyms for personal data (reporter ids, numbers in logs).

HMAC-SHA256 with a secret that stays with whoever pseudonymises: the exchange
cannot be asked to reverse it, and two deployments with different secrets
produce unlinkable pseudonyms."""

from __future__ import annotations

import hashlib
import hmac


class Pseudonymizer:
    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("pseudonym secret must be at least 16 bytes")
        self._secret = secret

    def __call__(self, *parts: str, length: int = 32) -> str:
        message = "\x1f".join(parts).encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()[:length]
