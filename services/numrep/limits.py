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

from numrep.core.errors import InvalidArgument
from numrep.core.model import Role

# RPC classes: what one token pays for.
RPC_CLASS = {
    "LookupService/Lookup": "lookup",
    "LookupService/BatchLookup": "batch",
    "LookupService/PrefixLookup": "lookup",
    "LookupService/LookupStream": "lookup",  # opening it; each lookup on it counts as one more
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

    def with_overrides(self, text: str) -> "RateLimits":
        """These limits with the rates ``text`` sets (``parse_rates``) in place of the defaults."""
        return RateLimits({**self.rates, **parse_rates(text)}, self.flags_per_app, self.flags_per_reporter_per_batch)


RPC_CLASSES = ("lookup", "batch", "write", "sync")


def parse_rates(text: str) -> dict[tuple[Role, str], Rate]:
    """Rates as an operator writes them: ``ROLE.CLASS=PER_SECOND[/BURST]``, comma
    separated, e.g. ``carrier.batch=200/400,app_vendor.write=50``. ROLE is a
    participant role or ``*`` (every role); CLASS is one of ``RPC_CLASSES``; the
    burst defaults to twice the rate."""
    rates: dict[tuple[Role, str], Rate] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        key, sep, value = item.partition("=")
        role_name, dot, kind = key.strip().partition(".")
        roles = list(Role) if role_name == "*" else [r for r in Role if r.value == role_name]
        per_second, slash, burst = value.strip().partition("/")
        try:
            rate = Rate(float(per_second), float(burst) if slash else 2 * float(per_second))
        except ValueError:
            rate = Rate(-1, -1)
        if not sep or not dot or not roles or kind not in RPC_CLASSES or rate.per_second <= 0 or rate.burst < 1:
            raise InvalidArgument(
                f"bad rate limit {item!r}: write ROLE.CLASS=PER_SECOND[/BURST] with ROLE one of "
                f"{', '.join(r.value for r in Role)} or *, CLASS one of {', '.join(RPC_CLASSES)}, a positive rate and a burst of at least 1")
        rates.update(((role, kind), rate) for role in roles)
    return rates


class TokenBuckets:
    """Thread-safe token buckets; ``take`` returns 0 when allowed, else the
    seconds to wait before the same request could pass.

    A bucket that has filled up again is forgotten (a new one starts full): keys
    may be unbounded, such as the web page's client addresses, and memory must
    not grow with every address ever seen. Full buckets are swept whenever the
    table has doubled since the last sweep (at least ``SWEEP_AT`` entries), so a
    sweep's cost is paid for by the insertions before it."""

    SWEEP_AT = 1024

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._state: dict[tuple[str, str], tuple[float, float, float]] = {}  # tokens, last, full again at
        self._lock = threading.Lock()
        self._sweep_at = self.SWEEP_AT

    def __len__(self) -> int:
        return len(self._state)

    def take(self, key: tuple[str, str], rate: Rate, cost: float = 1.0) -> float:
        now = self._clock()
        with self._lock:
            if len(self._state) >= self._sweep_at:
                self._sweep(now)
            tokens, last, _ = self._state.get(key, (rate.burst, now, now))
            tokens = min(rate.burst, tokens + (now - last) * rate.per_second)
            allowed = tokens >= cost
            if allowed:
                tokens -= cost
            self._state[key] = (tokens, now, now + (rate.burst - tokens) / rate.per_second)
            if allowed:
                return 0.0
            return (cost - tokens) / rate.per_second if cost <= rate.burst else float("inf")

    def _sweep(self, now: float) -> None:
        full = [key for key, (_, _, full_at) in self._state.items() if full_at <= now]
        for key in full:
            del self._state[key]
        self._sweep_at = max(self.SWEEP_AT, 2 * len(self._state))
