"""The carrier client keeps a call session open (numrep.signing.sessions): its
calls carry MAC'd call tokens instead of a signature each. Opening one is never
on a call's path, and without a session the client signs, as before."""

from __future__ import annotations

import asyncio
import time
from typing import Callable

import pytest

from numrep.config import ServerConfig
from numrep.core.pseudonym import Pseudonymizer
from numrep.server import start_server
from numrep_client import AsyncCarrierClient, CarrierClient

RELAXED = 2.0


def numbers(count: int, start: int = 100) -> list[str]:
    """Distinct numbers, so that no check is answered from the client's cache."""
    return [f"+1202555{n:04d}" for n in range(start, start + count)]


@pytest.fixture
def carrier(server, federation):
    clients: list[CarrierClient] = []

    def make(target: str | None = None, **options: object) -> CarrierClient:
        client = CarrierClient(target or server.address, federation.carrier, deadline=RELAXED, **options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def until(condition: Callable[[], bool], seconds: float = 10.0) -> bool:
    stop = time.monotonic() + seconds
    while time.monotonic() < stop:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def test_after_wait_ready_every_check_carries_a_call_token(carrier, proofs):
    client = carrier()
    assert client.wait_ready()
    opened = list(proofs)

    decisions = [client.check(n) for n in numbers(5)]

    assert opened == ["token"]  # OpenSession, with a signed token
    assert proofs[1:] == ["session"] * 5
    assert [d.source for d in decisions] == ["exchange"] * 5
    assert client.stats().rpcs == 5


def test_without_wait_ready_the_first_check_is_signed_and_opens_a_session_in_the_background(carrier, proofs):
    client = carrier()

    first = client.check(numbers(1)[0])
    assert until(lambda: client._core.sessions.session is not None)
    later = [client.check(n) for n in numbers(3, start=200)]

    assert first.source == "exchange" and [d.source for d in later] == ["exchange"] * 3
    assert proofs[0] == "token" and proofs[-3:] == ["session"] * 3
    assert proofs.count("token") == 2  # the first check, and OpenSession


def test_a_refused_session_costs_one_call_then_the_client_signs_and_opens_another(server, carrier, proofs, monkeypatch):
    """The exchange's secret changed (a new deployment): its next call token is refused."""
    client = carrier()
    assert client.wait_ready()
    monkeypatch.setattr(server.exchange, "pseudonym", Pseudonymizer(b"the exchange's new secret"))

    refused = client.check(numbers(1)[0])
    signed = client.check(numbers(1, start=300)[0])
    assert until(lambda: client._core.sessions.session is not None)
    again = client.check(numbers(1, start=400)[0])

    assert (refused.source, refused.reason) == ("fail_open", "unauthenticated")
    assert signed.source == "exchange" and again.source == "exchange"
    assert proofs[-1] == "session"


def test_revoking_the_key_ends_the_session_as_it_ends_signed_tokens(server, carrier, connect, federation):
    client = carrier()
    assert client.wait_ready()

    connect(federation.carrier).revoke_key("carrier-north", federation.carrier.kid)
    decision = client.check(numbers(1)[0])

    assert (decision.source, decision.reason) == ("fail_open", "unauthenticated")
    assert "revoked" in decision.detail


def test_with_sessions_off_every_check_is_signed(carrier, proofs):
    client = carrier(sessions=False)
    assert client.wait_ready()

    [client.check(n) for n in numbers(3)]

    assert proofs == ["token"] * 3


def test_an_exchange_without_sessions_is_asked_once_and_calls_go_signed(loop_thread, server, carrier, proofs, tmp_path):
    """A front end serving only LookupService: OpenSession is UNIMPLEMENTED."""
    lookup_only = loop_thread.run(start_server(ServerConfig(listen="127.0.0.1:0", data_dir=tmp_path / "lookup-only",
                                                            services=("lookup",)), exchange=server.exchange))
    try:
        client = carrier(lookup_only.address)
        assert client.wait_ready()
        decisions = [client.check(n) for n in numbers(3)]
        time.sleep(0.2)  # any background attempt would have been made by now
    finally:
        loop_thread.run(lookup_only.stop(0))

    assert [d.source for d in decisions] == ["exchange"] * 3
    assert proofs == ["token"] * 3  # the refused OpenSession never reached authentication
    assert client._core.sessions.session is None and not client._core.sessions.due()


def test_the_async_client_keeps_a_session_too(server, federation, proofs):
    async def run() -> list[str]:
        async with AsyncCarrierClient(server.address, federation.carrier, deadline=RELAXED) as client:
            first = await client.check(numbers(1)[0])
            for _ in range(500):
                if client._core.sessions.session is not None:
                    break
                await asyncio.sleep(0.01)
            later = [await client.check(n) for n in numbers(3, start=200)]
            return [first.source, *(d.source for d in later)]

    assert asyncio.run(run()) == ["exchange"] * 4
    assert proofs[0] == "token" and proofs[-3:] == ["session"] * 3


@pytest.fixture
def silent_sessions(loop_thread):
    """A front end that answers Lookup at once and never answers OpenSession."""
    import grpc

    from numrep.v1 import common_pb2, lookup_pb2, registry_pb2

    async def lookup(request, context):  # type: ignore[no-untyped-def]
        return common_pb2.Verdict(number=request.number)

    async def never(request, context):  # type: ignore[no-untyped-def]
        await asyncio.Event().wait()

    async def start():  # type: ignore[no-untyped-def]
        server = grpc.aio.server()
        server.add_generic_rpc_handlers((
            grpc.method_handlers_generic_handler("numrep.v1.LookupService", {"Lookup": grpc.unary_unary_rpc_method_handler(
                lookup, lookup_pb2.LookupRequest.FromString, common_pb2.Verdict.SerializeToString)}),
            grpc.method_handlers_generic_handler("numrep.v1.RegistryService", {"OpenSession": grpc.unary_unary_rpc_method_handler(
                never, registry_pb2.OpenSessionRequest.FromString, registry_pb2.CallSession.SerializeToString)}),
        ))
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        return server, f"127.0.0.1:{port}"

    server, address = loop_thread.run(start())
    yield address
    loop_thread.run(server.stop(0))


def test_wait_ready_keeps_to_its_timeout_when_the_exchange_does_not_answer_opensession(carrier, silent_sessions):
    client = carrier(silent_sessions)

    started = time.monotonic()
    assert client.wait_ready(timeout=1.5)
    waited = time.monotonic() - started

    assert waited < 4.0  # the open got what was left of 1.5 s, not its own 5 s
    assert not client._core.sessions.opening and client._core.sessions.session is None
    assert client.check(numbers(1)[0]).source == "exchange"  # signed, and answered


def test_an_interrupted_async_open_does_not_leave_the_client_without_sessions_for_good(federation, silent_sessions):
    async def run() -> tuple[bool, str]:
        client = AsyncCarrierClient(silent_sessions, federation.carrier, deadline=RELAXED)
        try:
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(client.wait_ready(timeout=5.0), 0.3)
            decision = await client.check(numbers(1)[0])
            return client._core.sessions.opening, decision.source
        finally:
            await client.close()

    opening, source = asyncio.run(run())

    assert opening is False  # settled as a failure: asked again after the pause
    assert source == "exchange"
