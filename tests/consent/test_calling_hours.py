"""Calling hours and the consent decision in the domain core, without a server:
the text form of hours, local time across daylight-saving changes, and
properties of the hours rule for any window and any instant."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from numrep.core.consent import (
    DEFAULT_CALLING_HOURS, CallFacts, CallingHours, CallingWindow, ConsentPolicy, ConsentRecord, ConsentState, RecordKind,
    callee_time_zones, consent_state, decide,
)
from numrep.core.errors import InvalidArgument

CALLER, CALLEE = "+12025550143", "+12025550188"
T0 = datetime(2026, 12, 2, 16, 0, tzinfo=timezone.utc)  # Wednesday 11:00 in New York


def consent(record_id: str = "c/1", issued: datetime = T0 - timedelta(days=1), **fields) -> ConsentRecord:
    values = dict(id=record_id, kind=RecordKind.CONSENT, issuer="c", callers=(CALLER,), callee_hash="h", issued_at=issued,
                  expires_at=issued + timedelta(days=30), token_digest="d", scope=("marketing",), evidence_hash="sha256:" + "0" * 64)
    values.update(fields)
    return ConsentRecord(**values)


def refusal(record_id: str = "a/1", issued: datetime = T0 - timedelta(days=1), **fields) -> ConsentRecord:
    values = dict(id=record_id, kind=RecordKind.REFUSAL, issuer="a", callers=(CALLER,), callee_hash="h", issued_at=issued,
                  expires_at=None, token_digest="d")
    values.update(fields)
    return ConsentRecord(**values)


# --- the text form ---------------------------------------------------------------------
def test_hours_text_names_day_ranges_including_ones_that_wrap_past_sunday():
    hours = CallingHours.parse("mon-fri 09:00-17:00; sat-mon 10:00-12:30; sun 14:00-24:00")

    assert hours.windows[0].days == frozenset({0, 1, 2, 3, 4})
    assert hours.windows[1].days == frozenset({5, 6, 0})
    assert (hours.windows[1].start, hours.windows[1].end) == (600, 750)
    assert hours.windows[2].end == 24 * 60
    assert hours.describe() == "mon-fri 09:00-17:00; sat-mon 10:00-12:30; sun 14:00-24:00"


@pytest.mark.parametrize("text", ["", "weekdays 9-5", "mon-fri 9:00", "funday 09:00-10:00", "mon 10:00-09:00",
                                  "mon 09:60-10:00", "mon 09:00-24:01", "mon 25:00-26:00"])
def test_hours_that_cannot_be_read_are_refused_with_a_reason(text):
    with pytest.raises(InvalidArgument) as refused:
        CallingHours.parse(text)

    assert refused.value.reason == "bad_hours"


def test_the_default_window_is_eight_to_nine_every_day():
    assert DEFAULT_CALLING_HOURS.describe() == "mon-sun 08:00-21:00"
    assert ConsentPolicy().default_hours == DEFAULT_CALLING_HOURS


# --- local time -------------------------------------------------------------------------
def test_local_time_follows_daylight_saving_time():
    summer = datetime(2026, 7, 1, 12, 30, tzinfo=timezone.utc)  # 08:30 EDT (UTC-4)
    winter = datetime(2026, 12, 2, 12, 30, tzinfo=timezone.utc)  # 07:30 EST (UTC-5)

    def check(at: datetime) -> bool:
        return decide([], CallFacts(CALLER, CALLEE, at, "marketing")).within_allowed_hours

    assert check(summer) and not check(winter)


def test_callee_zones_come_from_the_numbering_plan():
    assert callee_time_zones("+12025550188") == ("America/New_York",)
    assert callee_time_zones("+14155550143") == ("America/Los_Angeles",)


def test_a_number_in_several_zones_is_inside_only_when_inside_in_every_one():
    ten_in_new_york = datetime(2026, 12, 2, 15, 0, tzinfo=timezone.utc)  # 05:00 in Honolulu, 00:00 in Guam

    one_zone = decide([], CallFacts(CALLER, CALLEE, ten_in_new_york, "marketing"))
    toll_free = decide([], CallFacts(CALLER, "+18005550199", ten_in_new_york, "marketing"))  # every NANP zone

    assert one_zone.within_allowed_hours and not one_zone.blocks
    assert "Pacific/Honolulu" in toll_free.time_zones and "America/New_York" in toll_free.time_zones
    assert not toll_free.within_allowed_hours and toll_free.blocks


def test_a_callee_number_in_no_known_zone_is_judged_in_the_fallback_zone():
    policy = ConsentPolicy(fallback_time_zone="Europe/Paris")

    check = decide([], CallFacts(CALLER, "+80012345678", T0, "marketing"), policy)

    assert check.time_zones == ("Europe/Paris",)


# --- the state rule ----------------------------------------------------------------------
def test_the_latest_live_refusal_is_compared_with_each_consents_issue_time():
    early_consent = consent("c/1", T0 - timedelta(days=3))
    refused = refusal("a/1", T0 - timedelta(days=2))
    later_consent = consent("c/2", T0 - timedelta(days=1))

    assert consent_state([early_consent, refused], CALLER, "marketing", T0)[0] is ConsentState.REFUSED
    state, _, record = consent_state([early_consent, refused, later_consent], CALLER, "marketing", T0)
    assert state is ConsentState.CONSENTED and record is later_consent


def test_a_refusal_that_expired_no_longer_counts():
    ended = refusal(issued=T0 - timedelta(days=10), expires_at=T0 - timedelta(days=1))

    assert consent_state([ended], CALLER, "marketing", T0) == (ConsentState.NONE, "no_record", None)


def test_a_consent_issued_after_the_call_does_not_cover_it():
    future = consent(issued=T0 + timedelta(hours=1))

    assert consent_state([future], CALLER, "marketing", T0)[1] == "consent_not_yet_valid"


# --- properties ---------------------------------------------------------------------------
windows = st.builds(
    lambda first, length, start, span: CallingWindow(frozenset((first + i) % 7 for i in range(length)), start, min(start + span, 1440)),
    st.integers(0, 6), st.integers(1, 7), st.integers(0, 1439), st.integers(1, 1440),
)
instants = st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2035, 12, 31), timezones=st.just(timezone.utc))
zones = st.sampled_from(["America/New_York", "America/Los_Angeles", "Europe/Berlin", "Asia/Kolkata", "Australia/Lord_Howe"])


@given(st.lists(windows, min_size=1, max_size=5))
def test_the_text_form_of_any_hours_reads_back_as_the_same_hours(parts):
    hours = CallingHours(tuple(parts))

    assert CallingHours.parse(hours.describe()) == hours


@settings(max_examples=300)
@given(st.lists(windows, min_size=1, max_size=4), instants, zones)
def test_a_call_is_inside_exactly_when_its_local_weekday_and_minute_fall_in_a_window(parts, at, zone):
    hours = CallingHours(tuple(parts))
    local = at.astimezone(ZoneInfo(zone))
    minute = local.hour * 60 + local.minute

    expected = any(local.weekday() in w.days and w.start <= minute < w.end for w in parts)

    assert hours.allows(local) is expected


@settings(max_examples=200)
@given(st.lists(windows, min_size=1, max_size=3), windows, instants, zones)
def test_adding_a_window_never_forbids_a_call_that_was_allowed(parts, extra, at, zone):
    local = at.astimezone(ZoneInfo(zone))

    before = CallingHours(tuple(parts)).allows(local)
    after = CallingHours((*parts, extra)).allows(local)

    assert after or not before


@settings(max_examples=200)
@given(instants, st.sampled_from(["marketing", "marketing.loans", "fraud", "legitimate", ""]), st.booleans())
def test_only_marketing_calls_are_ever_blocked_and_a_refused_marketing_call_always_is(at, category, refused):
    records = [refusal(issued=at - timedelta(days=1))] if refused else []

    check = decide(records, CallFacts(CALLER, CALLEE, at, category))

    marketing = category.startswith("marketing")
    assert check.marketing is marketing
    assert check.blocks is (marketing and (refused or not check.within_allowed_hours))
