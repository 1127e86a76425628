"""The demo's consent-ledger step: a verified business registers a callee's
consent through its carrier, another callee refuses through an app, and
lookups with the callee show consent, calling hours and refusals at work."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Callable
from zoneinfo import ZoneInfo

from numrep.cli.output import verdict_text
from numrep.signing.consent import evidence_hash, sign_consent, sign_refusal
from numrep.signing.keys import Identity
from numrep_client import ExchangeClient

BUSINESS = "+12025550110"        # a business line carriers vouch for in the demo
CONSENTING = "+12025550160"      # fictional callees (555-01XX), Washington DC
REFUSING = "+14155550161"        # San Francisco


def show_consent(client: Callable[[str], ExchangeClient], identities: dict[str, Identity], heading: Callable[[str], None]) -> None:
    heading("Consent and refusals: marketing calls from a business with a good reputation")
    east, app = identities["carrier-east"], identities["app-callguard"]
    with client("carrier-east") as carrier:
        proof = evidence_hash(b"recorded opt-in call, 2026-11-02, ref 7731")
        [registered] = carrier.register_consent([sign_consent(
            east, BUSINESS, CONSENTING, ["marketing.insurance"], proof, hours="mon-fri 09:00-19:00", enterprise="acme-insurance")])
        print(f"  carrier-east registers a consent for its customer acme-insurance: {registered.id} "
              "(insurance offers, weekdays 09:00-19:00; the proof stays with the caller, the exchange keeps its hash)")
    with client("app-callguard") as callguard:
        [refused] = callguard.record_refusal([sign_refusal(app, REFUSING, "*")])
        print(f"  a CallGuard user says 'do not call me again' to every marketing caller: {refused.id}")
    wednesday = _next_weekday(2)
    calls = [
        (CONSENTING, _at(wednesday, 10, "America/New_York"), "marketing.insurance", "consented, Wednesday 10:00 callee time"),
        (CONSENTING, _at(wednesday, 20, "America/New_York"), "marketing.insurance", "consented, but Wednesday 20:00"),
        (CONSENTING, _at(wednesday, 10, "America/New_York"), "marketing.loans", "a category the consent does not cover"),
        (REFUSING, _at(wednesday, 10, "America/Los_Angeles"), "marketing.insurance", "a callee who refused"),
    ]
    with client("carrier-west") as carrier:
        for callee, at, category, what in calls:
            verdict = carrier.lookup(BUSINESS, callee=callee, call_time=at, call_category=category)
            print(f"\n  {what} ({category}):")
            print("  " + verdict_text(verdict).splitlines()[0])
            print(f"    {verdict.consent.explanation}")


def _next_weekday(weekday: int) -> datetime:
    today = datetime.now(timezone.utc).date() + timedelta(days=1)
    day = today + timedelta(days=(weekday - today.weekday()) % 7)
    return datetime(day.year, day.month, day.day)


def _at(day: datetime, hour: int, zone: str) -> datetime:
    return day.replace(hour=hour, tzinfo=ZoneInfo(zone)).astimezone(timezone.utc)
