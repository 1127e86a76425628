"""Per-participant rate limits: token buckets keyed by participant and RPC class.

A participant over its rate gets RESOURCE_EXHAUSTED with the time after which a
retry can succeed, so one careless or hostile participant cannot take the
exchange's capacity from the others (a flag flood must not slow carriers'
per-call lookups).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from numrep.core.model import Role

# RPC classes: what one token pays for.
RPC_CLASS = {
    "LookupService/Lookup": "lookup",
    "LookupService/BatchLookup": "batch",
    "LookupService/PrefixLookup": "lookup",
    "PublishService/Publish": "write",
    "PublishService/Retract": "write",
    "FlagsService/SubmitFlags": "write",
    "SyncService/Sync": "sync",
    "ConsentService/RegisterConsent": "write",
    "ConsentService/RecordRefusal": "write",
    "ConsentService/RevokeConsent": "write",
    "ConsentService/GetConsentState": "lookup",
    "CaseService/FileComplaint": "write",
    "CaseService/FileDispute": "write",
    "CaseService/ResolveCase": "write",
    "CaseService/GetCase": "lookup",
    "RegistryService/RefitTrust": "write",
}


@dataclass(frozen=True)
class Rate:
    per_second: float
    burst: float


def _default_rates() -> dict[tuple[Role, str], Rate]:
    rates = {}
    for role in Role:
        per_call = Rate(5000, 10000) if role is Role.CARRIER else Rate(500, 1000)
        rates[(role, "lookup")] = per_call
        rates[(role, "batch")] = Rate(50, 100)
        rates[(role, "write")] = Rate(100, 200)
        rates[(role, "sync")] = Rate(5, 20)
    return rates


@dataclass(frozen=True)
class RateLimits:
    rates: dict[tuple[Role, str], Rate] = field(default_factory=_default_rates)
    flags_per_app: Rate = Rate(5000, 20000)  # flags (not calls) per second per app
    flags_per_reporter_per_batch: int = 50


class TokenBuckets:
    """Thread-safe token buckets; ``take`` returns 0 when allowed, else the
    seconds to wait before the same request could pass."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._state: dict[tuple[str, str], tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: tuple[str, str], rate: Rate, cost: float = 1.0) -> float:
        now = self._clock()
        with self._lock:
            tokens, last = self._state.get(key, (rate.burst, now))
            tokens = min(rate.burst, tokens + (now - last) * rate.per_second)
            if tokens >= cost:
                self._state[key] = (tokens - cost, now)
                return 0.0
            self._state[key] = (tokens, now)
            return (cost - tokens) / rate.per_second if cost <= rate.burst else float("inf")
