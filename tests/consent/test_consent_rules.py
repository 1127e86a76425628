"""Each consent rule, end to end: signed records in over ConsentService, a
Lookup with the callee in its call context out, on both stores."""

from __future__ import annotations

from datetime import timedelta

from consent_testkit import (
    ACCEPTED, BLOCK, CALLEE, CALLER, CONSENTED, NEW_YORK, NONE, OTHER_CALLER, PROOF, REFUSED, SATURDAY, WEDNESDAY,
    WEST_CALLEE, at_local, daytime, late_evening, now_utc,
)
from numrep.signing.consent import sign_consent, sign_refusal
from numrep.signing.labels import sign_label
from numrep.api.convert import timestamp
from numrep.v1 import common_pb2, lookup_pb2


def consent(ledger, scope=("marketing",), **options):
    token = sign_consent(ledger.federation.carrier, CALLER, options.pop("callee", CALLEE), list(scope), PROOF, **options)
    [result] = ledger.register(token)
    assert result.status == ACCEPTED, result.message
    return result.id


def refusal(ledger, callers=CALLER, **options):
    [result] = ledger.refuse(sign_refusal(ledger.federation.app, options.pop("callee", CALLEE), callers, **options))
    assert result.status == ACCEPTED, result.message
    return result.id


# --- refusals ------------------------------------------------------------------------
def test_batch_lookup_answers_each_call_context_as_lookup_does(ledger):
    refusal(ledger)
    marketing = lookup_pb2.CallContext(callee=CALLEE, call_category="marketing.loans", call_time=timestamp(daytime()))
    bad_callee = lookup_pb2.CallContext(callee="555", call_category="marketing.loans")
    carrier = ledger.client(ledger.federation.carrier)

    plain, to_refuser, to_nobody = carrier.batch_lookup([CALLER, CALLER, CALLER], [None, marketing, bad_callee])

    assert plain.verdict.action != BLOCK and not plain.verdict.HasField("consent")
    assert to_refuser.verdict.action == BLOCK
    assert to_refuser.verdict.consent.state == REFUSED and to_refuser.verdict.consent.block_reason == "callee_refused"
    single = ledger.lookup(category="marketing.loans")
    assert (to_refuser.verdict.consent, to_refuser.verdict.explanation) == (single.consent, single.explanation), "as Lookup answers"
    assert to_nobody.error_code == 3 and "'555'" in to_nobody.error_message  # INVALID_ARGUMENT for that entry only


def test_a_marketing_call_to_a_callee_who_refused_is_blocked(ledger):
    refused = refusal(ledger)

    verdict = ledger.lookup(category="marketing.loans")

    assert verdict.action == BLOCK
    assert verdict.consent.state == REFUSED
    assert verdict.consent.blocks and verdict.consent.block_reason == "callee_refused"
    assert verdict.consent.record_id == refused
    assert verdict.consent.within_allowed_hours


def test_a_refusal_blocks_whatever_the_callers_reputation(ledger):
    carrier = ledger.client(ledger.federation.carrier)
    carrier.publish([sign_label(ledger.federation.carrier, CALLER, "legitimate", 1.0)])
    assert carrier.lookup(CALLER).action == common_pb2.ACTION_ALLOW
    refusal(ledger)

    assert ledger.lookup(category="marketing.insurance").action == BLOCK


def test_the_callers_marketing_reputation_makes_the_call_marketing_when_the_context_declares_nothing(ledger):
    ledger.client(ledger.federation.carrier).publish([sign_label(ledger.federation.carrier, CALLER, "marketing.robocall", 0.9)])
    refusal(ledger)

    verdict = ledger.lookup(category="")

    assert verdict.category == "marketing.robocall"
    assert verdict.consent.marketing
    assert verdict.action == BLOCK and verdict.consent.block_reason == "callee_refused"


def test_a_refusal_does_not_affect_a_call_that_is_not_marketing(ledger):
    refusal(ledger)

    verdict = ledger.lookup(category="")

    assert verdict.consent.state == REFUSED
    assert not verdict.consent.marketing and not verdict.consent.blocks
    assert verdict.action != BLOCK


def test_a_refusal_of_every_caller_covers_callers_it_does_not_name(ledger):
    refusal(ledger, callers="*")

    verdict = ledger.lookup(caller=OTHER_CALLER)

    assert verdict.consent.state == REFUSED and verdict.action == BLOCK


def test_a_refusal_of_one_caller_leaves_other_callers_alone(ledger):
    refusal(ledger, callers=CALLER)

    verdict = ledger.lookup(caller=OTHER_CALLER)

    assert verdict.consent.state == NONE and verdict.consent.reason == "no_record"
    assert verdict.action != BLOCK


def test_a_refusal_after_a_consent_beats_it(ledger):
    now = now_utc()
    consent(ledger, issued_at=now - timedelta(hours=2))
    refused = refusal(ledger, issued_at=now - timedelta(hours=1))

    verdict = ledger.lookup()

    assert verdict.consent.state == REFUSED and verdict.consent.record_id == refused
    assert verdict.action == BLOCK


def test_a_consent_given_after_a_refusal_reopens_calls(ledger):
    now = now_utc()
    refusal(ledger, issued_at=now - timedelta(hours=2))
    consented = consent(ledger, issued_at=now - timedelta(hours=1))

    verdict = ledger.lookup()

    assert verdict.consent.state == CONSENTED and verdict.consent.record_id == consented
    assert not verdict.consent.blocks


def test_a_consent_issued_before_a_refusal_does_not_reopen_calls_even_when_registered_later(ledger):
    now = now_utc()
    refusal(ledger, issued_at=now - timedelta(hours=1))
    consent(ledger, issued_at=now - timedelta(hours=2))  # registered after, issued before

    verdict = ledger.lookup()

    assert verdict.consent.state == REFUSED and verdict.action == BLOCK


def test_a_revoked_refusal_no_longer_blocks(ledger):
    refused = refusal(ledger)
    [revoked] = ledger.client(ledger.federation.app).revoke_consent([refused])
    assert revoked.status == ACCEPTED

    verdict = ledger.lookup()

    assert verdict.consent.state == NONE and verdict.action != BLOCK


# --- consent and scope -----------------------------------------------------------------
def test_a_consent_in_scope_makes_the_call_consented_and_not_blocked_for_consent_reasons(ledger):
    consented = consent(ledger, scope=("marketing.loans", "marketing.insurance"))

    verdict = ledger.lookup(category="marketing.loans")

    assert verdict.consent.state == CONSENTED
    assert verdict.consent.reason == "consented" and verdict.consent.record_id == consented
    assert not verdict.consent.blocks and verdict.consent.block_reason == ""
    assert verdict.action == common_pb2.ACTION_UNKNOWN  # the caller's reputation alone decides


def test_a_consent_for_marketing_covers_every_marketing_sub_category(ledger):
    consent(ledger, scope=("marketing",))

    assert ledger.lookup(category="marketing.travel").consent.state == CONSENTED


def test_a_consent_does_not_cover_a_category_outside_its_scope(ledger):
    consent(ledger, scope=("marketing.insurance",))

    verdict = ledger.lookup(category="marketing.loans")

    assert verdict.consent.state == NONE and verdict.consent.reason == "consent_out_of_scope"


def test_a_consent_for_one_caller_does_not_cover_another(ledger):
    consent(ledger)

    assert ledger.lookup(caller=OTHER_CALLER).consent.reason == "no_record"


def test_an_enterprise_consent_covers_each_of_its_numbers(ledger):
    token = sign_consent(ledger.federation.carrier, [CALLER, OTHER_CALLER], CALLEE, ["marketing"], PROOF, enterprise="acme-loans")
    assert ledger.register(token)[0].status == ACCEPTED

    assert ledger.lookup(caller=CALLER).consent.state == CONSENTED
    assert ledger.lookup(caller=OTHER_CALLER).consent.state == CONSENTED


def test_an_expired_consent_counts_as_none(ledger):
    now = now_utc()
    consent(ledger, issued_at=now - timedelta(days=10), lifetime=timedelta(days=11))

    before = ledger.lookup(at=now + timedelta(hours=1))
    after = ledger.lookup(at=now + timedelta(days=2))

    assert before.consent.state == CONSENTED
    assert after.consent.state == NONE and after.consent.reason == "consent_expired"


def test_a_revoked_consent_counts_as_none(ledger):
    consented = consent(ledger)
    [revoked] = ledger.client(ledger.federation.carrier).revoke_consent([consented])
    assert revoked.status == ACCEPTED

    verdict = ledger.lookup()

    assert verdict.consent.state == NONE and verdict.consent.reason == "consent_revoked"


def test_only_the_issuer_or_the_regulator_may_revoke_a_record(ledger):
    consented = consent(ledger)

    [by_app] = ledger.client(ledger.federation.app).revoke_consent([consented])
    [by_regulator] = ledger.client(ledger.federation.regulator).revoke_consent([consented])
    [again] = ledger.client(ledger.federation.carrier).revoke_consent([consented])

    assert by_app.reason == "not_owner"
    assert by_regulator.status == ACCEPTED
    assert again.reason == "already_revoked"


# --- calling hours ---------------------------------------------------------------------
def test_a_marketing_call_outside_the_default_hours_is_blocked(ledger):
    verdict = ledger.lookup(at=late_evening())

    assert verdict.consent.state == NONE
    assert not verdict.consent.within_allowed_hours
    assert verdict.consent.allowed_hours == "mon-sun 08:00-21:00"
    assert verdict.action == BLOCK and verdict.consent.block_reason == "outside_calling_hours"


def test_a_marketing_call_inside_the_default_hours_is_not_blocked(ledger):
    verdict = ledger.lookup(at=daytime())

    assert verdict.consent.within_allowed_hours and not verdict.consent.blocks
    assert verdict.action != BLOCK


def test_a_call_that_is_not_marketing_is_not_held_to_calling_hours(ledger):
    verdict = ledger.lookup(at=late_evening(), category="")

    assert not verdict.consent.within_allowed_hours
    assert not verdict.consent.blocks and verdict.action != BLOCK


def test_a_consents_own_hours_replace_the_default_window(ledger):
    consent(ledger, hours="mon-fri 09:00-17:00")

    weekday_evening = ledger.lookup(at=at_local(NEW_YORK, WEDNESDAY, 18))
    saturday_morning = ledger.lookup(at=at_local(NEW_YORK, SATURDAY, 10))
    weekday_morning = ledger.lookup(at=at_local(NEW_YORK, WEDNESDAY, 9, 30))

    assert weekday_evening.action == BLOCK and weekday_evening.consent.state == CONSENTED
    assert weekday_evening.consent.block_reason == "outside_calling_hours"
    assert saturday_morning.action == BLOCK
    assert weekday_morning.action != BLOCK and weekday_morning.consent.allowed_hours == "mon-fri 09:00-17:00"


def test_hours_are_judged_in_the_callees_time_zone(ledger):
    nine_in_new_york = at_local(NEW_YORK, WEDNESDAY, 9)  # 06:00 in San Francisco

    east = ledger.lookup(callee=CALLEE, at=nine_in_new_york)
    west = ledger.lookup(callee=WEST_CALLEE, at=nine_in_new_york)

    assert east.consent.within_allowed_hours and east.consent.time_zones == ["America/New_York"]
    assert not west.consent.within_allowed_hours and west.consent.time_zones == ["America/Los_Angeles"]
    assert west.action == BLOCK and east.action != BLOCK


def test_a_time_zone_named_in_the_consent_wins_over_the_numbers(ledger):
    consent(ledger, callee=WEST_CALLEE, tz="America/New_York")

    verdict = ledger.lookup(callee=WEST_CALLEE, at=at_local(NEW_YORK, WEDNESDAY, 9))

    assert verdict.consent.time_zones == ["America/New_York"] and verdict.consent.within_allowed_hours
    assert verdict.action != BLOCK


# --- GetConsentState -----------------------------------------------------------------------
def test_get_consent_state_answers_as_a_lookup_would(ledger):
    consented = consent(ledger, scope=("marketing.loans",))

    in_scope = ledger.state(category="marketing.loans")
    out_of_scope = ledger.state(category="marketing.travel")
    unknown = ledger.state(caller=OTHER_CALLER)

    assert (in_scope.state, in_scope.record_id) == (CONSENTED, consented)
    assert out_of_scope.reason == "consent_out_of_scope"
    assert unknown.state == NONE and unknown.reason == "no_record"
