"""Properties of number normalisation and of reconciliation v1, checked with
hypothesis over generated numbers, arbitrary text and generated evidence."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import phonenumbers
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from numrep.core.categories import CATEGORIES
from numrep.core.errors import InvalidNumber
from numrep.core.model import Action, Evidence, FlagTally, Label, Participant, Role
from numrep.core.numbers import is_e164, normalize, normalize_each
from numrep.core.reconcile import ReconcileConfig, RoleWeightedReconciler

NUMBERS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
FUZZ = settings(max_examples=400, deadline=None)
EVIDENCE = settings(max_examples=120, deadline=None)

E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")


# --- numbers ----------------------------------------------------------------------------
def _valid(e164: str) -> bool:
    return phonenumbers.is_valid_number(phonenumbers.parse(e164))


US_AREA_CODES = ["201", "202", "206", "212", "213", "305", "312", "404", "415", "512", "617", "702", "713", "818", "917"]


@st.composite
def us_numbers(draw) -> tuple[str, str, str]:
    """(area code, exchange, line) of a valid US number."""
    npa = draw(st.sampled_from(US_AREA_CODES))
    nxx = draw(st.integers(2, 9)).__str__() + draw(st.text("0123456789", min_size=2, max_size=2))
    line = draw(st.text("0123456789", min_size=4, max_size=4))
    assume(_valid(f"+1{npa}{nxx}{line}"))
    return npa, nxx, line


@st.composite
def gb_mobiles(draw) -> str:
    """The 10-digit national significant number of a valid UK mobile (7xxx xxxxxx)."""
    nsn = "7" + draw(st.sampled_from("456789")) + draw(st.text("0123456789", min_size=8, max_size=8))
    assume(_valid(f"+44{nsn}"))
    return nsn


US_NATIONAL = [
    "({a}) {e}-{l}", "{a}-{e}-{l}", "{a}.{e}.{l}", "{a} {e} {l}", "{a}{e}{l}", "1 {a} {e} {l}", "1-{a}-{e}-{l}", "  ({a}) {e}-{l}  ",
]
US_INTERNATIONAL = ["+1{a}{e}{l}", "+1 {a} {e} {l}", "+1 ({a}) {e}-{l}", "+1-{a}-{e}-{l}"]


@NUMBERS
@given(us_numbers(), st.sampled_from(US_NATIONAL), st.sampled_from(US_INTERNATIONAL))
def test_national_and_e164_forms_of_a_us_number_normalise_alike(parts, national, international):
    a, e, l = parts
    expected = f"+1{a}{e}{l}"
    assert normalize(national.format(a=a, e=e, l=l)) == expected
    assert normalize(international.format(a=a, e=e, l=l)) == expected
    assert normalize(national.format(a=a, e=e, l=l), "US") == normalize(international.format(a=a, e=e, l=l), "GB")


@NUMBERS
@given(gb_mobiles(), st.sampled_from(["0{n}", "0{n4} {n6}", "(0{n4}) {n6}", "0{n4}-{n6}"]), st.sampled_from(["+44{n}", "+44 {n4} {n6}", "+44 (0){n4} {n6}"]))
def test_national_and_e164_forms_of_a_gb_number_normalise_alike(nsn, national, international):
    fields = {"n": nsn, "n4": nsn[:4], "n6": nsn[4:]}
    expected = f"+44{nsn}"
    assert normalize(national.format(**fields), "GB") == expected
    assert normalize(international.format(**fields)) == expected  # a '+' form needs no region
    assert normalize(international.format(**fields), "US") == expected
    assert normalize("011 44 {n4} {n6}".format(**fields), "US") == expected  # dialled from the US
    assert normalize("00 44 {n4} {n6}".format(**fields), "DE") == expected  # dialled from Germany


@NUMBERS
@given(st.one_of(us_numbers().map(lambda p: "({}) {}-{}".format(*p)), gb_mobiles().map(lambda n: f"+44 {n}")))
def test_normalising_a_normalised_number_changes_nothing(raw):
    once = normalize(raw)
    assert normalize(once) == once
    assert is_e164(once)


PHONEISH = st.text(alphabet="0123456789+()-. #*x", max_size=30)
REGIONS = st.sampled_from(["US", "GB", "DE", "FR", "IN", "BR", "JP"])


@FUZZ
@given(st.one_of(st.text(), PHONEISH, st.text(max_size=80).map(lambda t: "+" + t)), REGIONS)
def test_any_text_either_normalises_to_e164_or_raises_invalid_number(text, region):
    try:
        result = normalize(text, region)
    except InvalidNumber as exc:
        assert exc.reason == "invalid_number"
        assert exc.message.startswith("invalid phone number")
        return
    assert E164.match(result), result
    assert result.isascii()
    assert normalize(result) == result  # idempotent
    assert normalize(result, region) == result


@FUZZ
@given(st.one_of(st.text(), PHONEISH))
def test_is_e164_is_true_exactly_for_normalised_numbers(text):
    try:
        expected = normalize(text) == text
    except InvalidNumber:
        expected = False
    assert is_e164(text) is expected


@FUZZ
@given(st.lists(st.one_of(st.text(), PHONEISH, st.text(min_size=120, max_size=300)), max_size=8), REGIONS)
def test_normalize_each_answers_what_normalize_answers_for_each_number(texts, region):
    def one(text: str) -> str | tuple[str, str]:
        try:
            return normalize(text, region)
        except InvalidNumber as exc:
            return (exc.reason, exc.message)

    each = normalize_each(texts, region)

    assert [r if isinstance(r, str) else (r.reason, r.message) for r in each] == [one(t) for t in texts]


def _generic_parse(text: str) -> str:
    """What phonenumbers' general parser makes of ``text`` (the path every other form takes)."""
    try:
        parsed = phonenumbers.parse(text.strip(), None)
    except phonenumbers.NumberParseException:
        return "unparsable"
    if not phonenumbers.is_possible_number(parsed):
        return "impossible"
    if not phonenumbers.is_valid_number(parsed):
        return "invalid"
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


NANP_DIGITS = st.text("0123456789", min_size=9, max_size=9)


@FUZZ
@given(st.one_of(
    st.tuples(st.sampled_from("23456789"), NANP_DIGITS).map("".join),
    us_numbers().map("".join),
), st.sampled_from(["", " ", "  \t"]))
def test_a_north_american_e164_number_normalises_as_the_general_parser_says(national, padding):
    text = f"{padding}+1{national}{padding}"
    expected = _generic_parse(text)
    try:
        assert normalize(text) == expected
    except InvalidNumber as exc:
        assert expected != f"+1{national}"
        assert exc.message.endswith({"impossible": "wrong length for its country)",
                                     "invalid": "not a valid number in its numbering plan"}[expected])


def test_every_north_american_area_code_normalises_as_the_general_parser_says():
    """All 800 area codes 200-999, assigned or not, with exchanges across their range."""
    for area in range(200, 1000):
        for exchange in ("201", "355", "555", "911", "987"):
            text = f"+1{area}{exchange}0147"
            expected = _generic_parse(text)
            try:
                assert normalize(text) == expected, text
            except InvalidNumber:
                assert expected in ("impossible", "invalid"), text


def test_an_overlong_input_is_invalid_without_echoing_all_of_it():
    with pytest.raises(InvalidNumber) as caught:
        normalize("1" * 10_000)
    assert "too long" in caught.value.message
    assert len(caught.value.message) < 200


# --- reconciliation ----------------------------------------------------------------------
NOW = datetime(2025, 6, 1, tzinfo=timezone.utc)
NUMBER = "+12025550143"
PARTICIPANTS = {
    "ftc": Participant("ftc", Role.REGULATOR),
    "carrier-a": Participant("carrier-a", Role.CARRIER),
    "carrier-b": Participant("carrier-b", Role.CARRIER),
    "handset-co": Participant("handset-co", Role.HANDSET_VENDOR),
    "app-a": Participant("app-a", Role.APP_VENDOR),
    "app-b": Participant("app-b", Role.APP_VENDOR),
}
TRUSTED = sorted(PARTICIPANTS)
ISSUERS = TRUSTED + ["unregistered"]  # an issuer the registry no longer knows counts for nothing
SPAM_CODES = sorted(code for code, c in CATEGORIES.items() if c.is_spam)
ALL_CODES = sorted(CATEGORIES)


def reconciler() -> RoleWeightedReconciler:
    return RoleWeightedReconciler(PARTICIPANTS.get)


def make_label(index: int, issuer: str, code: str, confidence: float, age_days: float, ttl_days: float) -> Label:
    issued = NOW - timedelta(days=age_days)
    return Label(
        id=f"{issuer}/j{index}",
        issuer=issuer,
        number=NUMBER,
        category=code,
        confidence=confidence,
        issued_at=issued,
        expires_at=issued + timedelta(days=ttl_days),
        token=f"token-{index}",
    )


confidences = st.floats(0.0, 1.0, allow_nan=False)
label_specs = st.tuples(st.sampled_from(ISSUERS), st.sampled_from(ALL_CODES), confidences,
                        st.floats(0.0, 300.0), st.floats(1.0, 400.0))


@st.composite
def evidence(draw, min_labels: int = 0) -> Evidence:
    specs = draw(st.lists(label_specs, min_size=min_labels, max_size=8))
    labels = tuple(make_label(i, *spec) for i, spec in enumerate(specs))
    apps = draw(st.lists(st.sampled_from(["app-a", "app-b", "unregistered"]), unique=True, max_size=2))
    tallies = tuple(
        FlagTally(
            app,
            tuple(sorted(draw(st.dictionaries(st.sampled_from(ALL_CODES), st.integers(1, 50), min_size=1, max_size=3)).items())),
            NOW - timedelta(days=draw(st.floats(0.0, 200.0))),
        )
        for app in apps
    )
    return Evidence(NUMBER, labels, tallies)


def decision(verdict):
    return verdict.action, verdict.spam_probability, verdict.confidence


@EVIDENCE
@given(st.data())
def test_the_order_of_labels_and_flags_does_not_change_the_verdict(data):
    base = data.draw(evidence())
    shuffled = Evidence(NUMBER, tuple(data.draw(st.permutations(base.labels))), tuple(data.draw(st.permutations(base.flags))))

    assert reconciler().reconcile(shuffled, NOW) == reconciler().reconcile(base, NOW)


@EVIDENCE
@given(st.data())
def test_a_duplicate_label_changes_no_decision(data):
    base = data.draw(evidence(min_labels=1))
    duplicate = data.draw(st.sampled_from(base.labels))
    doubled = Evidence(NUMBER, base.labels + (duplicate,), base.flags)

    assert decision(reconciler().reconcile(doubled, NOW)) == decision(reconciler().reconcile(base, NOW))


@EVIDENCE
@given(st.data())
def test_repeating_a_claim_under_a_new_id_changes_no_decision(data):
    base = data.draw(evidence(min_labels=1))
    original = data.draw(st.sampled_from(base.labels))
    repeat = Label(f"{original.issuer}/again", original.issuer, NUMBER, original.category, original.confidence,
                   original.issued_at, original.expires_at, "token-again")

    repeated = Evidence(NUMBER, base.labels + (repeat,), base.flags)

    assert decision(reconciler().reconcile(repeated, NOW)) == decision(reconciler().reconcile(base, NOW))


@EVIDENCE
@given(evidence(), st.sampled_from(TRUSTED), st.sampled_from(SPAM_CODES), confidences, st.floats(0.0, 300.0))
def test_adding_a_spam_label_from_a_trusted_participant_never_lowers_spam_probability(base, issuer, code, confidence, age):
    added = make_label(99, issuer, code, confidence, age, 365.0)

    before = reconciler().reconcile(base, NOW)
    after = reconciler().reconcile(Evidence(NUMBER, base.labels + (added,), base.flags), NOW)

    assert after.spam_probability >= before.spam_probability


@EVIDENCE
@given(evidence(), st.sampled_from(ISSUERS), confidences, st.floats(0.0, 300.0))
def test_adding_a_legitimate_label_never_raises_spam_probability_of_a_reported_number(base, issuer, confidence, age):
    before = reconciler().reconcile(base, NOW)
    assume(before.action is not Action.UNKNOWN)  # see the xfail below for a number nobody reported
    added = make_label(99, issuer, "legitimate", confidence, age, 365.0)

    after = reconciler().reconcile(Evidence(NUMBER, base.labels + (added,), base.flags), NOW)

    assert after.spam_probability <= before.spam_probability


def test_adding_a_legitimate_label_to_a_number_nobody_reported_does_not_raise_spam_probability():
    before = reconciler().reconcile(Evidence(NUMBER), NOW)
    after = reconciler().reconcile(Evidence(NUMBER, (make_label(1, "ftc", "legitimate", 1.0, 1.0, 90.0),)), NOW)

    assert after.spam_probability <= before.spam_probability


def test_a_participant_repeating_a_label_does_not_change_the_verdicts_category():
    carrier = make_label(1, "carrier-a", "marketing", 1.0, 1.0, 90.0)  # weight 0.8
    app = make_label(2, "app-a", "fraud", 1.0, 1.0, 90.0)  # weight 0.5
    app_again = make_label(3, "app-a", "fraud", 1.0, 1.0, 90.0)

    once = reconciler().reconcile(Evidence(NUMBER, (carrier, app)), NOW)
    twice = reconciler().reconcile(Evidence(NUMBER, (carrier, app, app_again)), NOW)

    assert once.category == "marketing"
    assert twice.category == once.category


@EVIDENCE
@given(evidence())
def test_a_verdict_is_well_formed(base):
    verdict = reconciler().reconcile(base, NOW, previous_version=4)

    assert 0.0 <= verdict.spam_probability <= 1.0
    assert 0.0 <= verdict.confidence <= 1.0
    assert verdict.version == 5
    assert verdict.expires_at > NOW
    assert verdict.category == "" or verdict.category in CATEGORIES
    if verdict.action is Action.UNKNOWN:
        assert verdict.spam_probability == ReconcileConfig().prior_spam_probability and verdict.category == ""
    if verdict.action is Action.BLOCK:
        assert verdict.spam_probability >= 0.9 and verdict.confidence >= 0.6
    if verdict.action in (Action.WARN, Action.BLOCK):
        assert CATEGORIES[verdict.category].is_spam
    assert [c.weight for c in verdict.contributions] == sorted((c.weight for c in verdict.contributions), reverse=True)
