"""Helpers of the consent ledger tests: numbers, call times at chosen local
times, and ``Ledger``, which drives a real exchange over gRPC as participants would."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from numrep.server import RunningServer
from numrep.signing.consent import evidence_hash
from numrep.v1 import common_pb2, consent_pb2, publish_pb2

CALLER = "+12025550143"         # Washington, DC
OTHER_CALLER = "+12025550177"
CALLEE = "+12025550188"         # Washington, DC: America/New_York
WEST_CALLEE = "+14155550143"    # San Francisco: America/Los_Angeles
PROOF = evidence_hash(b"recorded opt-in, 2026-11-01, web form #4411")
NEW_YORK = ZoneInfo("America/New_York")

ACCEPTED = publish_pb2.ITEM_STATUS_ACCEPTED
DUPLICATE = publish_pb2.ITEM_STATUS_DUPLICATE
REJECTED = publish_pb2.ITEM_STATUS_REJECTED
NONE = consent_pb2.CONSENT_STATE_NONE
CONSENTED = consent_pb2.CONSENT_STATE_CONSENTED
REFUSED = consent_pb2.CONSENT_STATE_REFUSED
BLOCK = common_pb2.ACTION_BLOCK


def now_utc() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)


def at_local(zone: str | ZoneInfo, weekday: int, hour: int, minute: int = 0, weeks_ahead: int = 1) -> datetime:
    """A UTC instant in the future (``weeks_ahead`` weeks from now, so a record
    issued now is live) that is ``weekday`` (0 = Monday) ``hour:minute`` local time in ``zone``."""
    tz = zone if isinstance(zone, ZoneInfo) else ZoneInfo(zone)
    today = datetime.now(tz).date() + timedelta(weeks=weeks_ahead)
    day = today + timedelta(days=(weekday - today.weekday()) % 7)
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=tz).astimezone(timezone.utc)


WEDNESDAY, SATURDAY = 2, 5


def daytime() -> datetime:
    """Wednesday 11:00 in New York: inside the default window (08:00-21:00) for a DC callee."""
    return at_local(NEW_YORK, WEDNESDAY, 11)


def late_evening() -> datetime:
    """Wednesday 22:30 in New York: outside the default window."""
    return at_local(NEW_YORK, WEDNESDAY, 22, 30)


@dataclass
class Ledger:
    """Drive the exchange as participants would: each call goes over real gRPC."""

    server: RunningServer
    federation: Any
    connect: Any

    def client(self, identity: Any = None) -> Any:
        return self.connect(identity or self.federation.carrier)

    def register(self, *tokens: str, by: Any = None) -> list[publish_pb2.ItemResult]:
        return self.client(by).register_consent(list(tokens))

    def refuse(self, *tokens: str, by: Any = None) -> list[publish_pb2.ItemResult]:
        return self.client(by or self.federation.app).record_refusal(list(tokens))

    def lookup(self, caller: str = CALLER, callee: str = CALLEE, at: datetime | None = None, category: str = "marketing.loans") -> common_pb2.Verdict:
        return self.client(self.federation.carrier).lookup(caller, callee=callee, call_time=at or daytime(), call_category=category)

    def state(self, caller: str = CALLER, callee: str = CALLEE, at: datetime | None = None, category: str = "") -> consent_pb2.ConsentCheck:
        return self.client(self.federation.handset).consent_state(caller, callee, at or daytime(), category)

    def stored(self, record_id: str) -> Any:
        return self.server.exchange.consent.store.get_record(record_id)
