"""Bad input, generated: whatever a participant sends, every RPC answers with a
specific status and message (never INTERNAL or UNKNOWN), the server keeps
serving, and a rejected request stores nothing."""

from __future__ import annotations

import json
from pathlib import Path

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from numrep.config import ServerConfig
from numrep.core.model import Role
from numrep.core.pseudonym import Pseudonymizer
from numrep.exchange import Exchange, ExchangeConfig
from numrep.limits import Rate, RateLimits
from numrep.server import start_server
from numrep.signing.keys import generate_identity
from numrep.signing.labels import sign_label
from numrep.signing.tokens import mint_token
from numrep.store.sqlite import SqliteStore
from numrep.v1 import flags_pb2, flags_pb2_grpc, lookup_pb2, lookup_pb2_grpc, publish_pb2, publish_pb2_grpc
from numrep.v1 import registry_pb2, registry_pb2_grpc, sync_pb2, sync_pb2_grpc

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
NEVER = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}
text = st.text(max_size=80) | st.binary(max_size=40).map(lambda b: b.decode("latin-1"))
numbers = text | st.from_regex(r"\+?[0-9 ()\-.]{0,20}", fullmatch=True)


@pytest.fixture(scope="module")
def target(loop_thread, tmp_path_factory: pytest.TempPathFactory):
    data: Path = tmp_path_factory.mktemp("fuzz")
    unlimited = {key: Rate(1e9, 1e9) for key in RateLimits().rates}
    limits = RateLimits(rates=unlimited, flags_per_app=Rate(1e9, 1e9))
    exchange = Exchange(SqliteStore(data / "db.sqlite3"), Pseudonymizer(b"f" * 32), ExchangeConfig(rate_limits=limits))
    running = loop_thread.run(start_server(ServerConfig(listen="127.0.0.1:0", data_dir=data), exchange))
    ids = {}
    for pid, role in [("carrier-f", Role.CARRIER), ("app-f", Role.APP_VENDOR), ("handset-f", Role.HANDSET_VENDOR)]:
        ids[role] = generate_identity(pid, role)
        exchange.register_participant(pid, role, "", [json.dumps(ids[role].public_jwk())])
    channel = grpc.insecure_channel(running.address)
    yield running, channel, ids
    channel.close()
    loop_thread.run(running.stop(0))
    exchange.store.close()


def _call(method, request, identity) -> grpc.StatusCode:
    try:
        result = method(request, metadata=[("authorization", f"Bearer {mint_token(identity)}")], timeout=10)
        if hasattr(result, "__iter__") and not hasattr(result, "ByteSize"):
            list(result)
        return grpc.StatusCode.OK
    except grpc.RpcError as exc:
        assert exc.code() not in NEVER, (exc.code(), exc.details())
        assert exc.details(), "a refusal must say what is wrong"
        return exc.code()


def _still_serving(channel, ids) -> None:
    stub = lookup_pb2_grpc.LookupServiceStub(channel)
    assert _call(stub.Lookup, lookup_pb2.LookupRequest(number="+12025550143"), ids[Role.CARRIER]) == grpc.StatusCode.OK


@FUZZ
@given(number=numbers, callee=numbers)
def test_lookup_of_any_string(target, number, callee):
    _, channel, ids = target
    stub = lookup_pb2_grpc.LookupServiceStub(channel)
    request = lookup_pb2.LookupRequest(number=number, context=lookup_pb2.CallContext(callee=callee))
    assert _call(stub.Lookup, request, ids[Role.CARRIER]) in {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT}


@FUZZ
@given(batch=st.lists(numbers, max_size=30), prefix=text)
def test_batch_and_prefix_lookup_of_anything(target, batch, prefix):
    _, channel, ids = target
    stub = lookup_pb2_grpc.LookupServiceStub(channel)
    request = lookup_pb2.BatchLookupRequest(requests=[lookup_pb2.LookupRequest(number=n) for n in batch])
    _call(stub.BatchLookup, request, ids[Role.CARRIER])
    _call(stub.PrefixLookup, lookup_pb2.PrefixLookupRequest(hash_prefix=prefix), ids[Role.APP_VENDOR])


@FUZZ
@given(tokens=st.lists(text | st.builds(lambda a, b, c: f"{a}.{b}.{c}", text, text, text), min_size=1, max_size=10),
       label_ids=st.lists(text, min_size=1, max_size=5))
def test_publish_and_retract_of_garbage_store_nothing(target, tokens, label_ids):
    running, channel, ids = target
    stub = publish_pb2_grpc.PublishServiceStub(channel)
    head = running.store.feed_head()
    _call(stub.Publish, publish_pb2.PublishRequest(labels=tokens), ids[Role.CARRIER])
    _call(stub.Retract, publish_pb2.RetractRequest(label_ids=label_ids), ids[Role.CARRIER])
    assert running.store.changes_after(head, 1) == []


@FUZZ
@given(number=numbers, category=text, reporter=text, comment=st.text(max_size=600), batch_id=text,
       seconds=st.integers(-10**11, 10**11))
def test_flags_with_any_fields(target, number, category, reporter, comment, batch_id, seconds):
    _, channel, ids = target
    stub = flags_pb2_grpc.FlagsServiceStub(channel)
    flag = flags_pb2.Flag(number=number, category=category, reporter_id=reporter, comment=comment)
    flag.time.seconds = max(-62135596800, min(seconds, 253402300799))
    _call(stub.SubmitFlags, flags_pb2.FlagBatch(batch_id=batch_id, flags=[flag]), ids[Role.APP_VENDOR])


@FUZZ
@given(cursor=text, chunk=st.integers(-10, 10_000))
def test_sync_from_any_cursor(target, cursor, chunk):
    _, channel, ids = target
    stub = sync_pb2_grpc.SyncServiceStub(channel)
    _call(stub.Sync, sync_pb2.SyncRequest(cursor=cursor, chunk_size=chunk), ids[Role.HANDSET_VENDOR])


@FUZZ
@given(jwk=text | st.dictionaries(st.sampled_from(["kty", "crv", "x", "y", "kid", "alg", "d"]), text).map(json.dumps),
       pid=text, kid=text)
def test_registry_with_any_keys(target, jwk, pid, kid):
    _, channel, ids = target
    stub = registry_pb2_grpc.RegistryServiceStub(channel)
    carrier = ids[Role.CARRIER]
    _call(stub.AddKey, registry_pb2.AddKeyRequest(participant_id=pid or "carrier-f", jwk=jwk), carrier)
    _call(stub.RevokeKey, registry_pb2.RevokeKeyRequest(participant_id="carrier-f", kid=kid + "x"), carrier)
    _call(stub.GetParticipant, registry_pb2.GetParticipantRequest(id=pid), carrier)


def test_the_server_keeps_serving_after_the_fuzzing(target):
    _, channel, ids = target
    _still_serving(channel, ids)
    valid = sign_label(ids[Role.CARRIER], "+12025550143", "fraud", 0.9)
    stub = publish_pb2_grpc.PublishServiceStub(channel)
    result = stub.Publish(publish_pb2.PublishRequest(labels=[valid]),
                          metadata=[("authorization", f"Bearer {mint_token(ids[Role.CARRIER])}")])
    assert result.results[0].status == publish_pb2.ITEM_STATUS_ACCEPTED
