"""What a token for one call must say (``numrep.signing.tokens.check_token_claims``),
signed or MAC'd in a call session: audience, issue and expiry times within the
clock skew, a bounded lifetime, single use. The times are judged in whole
microseconds, exactly as datetimes compare them, whether a claim is whole
seconds (what every minted token says) or a fraction; a time claim that is not
a finite number within a datetime's range is refused as ``bad_claim``."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings, strategies as st

from numrep.signing.jws import JwsRejected
from numrep.signing.tokens import ReplayCache, TokenPolicy, check_token_claims

NOW = datetime(2026, 12, 7, 10, 0, 0, 250_000, tzinfo=timezone.utc)
POLICY = TokenPolicy()


def judged(iat: object, exp: object, now: datetime = NOW) -> str:
    """``check_token_claims``'s verdict: "ok" or the rejection's reason."""
    try:
        check_token_claims({"aud": POLICY.audience, "iat": iat, "exp": exp, "jti": "j"}, "carrier", now, ReplayCache(), POLICY)
    except JwsRejected as exc:
        return exc.reason
    return "ok"


def judged_as_datetimes(iat: float, exp: float) -> str:
    """The same rules spelled out over datetimes (which hold whole microseconds)."""
    issued, expires = (datetime.fromtimestamp(v, tz=timezone.utc) for v in (iat, exp))
    if issued > NOW + POLICY.clock_skew:
        return "issued_in_future"
    if expires + POLICY.clock_skew <= NOW:
        return "expired"
    if expires - issued > POLICY.max_lifetime:
        return "lifetime_too_long"
    return "ok"


_SKEW = POLICY.clock_skew.total_seconds()
_EDGES = [NOW.timestamp() + offset for offset in (-_SKEW, _SKEW)]  # where "expired" and "in the future" begin
_NEAR = st.one_of(
    st.integers(min_value=int(NOW.timestamp()) - 400, max_value=int(NOW.timestamp()) + 400),
    st.sampled_from(_EDGES).flatmap(lambda edge: st.floats(min_value=edge - 2e-6, max_value=edge + 2e-6)),
    st.floats(min_value=NOW.timestamp() - 400, max_value=NOW.timestamp() + 400),
)


@settings(max_examples=600, deadline=None)
@given(iat=_NEAR, exp=_NEAR)
def test_times_are_judged_as_datetimes_would_judge_them(iat: float, exp: float) -> None:
    assert judged(iat, exp) == judged_as_datetimes(iat, exp)


def test_a_token_expires_when_its_expiry_plus_the_skew_is_reached() -> None:
    at_the_edge = NOW - POLICY.clock_skew
    expiry = at_the_edge.timestamp()

    assert judged(expiry - 60, expiry) == "expired"
    assert judged(expiry - 60, expiry + 1e-6) == "ok"
    assert judged(expiry - 60, expiry + 4e-7) == "expired"  # rounds to the edge's microsecond, as a datetime would


def test_whole_second_claims_at_the_edges() -> None:
    now = NOW.replace(microsecond=0)
    edge = int(now.timestamp())

    assert judged(edge - 60, edge - 30, now) == "expired"
    assert judged(edge - 60, edge - 29, now) == "ok"
    assert judged(edge + 30, edge + 60, now) == "ok"
    assert judged(edge + 31, edge + 60, now) == "issued_in_future"
    assert judged(edge, edge + 300, now) == "ok"
    assert judged(edge, edge + 301, now) == "lifetime_too_long"


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, 1e300, -1e300, 10**400, 253_402_300_800])
@pytest.mark.parametrize("claim", ["iat", "exp"])
def test_a_time_claim_that_is_not_a_finite_time_a_datetime_can_hold_is_a_bad_claim(claim: str, value: object) -> None:
    times = {"iat": NOW.timestamp(), "exp": NOW.timestamp() + 60, claim: value}

    assert judged(times["iat"], times["exp"]) == "bad_claim"


@pytest.mark.parametrize("value", [True, "1765101600", None, [1765101600]])
def test_a_time_claim_that_is_not_a_number_is_missing(value: object) -> None:
    assert judged(value, NOW.timestamp() + 60) == "missing_claim"


def test_a_token_is_used_once_until_it_would_have_expired() -> None:
    replay = ReplayCache()
    claims = {"aud": POLICY.audience, "iat": int(NOW.timestamp()), "exp": int(NOW.timestamp()) + 60, "jti": "once"}
    check_token_claims(claims, "carrier", NOW, replay, POLICY)

    with pytest.raises(JwsRejected) as again:
        check_token_claims(claims, "carrier", NOW + timedelta(seconds=80), replay, POLICY)
    check_token_claims(claims, "another-carrier", NOW, replay, POLICY)  # ids are per principal

    assert again.value.reason == "replayed"
