"""The SDK's SessionKeeper on a clock the test moves: when a client opens and
renews its call session, how long it waits after a failure, and which token a
call carries meanwhile. (The carrier clients using it are tested against a real
exchange in test_carrier_sessions.py.)"""

from __future__ import annotations

import datetime as dt

import grpc
import pytest

from numrep.core.model import Role
from numrep.signing.jws import header_type
from numrep.signing.keys import generate_identity
from numrep.signing.sessions import CALL_TOKEN_TYPE
from numrep.signing.tokens import TOKEN_TYPE
from numrep.v1 import registry_pb2
from numrep_client._sessions import RETRY_AFTER, RETRY_UNSUPPORTED, SessionKeeper

from sdk_testkit import FakeClock

LIFETIME = 1800.0


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start=dt.datetime(2026, 12, 7, tzinfo=dt.timezone.utc).timestamp())


@pytest.fixture
def keeper(clock) -> SessionKeeper:
    return SessionKeeper(generate_identity("carrier-north", Role.CARRIER, "EdDSA"), "numrep", clock=clock)


def reply(clock: FakeClock, lifetime: float = LIFETIME, session_id: str = "s1") -> registry_pb2.CallSession:
    answer = registry_pb2.CallSession(session_id=session_id, key=b"k" * 32, participant_id="carrier-north", kid="kid")
    answer.expires_at.FromSeconds(int(clock() + lifetime))
    return answer


def test_without_a_session_calls_are_signed_and_one_open_is_asked_for(keeper):
    assert header_type(keeper.token()) == TOKEN_TYPE
    assert keeper.due() is True
    assert keeper.due() is False  # once, until it is settled
    assert keeper.opening


def test_an_open_session_mints_call_tokens_until_its_last_quarter_then_asks_for_a_renewal(keeper, clock):
    assert keeper.due()
    keeper.opened(reply(clock))

    assert header_type(keeper.token()) == CALL_TOKEN_TYPE
    clock.advance(LIFETIME * 0.74)
    assert keeper.due() is False
    clock.advance(LIFETIME * 0.02)
    assert keeper.due() is True
    assert header_type(keeper.token()) == CALL_TOKEN_TYPE  # the old session serves while the new one opens
    keeper.opened(reply(clock, session_id="s2"))
    assert keeper.session.session_id == "s2"


def test_a_session_about_to_end_is_not_used(keeper, clock):
    assert keeper.due()
    keeper.opened(reply(clock, lifetime=10))
    clock.advance(9.5)

    assert keeper.session is None
    assert header_type(keeper.token()) == TOKEN_TYPE


@pytest.mark.parametrize("code, pause", [
    (grpc.StatusCode.UNAVAILABLE, RETRY_AFTER),
    (None, RETRY_AFTER),  # not even sent (a closed channel, an interrupted open)
    (grpc.StatusCode.UNIMPLEMENTED, RETRY_UNSUPPORTED),  # an exchange without sessions
    (grpc.StatusCode.FAILED_PRECONDITION, RETRY_UNSUPPORTED),  # plaintext from another host
])
def test_after_a_failed_open_the_client_signs_and_asks_again_after_a_pause(keeper, clock, code, pause):
    assert keeper.due()
    keeper.failed(code, "details")

    assert not keeper.opening
    assert header_type(keeper.token()) == TOKEN_TYPE
    clock.advance(pause - 1)
    assert keeper.due() is False
    clock.advance(2)
    assert keeper.due() is True


def test_a_refused_session_is_dropped_and_another_asked_for(keeper, clock):
    assert keeper.due()
    keeper.opened(reply(clock))

    keeper.refused()

    assert keeper.session is None
    assert header_type(keeper.token()) == TOKEN_TYPE
    assert keeper.due() is True


def test_the_session_key_is_not_in_its_repr(keeper, clock):
    assert keeper.due()
    keeper.opened(reply(clock))

    assert "kkkk" not in repr(keeper.session)
