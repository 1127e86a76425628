"""Every numrep.v1 RPC end to end: a real server, a real SQLite store, real keys
and real gRPC. Each test states one behaviour of the exchange."""

from __future__ import annotations

import base64
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed448, rsa
from google.protobuf import descriptor_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from numrep.core.reconcile import ReconcileConfig
from numrep.core.model import Role
from numrep.signing.keys import generate_identity
from numrep.signing.labels import sign_label
from numrep.signing.tokens import mint_token
from numrep.v1 import common_pb2, flags_pb2, lookup_pb2, publish_pb2

PRIOR = ReconcileConfig().prior_spam_probability
from numrep_client import ExchangeError, FlagToSend

from numrep_testkit import NUMBER, OTHER_NUMBER, ROLE_PB, bearer, numbers, public_jwk_text

ACCEPTED = publish_pb2.ITEM_STATUS_ACCEPTED
DUPLICATE = publish_pb2.ITEM_STATUS_DUPLICATE
REJECTED = publish_pb2.ITEM_STATUS_REJECTED
INVALID_ARGUMENT_CODE = grpc.StatusCode.INVALID_ARGUMENT.value[0]  # 3


def fails_with(code: grpc.StatusCode, call, *args, **kwargs) -> str:
    """Run ``call``; it must fail with ``code``. Returns the status details."""
    with pytest.raises(ExchangeError) as caught:
        call(*args, **kwargs)
    assert caught.value.code == code, caught.value.details
    return caught.value.details


def publish_one(client, token: str) -> publish_pb2.ItemResult:
    [result] = client.publish([token])
    assert result.status == ACCEPTED, (result.reason, result.message)
    return result


def sync_all(client, cursor: str = "", chunk_size: int = 0):
    return list(client.sync(cursor, chunk_size))


# --- Lookup ----------------------------------------------------------------------------
def test_lookup_reads_national_and_e164_forms_as_the_same_number(federation, connect):
    carrier = connect(federation.carrier)
    publish_one(carrier, sign_label(federation.carrier, NUMBER, "fraud.impersonation"))

    verdicts = [carrier.lookup(form) for form in ("(202) 555-0143", "+12025550143", "202-555-0143", "+1 202 555 0143")]

    assert {v.number for v in verdicts} == {NUMBER}
    assert {(v.action, v.version, v.spam_probability) for v in verdicts} == {(verdicts[0].action, 1, verdicts[0].spam_probability)}
    assert verdicts[0].action != common_pb2.ACTION_UNKNOWN


def test_lookup_of_a_number_nobody_reported_is_unknown_with_no_evidence(federation, connect):
    verdict = connect(federation.carrier).lookup(NUMBER)

    assert verdict.number == NUMBER
    assert verdict.action == common_pb2.ACTION_UNKNOWN
    assert verdict.category == ""
    assert verdict.spam_probability == PRIOR  # no evidence: the prior, action UNKNOWN
    assert list(verdict.contributions) == []
    assert verdict.label_count == verdict.flag_count == 0
    assert verdict.expires_at.ToDatetime(tzinfo=timezone.utc) > datetime.now(timezone.utc)


@pytest.mark.parametrize("bad", ["12345", "not a number", "+999 1234 5678", "+1202555014"])
def test_lookup_of_an_invalid_number_is_invalid_argument_naming_it(federation, connect, bad):
    details = fails_with(grpc.StatusCode.INVALID_ARGUMENT, connect(federation.carrier).lookup, bad)

    assert "invalid phone number" in details
    assert repr(bad) in details


def test_lookup_explains_who_contributed_what(federation, connect):
    carrier = connect(federation.carrier)
    result = publish_one(carrier, sign_label(federation.carrier, NUMBER, "marketing.robocall", 0.9))

    verdict = carrier.lookup(NUMBER)

    [contribution] = verdict.contributions
    assert contribution.participant_id == "carrier-north"
    assert contribution.role == common_pb2.ROLE_CARRIER
    assert contribution.kind == "label"
    assert contribution.label_id == result.id
    assert contribution.category == "marketing.robocall"
    assert contribution.weight > 0  # log-odds towards spam
    assert "carrier-north" in contribution.explanation and "right" in contribution.explanation  # how often it is right
    assert verdict.category == "marketing.robocall"
    assert verdict.label_count == 1
    assert "carrier-north" in verdict.explanation


def test_a_regulator_fraud_label_blocks_and_a_carrier_label_warns(federation, connect):
    publish_one(connect(federation.regulator), sign_label(federation.regulator, NUMBER, "fraud"))
    publish_one(connect(federation.carrier), sign_label(federation.carrier, OTHER_NUMBER, "marketing"))

    lookup = connect(federation.handset).lookup
    assert lookup(NUMBER).action == common_pb2.ACTION_BLOCK
    assert lookup(OTHER_NUMBER).action == common_pb2.ACTION_WARN


# --- BatchLookup -----------------------------------------------------------------------
def test_batch_lookup_fails_only_the_malformed_entries_and_keeps_request_order(federation, connect):
    carrier = connect(federation.carrier)
    publish_one(carrier, sign_label(federation.carrier, NUMBER, "fraud"))
    asked = ["(202) 555-0143", "not a number", OTHER_NUMBER, "12345", "+1 202 555 0143"]

    results = carrier.batch_lookup(asked)

    assert [r.input for r in results] == asked
    assert [r.error_code for r in results] == [0, INVALID_ARGUMENT_CODE, 0, INVALID_ARGUMENT_CODE, 0]
    assert "'not a number'" in results[1].error_message
    assert "'12345'" in results[3].error_message
    assert not results[1].HasField("verdict") and not results[3].HasField("verdict")
    assert [r.verdict.number for r in results if r.error_code == 0] == [NUMBER, OTHER_NUMBER, NUMBER]
    assert all(r.error_message == "" for r in results if r.error_code == 0)
    assert results[0].verdict.action != common_pb2.ACTION_UNKNOWN
    assert results[2].verdict.action == common_pb2.ACTION_UNKNOWN


def test_batch_lookup_in_the_basic_view_leaves_out_contributions_and_explanation_only(federation, connect):
    carrier = connect(federation.carrier)
    publish_one(carrier, sign_label(federation.carrier, NUMBER, "fraud"))
    asked = [NUMBER, "not a number", OTHER_NUMBER]

    full = carrier.batch_lookup(asked)
    basic = carrier.batch_lookup(asked, basic=True)

    assert full[0].verdict.contributions and full[0].verdict.explanation
    assert basic[1] == full[1]  # the invalid number's error, as in the full view
    for whole, cut in zip(full[::2], basic[::2]):
        expected = lookup_pb2.BatchLookupResult()
        expected.CopyFrom(whole)
        for name in ("contributions", "explanation"):
            expected.verdict.ClearField(name)
        for answer in (expected, cut):  # each call's own: the cache expiry, and an unknown number's verdict is made per call
            answer.verdict.ClearField("expires_at")
            answer.verdict.ClearField("computed_at")
        assert cut == expected
    assert basic[0].verdict.action == full[0].verdict.action != common_pb2.ACTION_UNKNOWN
    assert basic[0].ByteSize() < full[0].ByteSize() / 2


def test_batch_lookup_of_an_empty_batch_is_invalid_argument(federation, connect):
    details = fails_with(grpc.StatusCode.INVALID_ARGUMENT, connect(federation.carrier).batch_lookup, [])
    assert "no numbers" in details


def test_batch_lookup_answers_the_maximum_of_1000_numbers(federation, connect):
    asked = numbers(1000)
    results = connect(federation.carrier).batch_lookup(asked)
    assert [r.verdict.number for r in results] == asked


def test_batch_lookup_of_more_than_1000_numbers_is_invalid_argument(federation, connect):
    details = fails_with(grpc.StatusCode.INVALID_ARGUMENT, connect(federation.carrier).batch_lookup, numbers(1001))
    assert "1001 numbers" in details and "maximum is 1000" in details


# --- Publish ---------------------------------------------------------------------------
def test_publish_stores_the_good_labels_of_a_mixed_batch_and_rejects_the_bad_ones_with_reasons(federation, connect):
    carrier_id = federation.carrier
    long_ago = datetime.now(timezone.utc) - timedelta(days=100)
    batch = [
        sign_label(carrier_id, NUMBER, "fraud.one_ring", jti="good-1"),
        sign_label(carrier_id, NUMBER, "marketing", issued_at=long_ago, lifetime=timedelta(days=10)),
        sign_label(carrier_id, OTHER_NUMBER, "marketing.loans", jti="good-2"),
        sign_label(carrier_id, NUMBER, "spam.unheard_of"),
        "not-a-jws",
        sign_label(federation.regulator, OTHER_NUMBER, "fraud"),
    ]
    carrier = connect(carrier_id)

    results = carrier.publish(batch)

    assert [r.index for r in results] == list(range(len(batch)))
    assert [r.status for r in results] == [ACCEPTED, REJECTED, ACCEPTED, REJECTED, REJECTED, REJECTED]
    assert [r.reason for r in results] == ["", "expired", "", "unknown_category", "malformed", "issuer_mismatch"]
    assert all(r.message for r in results if r.status == REJECTED)
    assert "'spam.unheard_of'" in results[3].message
    assert results[0].id == "carrier-north/good-1" and results[2].id == "carrier-north/good-2"

    first, second = carrier.lookup(NUMBER), carrier.lookup(OTHER_NUMBER)
    assert [c.label_id for c in first.contributions] == ["carrier-north/good-1"]
    assert first.category == "fraud.one_ring"
    assert [c.label_id for c in second.contributions] == ["carrier-north/good-2"]
    assert second.category == "marketing.loans"


def test_publishing_a_stored_label_again_is_duplicate_and_leaves_the_verdict_unchanged(federation, connect):
    carrier = connect(federation.carrier)
    token = sign_label(federation.carrier, NUMBER, "fraud")
    first = publish_one(carrier, token)
    before = carrier.lookup(NUMBER)

    [again] = carrier.publish([token])

    assert again.status == DUPLICATE
    assert again.id == first.id
    after = carrier.lookup(NUMBER)
    assert (after.version, after.action, after.spam_probability, after.label_count) == (
        before.version, before.action, before.spam_probability, before.label_count)


def test_the_same_label_twice_in_one_batch_is_stored_once(federation, connect):
    carrier = connect(federation.carrier)
    token = sign_label(federation.carrier, NUMBER, "fraud")

    results = carrier.publish([token, token])

    assert [r.status for r in results] == [ACCEPTED, DUPLICATE]
    assert carrier.lookup(NUMBER).label_count == 1


def test_a_retracted_label_cannot_be_published_again(federation, connect):
    carrier = connect(federation.carrier)
    token = sign_label(federation.carrier, NUMBER, "fraud")
    result = publish_one(carrier, token)
    carrier.retract([result.id])

    [again] = carrier.publish([token])

    assert again.status == REJECTED
    assert again.reason == "retracted"
    assert carrier.lookup(NUMBER).action == common_pb2.ACTION_UNKNOWN


def test_publish_of_an_empty_batch_is_invalid_argument(federation, connect):
    details = fails_with(grpc.StatusCode.INVALID_ARGUMENT, connect(federation.carrier).publish, [])
    assert "no labels" in details


def test_publish_of_more_than_1000_labels_is_invalid_argument(federation, connect):
    details = fails_with(grpc.StatusCode.INVALID_ARGUMENT, connect(federation.carrier).publish, ["x.y.z"] * 1001)
    assert "1001 labels" in details and "maximum is 1000" in details


def test_a_label_counts_half_as_much_after_its_180_day_half_life(federation, connect):
    carrier = connect(federation.carrier)
    old = datetime.now(timezone.utc) - timedelta(days=180)
    # weak labels, so that neither reaches the cap on one participant's influence
    publish_one(carrier, sign_label(federation.carrier, NUMBER, "fraud", 0.3, issued_at=old, lifetime=timedelta(days=200)))
    publish_one(carrier, sign_label(federation.carrier, OTHER_NUMBER, "fraud", 0.3))

    aged, fresh = carrier.lookup(NUMBER).contributions[0], carrier.lookup(OTHER_NUMBER).contributions[0]

    assert aged.weight == pytest.approx(fresh.weight / 2, rel=1e-3)


def test_only_a_participants_strongest_spam_label_counts(federation, connect):
    carrier = connect(federation.carrier)
    publish_one(carrier, sign_label(federation.carrier, NUMBER, "fraud", 0.5))
    once = carrier.lookup(NUMBER)

    carrier.publish([sign_label(federation.carrier, NUMBER, "fraud", 0.5) for _ in range(5)])

    repeated = carrier.lookup(NUMBER)
    assert repeated.spam_probability == once.spam_probability
    assert repeated.action == once.action
    assert repeated.label_count == 6


def test_concurrent_publishes_to_one_number_lose_no_label_and_no_verdict_update(federation, connect):
    publishers = [federation.carrier, federation.app, federation.handset, federation.regulator] * 3
    clients = [connect(identity) for identity in publishers]
    barrier = threading.Barrier(len(clients))

    def publish(client) -> str:
        token = sign_label(client.identity, NUMBER, "fraud", 0.3)
        barrier.wait(5)
        return publish_one(client, token).id

    with ThreadPoolExecutor(len(clients)) as pool:
        ids = list(pool.map(publish, clients))

    verdict = connect(federation.handset).lookup(NUMBER)
    assert sorted(c.label_id for c in verdict.contributions) == sorted(ids)
    assert verdict.label_count == len(ids)
    assert verdict.version == len(ids)  # one recomputation per accepted publish, none overwritten


def test_a_legitimate_label_from_the_regulator_outweighs_a_carriers_spam_label(federation, connect):
    publish_one(connect(federation.carrier), sign_label(federation.carrier, NUMBER, "marketing"))
    publish_one(connect(federation.regulator), sign_label(federation.regulator, NUMBER, "legitimate"))

    verdict = connect(federation.handset).lookup(NUMBER)

    assert verdict.action == common_pb2.ACTION_ALLOW
    assert verdict.category == "legitimate"
    assert verdict.spam_probability < 0.2


# --- Retract ---------------------------------------------------------------------------
def test_retracting_ones_own_label_removes_its_contribution(federation, connect):
    carrier = connect(federation.carrier)
    result = publish_one(carrier, sign_label(federation.carrier, NUMBER, "fraud"))
    before = carrier.lookup(NUMBER)

    [retracted] = carrier.retract([result.id], reason="customer complaint resolved")

    assert retracted.status == ACCEPTED
    assert retracted.id == result.id
    after = carrier.lookup(NUMBER)
    assert all(c.label_id != result.id for c in after.contributions)
    assert after.action == common_pb2.ACTION_UNKNOWN
    assert after.label_count == 0
    assert after.version == before.version + 1


def test_retracting_another_participants_label_is_rejected_not_owner(federation, connect):
    result = publish_one(connect(federation.carrier), sign_label(federation.carrier, NUMBER, "fraud"))
    handset = connect(federation.handset)

    [refused] = handset.retract([result.id])

    assert refused.status == REJECTED
    assert refused.reason == "not_owner"
    assert result.id in refused.message
    assert [c.label_id for c in handset.lookup(NUMBER).contributions] == [result.id]


def test_retracting_an_unknown_label_is_rejected_not_found(federation, connect):
    [refused] = connect(federation.carrier).retract(["carrier-north/never-published"])

    assert refused.status == REJECTED
    assert refused.reason == "not_found"
    assert "carrier-north/never-published" in refused.message


def test_the_regulator_may_retract_any_label(federation, connect):
    result = publish_one(connect(federation.carrier), sign_label(federation.carrier, NUMBER, "fraud"))

    [retracted] = connect(federation.regulator).retract([result.id])

    assert retracted.status == ACCEPTED
    assert connect(federation.carrier).lookup(NUMBER).action == common_pb2.ACTION_UNKNOWN


def test_retract_answers_each_item_of_a_mixed_batch_in_order(federation, connect):
    carrier = connect(federation.carrier)
    own = publish_one(carrier, sign_label(federation.carrier, NUMBER, "fraud"))
    theirs = publish_one(connect(federation.app), sign_label(federation.app, NUMBER, "fraud"))

    results = carrier.retract([theirs.id, "carrier-north/missing", own.id])

    assert [(r.index, r.status, r.reason) for r in results] == [
        (0, REJECTED, "not_owner"), (1, REJECTED, "not_found"), (2, ACCEPTED, "")]
    assert [c.label_id for c in carrier.lookup(NUMBER).contributions] == [theirs.id]


def test_retracting_a_label_twice_reports_the_second_as_duplicate_already_retracted(federation, connect):
    carrier = connect(federation.carrier)
    result = publish_one(carrier, sign_label(federation.carrier, NUMBER, "fraud"))
    carrier.retract([result.id])

    [again] = carrier.retract([result.id])

    assert (again.status, again.reason) == (DUPLICATE, "already_retracted")
    assert "already retracted" in again.message


def test_retract_of_an_empty_list_is_invalid_argument(federation, connect):
    fails_with(grpc.StatusCode.INVALID_ARGUMENT, connect(federation.carrier).retract, [])


def test_retract_of_more_than_1000_ids_is_invalid_argument(federation, connect):
    details = fails_with(grpc.StatusCode.INVALID_ARGUMENT, connect(federation.carrier).retract, [f"carrier-north/{i}" for i in range(1001)])
    assert "maximum is 1000" in details


# --- SubmitFlags -----------------------------------------------------------------------
def fraud_flags(*reporters: str, number: str = NUMBER, category: str = "fraud") -> list[FlagToSend]:
    return [FlagToSend(number, category, reporter) for reporter in reporters]


def test_flags_move_the_verdict_of_a_number(federation, connect):
    app = connect(federation.app)
    assert app.lookup(NUMBER).spam_probability == PRIOR

    result = app.submit_flags(fraud_flags(*(f"user-{i}" for i in range(5))))

    assert result.accepted == 5 and not result.replayed_batch
    verdict = app.lookup(NUMBER)
    assert verdict.spam_probability > 0.2  # above the prior
    assert verdict.flag_count == 5
    [contribution] = verdict.contributions
    assert (contribution.kind, contribution.participant_id, contribution.reporter_count) == ("flags", "blocker-app", 5)
    assert contribution.role == common_pb2.ROLE_APP_VENDOR


def test_a_swarm_of_new_reporters_counts_no_more_than_two_new_reporters(federation, connect):
    app = connect(federation.app)
    app.submit_flags(fraud_flags("a", "b"))
    two = app.lookup(NUMBER)

    app.submit_flags(fraud_flags(*(f"user-{i}" for i in range(30))))

    swarm = app.lookup(NUMBER)
    assert swarm.flag_count == 32
    assert swarm.spam_probability == pytest.approx(two.spam_probability)
    assert swarm.action == two.action == common_pb2.ACTION_ALLOW


def test_a_batch_sent_twice_is_counted_once_and_reported_as_replayed(federation, connect):
    app = connect(federation.app)
    flags = fraud_flags("alice", "bob")
    first = app.submit_flags(flags, batch_id="batch-0001")
    before = app.lookup(NUMBER)

    again = app.submit_flags(flags + fraud_flags("carol"), batch_id="batch-0001")

    assert first.accepted == 2 and not first.replayed_batch
    assert again.replayed_batch
    assert again.accepted == 0
    assert {(r.status, r.reason) for r in again.results} == {(DUPLICATE, "replayed_batch")}
    after = app.lookup(NUMBER)
    assert after.flag_count == 2
    assert after.version == before.version


def test_one_reporter_flagging_a_number_twice_counts_once(federation, connect):
    app = connect(federation.app)
    app.submit_flags(fraud_flags("alice"))
    once = app.lookup(NUMBER)

    app.submit_flags(fraud_flags("alice"))
    app.submit_flags(fraud_flags("alice", "alice"))

    twice = app.lookup(NUMBER)
    assert twice.flag_count == 1
    assert twice.spam_probability == once.spam_probability
    assert [c.reporter_count for c in twice.contributions] == [1]


def test_invalid_flags_are_rejected_one_by_one_and_the_rest_are_counted(federation, connect):
    app = connect(federation.app)
    future = datetime.now(timezone.utc) + timedelta(hours=2)
    flags = [
        FlagToSend("(202) 555-0143", "fraud", "alice"),
        FlagToSend("12345", "fraud", "bob"),
        FlagToSend(NUMBER, "not.a.category", "carol"),
        FlagToSend(NUMBER, "fraud", ""),
        FlagToSend(NUMBER, "fraud", "dave", time=future),
        FlagToSend(NUMBER, "fraud", "erin", comment="x" * 501),
        FlagToSend(NUMBER, "marketing", "frank"),
    ]

    result = app.submit_flags(flags)

    assert [r.index for r in result.results] == list(range(len(flags)))
    assert [r.status for r in result.results] == [ACCEPTED, REJECTED, REJECTED, REJECTED, REJECTED, REJECTED, ACCEPTED]
    assert [r.reason for r in result.results] == [
        "", "invalid_number", "unknown_category", "bad_reporter_id", "time_in_future", "comment_too_long", ""]
    assert "'12345'" in result.results[1].message
    assert "'not.a.category'" in result.results[2].message
    assert result.accepted == 2
    assert app.lookup(NUMBER).flag_count == 2


def test_a_reporters_later_flag_replaces_its_earlier_one(federation, connect):
    app = connect(federation.app)
    now = datetime.now(timezone.utc)
    app.submit_flags([FlagToSend(NUMBER, "fraud", "alice", time=now - timedelta(hours=2))])

    app.submit_flags([FlagToSend(NUMBER, "marketing.loans", "alice", time=now - timedelta(hours=1))])
    app.submit_flags([FlagToSend(NUMBER, "harassment", "alice", time=now - timedelta(hours=3))])  # older: ignored

    verdict = app.lookup(NUMBER)
    assert verdict.flag_count == 1
    assert [(c.category, c.reporter_count) for c in verdict.contributions] == [("marketing.loans", 1)]


def test_a_flag_older_than_a_year_is_rejected_too_old(federation, connect):
    old = datetime.now(timezone.utc) - timedelta(days=400)

    result = connect(federation.app).submit_flags([FlagToSend(NUMBER, "fraud", "alice", time=old)])

    assert [(r.status, r.reason) for r in result.results] == [(REJECTED, "too_old")]
    assert result.accepted == 0


def test_reporters_of_different_apps_count_separately(federation, connect):
    other = generate_identity("second-app", Role.APP_VENDOR)
    connect(federation.regulator).register_participant("second-app", common_pb2.ROLE_APP_VENDOR, [public_jwk_text(other)])
    connect(federation.app).submit_flags(fraud_flags("alice", "bob"))

    connect(other).submit_flags(fraud_flags("alice"))

    verdict = connect(federation.handset).lookup(NUMBER)
    assert verdict.flag_count == 3
    assert {(c.participant_id, c.reporter_count) for c in verdict.contributions} == {("blocker-app", 2), ("second-app", 1)}


def test_submit_flags_of_more_than_10000_flags_is_invalid_argument(federation, connect):
    flags = fraud_flags(*(f"user-{i}" for i in range(10_001)))
    details = fails_with(grpc.StatusCode.INVALID_ARGUMENT, connect(federation.app).submit_flags, flags)
    assert "maximum is 10000" in details


def test_submit_flags_without_a_batch_id_is_invalid_argument(federation, connect, raw):

    request = flags_pb2.FlagBatch(flags=[flags_pb2.Flag(number=NUMBER, category="fraud", reporter_id="alice")])
    outcome = raw.call("FlagsService/SubmitFlags", request, bearer(mint_token(federation.app)))

    assert outcome.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "batch_id" in outcome.details
    assert connect(federation.app).lookup(NUMBER).flag_count == 0


# --- Sync ------------------------------------------------------------------------------
def entry_numbers(chunks) -> list[str]:
    return [e.number for chunk in chunks for e in chunk.entries]


def test_sync_from_scratch_sends_a_snapshot_then_a_caught_up_chunk(federation, connect):
    carrier = connect(federation.carrier)
    listed = numbers(5)
    tokens = {n: sign_label(federation.carrier, n, "marketing") for n in listed}
    assert all(r.status == ACCEPTED for r in carrier.publish(list(tokens.values())))

    chunks = sync_all(connect(federation.handset))

    assert chunks[-1].caught_up and not chunks[-1].snapshot
    assert not any(c.caught_up for c in chunks[:-1])
    snapshot = [c for c in chunks if c.snapshot]
    assert snapshot and chunks[: len(snapshot)] == snapshot  # the snapshot comes first
    assert sorted(entry_numbers(snapshot)) == listed
    for entry in (e for c in snapshot for e in c.entries):
        assert not entry.tombstone
        assert entry.action == common_pb2.ACTION_WARN
        assert list(entry.labels) == [tokens[entry.number]]  # the publisher's token, verbatim
    assert all(c.cursor for c in chunks)


def test_sync_of_an_empty_exchange_is_caught_up_at_once(federation, connect):
    chunks = sync_all(connect(federation.handset))

    assert entry_numbers(chunks) == []
    assert chunks[-1].caught_up


def test_sync_snapshot_leaves_out_numbers_that_are_not_listed(federation, connect):
    publish_one(connect(federation.carrier), sign_label(federation.carrier, NUMBER, "marketing"))
    publish_one(connect(federation.regulator), sign_label(federation.regulator, OTHER_NUMBER, "legitimate"))

    chunks = sync_all(connect(federation.handset))

    assert entry_numbers([c for c in chunks if c.snapshot]) == [NUMBER]


def test_sync_resumed_from_any_cursor_mid_snapshot_has_no_gap_and_no_duplicate(federation, connect):
    listed = numbers(7)
    carrier = connect(federation.carrier)
    assert all(r.status == ACCEPTED for r in carrier.publish([sign_label(federation.carrier, n, "fraud") for n in listed]))
    handset = connect(federation.handset)
    full = sync_all(handset, chunk_size=2)
    snapshot = [c for c in full if c.snapshot]
    assert [len(c.entries) for c in snapshot] == [2, 2, 2, 1]

    for stop_after in range(1, len(snapshot)):
        seen = entry_numbers(full[:stop_after])
        resumed = sync_all(handset, full[stop_after - 1].cursor, chunk_size=2)
        rest = entry_numbers(c for c in resumed if c.snapshot)
        # the snapshot's order is the store's (SQLite: by number; Cassandra: by bucket, then number)
        assert seen + rest == entry_numbers(snapshot), f"resumed after chunk {stop_after}"
        assert sorted(seen + rest) == listed
        assert resumed[-1].caught_up


def test_a_change_made_during_a_snapshot_arrives_as_a_delta_after_it(federation, connect):
    carrier, handset = connect(federation.carrier), connect(federation.handset)
    listed = numbers(4, start=200)
    carrier.publish([sign_label(federation.carrier, n, "fraud") for n in listed])
    stream = handset.sync("", chunk_size=2)
    first = next(stream)
    stream.close()  # the handset stops after one chunk
    assert first.snapshot and [e.number for e in first.entries] == listed[:2]
    # while the handset pauses: a number before its position becomes listed, one it has seen is retracted
    early = numbers(1, start=100)[0]
    late_token = sign_label(federation.carrier, early, "marketing")
    publish_one(carrier, late_token)
    [retracted] = carrier.retract([carrier.lookup(listed[1]).contributions[0].label_id])
    assert retracted.status == ACCEPTED

    rest = sync_all(handset, first.cursor, chunk_size=2)

    assert entry_numbers(c for c in rest if c.snapshot) == listed[2:]
    delta = {e.number: e for c in rest if not c.snapshot for e in c.entries}
    assert list(delta[early].labels) == [late_token]
    assert delta[listed[1]].tombstone
    assert rest[-1].caught_up


def test_sync_from_a_caught_up_cursor_sends_only_what_changed(federation, connect):
    carrier, handset = connect(federation.carrier), connect(federation.handset)
    publish_one(carrier, sign_label(federation.carrier, NUMBER, "fraud"))
    cursor = sync_all(handset)[-1].cursor
    token = sign_label(federation.carrier, OTHER_NUMBER, "marketing")
    publish_one(carrier, token)

    delta = sync_all(handset, cursor)

    assert not any(c.snapshot for c in delta)
    assert entry_numbers(delta) == [OTHER_NUMBER]
    [entry] = [e for c in delta for e in c.entries]
    assert list(entry.labels) == [token] and not entry.tombstone
    assert delta[-1].caught_up
    assert entry_numbers(sync_all(handset, delta[-1].cursor)) == []


def test_a_retraction_reaches_sync_as_a_tombstone_naming_the_removed_label(federation, connect):
    carrier, handset = connect(federation.carrier), connect(federation.handset)
    result = publish_one(carrier, sign_label(federation.carrier, NUMBER, "fraud"))
    cursor = sync_all(handset)[-1].cursor
    carrier.retract([result.id])

    delta = sync_all(handset, cursor)

    [entry] = [e for c in delta for e in c.entries]
    assert entry.number == NUMBER
    assert entry.tombstone
    assert list(entry.removed_label_ids) == [result.id]
    assert list(entry.labels) == []


def test_retracting_one_of_two_labels_syncs_the_number_with_the_remaining_label(federation, connect):
    carrier, handset = connect(federation.carrier), connect(federation.handset)
    kept_token = sign_label(federation.app, NUMBER, "fraud")
    publish_one(connect(federation.app), kept_token)
    dropped = publish_one(carrier, sign_label(federation.carrier, NUMBER, "fraud"))
    cursor = sync_all(handset)[-1].cursor
    carrier.retract([dropped.id])

    delta = sync_all(handset, cursor)

    [entry] = [e for c in delta for e in c.entries]
    assert not entry.tombstone
    assert list(entry.removed_label_ids) == [dropped.id]
    assert list(entry.labels) == [kept_token]


def cursor_of(state: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(state).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage!!",
        "bm90IGpzb24",  # base64 of "not json"
        cursor_of({"phase": "teleport"}),
        cursor_of(["delta", "1"]),
        cursor_of({"phase": "delta", "pos": 7}),
        cursor_of({"phase": "snapshot", "head": "1"}),
    ],
)
def test_sync_from_a_cursor_the_exchange_never_handed_out_is_invalid_argument(federation, connect, cursor):
    details = fails_with(grpc.StatusCode.INVALID_ARGUMENT, sync_all, connect(federation.handset), cursor)
    assert "cursor" in details


@pytest.mark.parametrize("position", ["abc", "-1", "1.5", " 1"])
def test_sync_from_a_well_formed_cursor_with_a_bogus_feed_position_is_invalid_argument(federation, connect, position):
    cursor = cursor_of({"phase": "delta", "pos": position})
    details = fails_with(grpc.StatusCode.INVALID_ARGUMENT, sync_all, connect(federation.handset), cursor)
    assert "cursor" in details


@pytest.mark.parametrize("chunk_size", [-1, 5001])
def test_sync_with_a_chunk_size_out_of_range_is_invalid_argument(federation, connect, chunk_size):
    details = fails_with(grpc.StatusCode.INVALID_ARGUMENT, sync_all, connect(federation.handset), "", chunk_size)
    assert "chunk_size" in details


# --- Registry --------------------------------------------------------------------------
def test_list_participants_returns_the_federation_with_roles_and_keys(federation, connect):
    listed = {p.id: p for p in connect(federation.handset).list_participants()}

    assert set(listed) == {m.participant_id for m in federation.members}
    for member in federation.members:
        participant = listed[member.participant_id]
        assert participant.role == ROLE_PB[member.role]
        [key] = participant.keys
        assert key.kid == member.kid
        assert json.loads(key.jwk) == member.public_jwk()
        assert not key.HasField("revoked_at")


def test_get_participant_returns_its_role_and_keys(federation, connect):
    found = connect(federation.app).get_participant("carrier-north")

    assert found.role == common_pb2.ROLE_CARRIER
    assert [k.kid for k in found.keys] == [federation.carrier.kid]
    assert json.loads(found.keys[0].jwk)["alg"] == "ES256"


def test_get_participant_of_an_unknown_id_is_not_found_naming_it(federation, connect):
    details = fails_with(grpc.StatusCode.NOT_FOUND, connect(federation.app).get_participant, "nobody-here")
    assert "'nobody-here'" in details


def test_a_participant_registered_by_the_regulator_can_call_the_exchange(federation, connect):
    newcomer = generate_identity("carrier-south", Role.CARRIER, "ES256")

    registered = connect(federation.regulator).register_participant(
        "carrier-south", common_pb2.ROLE_CARRIER, [public_jwk_text(newcomer)], "Carrier South")

    assert (registered.id, registered.role, registered.display_name) == ("carrier-south", common_pb2.ROLE_CARRIER, "Carrier South")
    assert [k.kid for k in registered.keys] == [newcomer.kid]
    client = connect(newcomer)
    publish_one(client, sign_label(newcomer, NUMBER, "fraud"))
    assert client.lookup(NUMBER).contributions[0].participant_id == "carrier-south"


def test_registering_a_taken_id_is_already_exists(federation, connect):
    again = generate_identity("carrier-north", Role.CARRIER)
    details = fails_with(
        grpc.StatusCode.ALREADY_EXISTS, connect(federation.regulator).register_participant,
        "carrier-north", common_pb2.ROLE_CARRIER, [public_jwk_text(again)])
    assert "'carrier-north'" in details


def test_registering_without_a_role_is_invalid_argument(federation, connect):
    newcomer = generate_identity("nobody", Role.CARRIER)
    details = fails_with(
        grpc.StatusCode.INVALID_ARGUMENT, connect(federation.regulator).register_participant,
        "nobody", common_pb2.ROLE_UNSPECIFIED, [public_jwk_text(newcomer)])
    assert "role" in details


def test_registering_without_keys_is_invalid_argument(federation, connect):
    details = fails_with(
        grpc.StatusCode.INVALID_ARGUMENT, connect(federation.regulator).register_participant, "keyless", common_pb2.ROLE_CARRIER, [])
    assert "at least one public key" in details


@pytest.mark.parametrize("participant_id", ["", "has space", "carrier#1", "x" * 65, "trägér"])
def test_registering_a_malformed_participant_id_is_invalid_argument(federation, connect, participant_id):
    details = fails_with(
        grpc.StatusCode.INVALID_ARGUMENT, connect(federation.regulator).register_participant,
        participant_id, common_pb2.ROLE_CARRIER, [public_jwk_text(generate_identity("x", Role.CARRIER))])
    assert "participant id must be 1 to 64 ASCII" in details


def test_adding_a_key_to_an_unknown_participant_is_not_found(federation, connect):
    stranger = generate_identity("nobody-here", Role.CARRIER)
    details = fails_with(grpc.StatusCode.NOT_FOUND, connect(federation.regulator).add_key, "nobody-here", public_jwk_text(stranger))
    assert "'nobody-here'" in details


def test_registering_is_for_the_regulator_only(federation, connect):
    newcomer = generate_identity("carrier-south", Role.CARRIER)
    details = fails_with(
        grpc.StatusCode.PERMISSION_DENIED, connect(federation.carrier).register_participant,
        "carrier-south", common_pb2.ROLE_CARRIER, [public_jwk_text(newcomer)])
    assert "RegisterParticipant" in details
    fails_with(grpc.StatusCode.NOT_FOUND, connect(federation.carrier).get_participant, "carrier-south")


def test_a_participant_adds_a_key_to_itself_and_signs_with_it(federation, connect):
    rotated = generate_identity("carrier-north", Role.CARRIER, "EdDSA")

    updated = connect(federation.carrier).add_key("carrier-north", public_jwk_text(rotated))

    assert [k.kid for k in updated.keys] == [federation.carrier.kid, rotated.kid]
    client = connect(rotated)
    result = publish_one(client, sign_label(rotated, NUMBER, "fraud"))
    assert result.id.startswith("carrier-north/")


def test_a_participant_revokes_its_own_key_and_tokens_signed_with_it_stop_working(federation, connect):
    rotated = generate_identity("carrier-north", Role.CARRIER, "EdDSA")
    old = connect(federation.carrier)
    old.add_key("carrier-north", public_jwk_text(rotated))

    updated = connect(rotated).revoke_key("carrier-north", federation.carrier.kid)

    revoked = {k.kid: k for k in updated.keys}[federation.carrier.kid]
    assert revoked.HasField("revoked_at")
    details = fails_with(grpc.StatusCode.UNAUTHENTICATED, old.lookup, NUMBER)
    assert "revoked_key" in details
    connect(rotated).lookup(NUMBER)  # the new key still works


def test_labels_signed_with_a_revoked_key_are_rejected_revoked_key(federation, connect):
    rotated = generate_identity("carrier-north", Role.CARRIER, "EdDSA")
    connect(federation.carrier).add_key("carrier-north", public_jwk_text(rotated))
    client = connect(rotated)
    client.revoke_key("carrier-north", federation.carrier.kid)

    [result] = client.publish([sign_label(federation.carrier, NUMBER, "fraud")])

    assert (result.status, result.reason) == (REJECTED, "revoked_key")
    assert federation.carrier.kid in result.message
    assert client.lookup(NUMBER).action == common_pb2.ACTION_UNKNOWN


def test_adding_a_key_to_another_participant_is_permission_denied(federation, connect):
    intruder = generate_identity("carrier-north", Role.CARRIER)
    details = fails_with(
        grpc.StatusCode.PERMISSION_DENIED, connect(federation.app).add_key, "carrier-north", public_jwk_text(intruder))
    assert "'carrier-north'" in details
    assert [k.kid for k in connect(federation.carrier).get_participant("carrier-north").keys] == [federation.carrier.kid]


def test_revoking_another_participants_key_is_permission_denied(federation, connect):
    details = fails_with(
        grpc.StatusCode.PERMISSION_DENIED, connect(federation.handset).revoke_key, "carrier-north", federation.carrier.kid)
    assert "own keys" in details
    connect(federation.carrier).lookup(NUMBER)  # the key still works


def test_the_regulator_may_revoke_anyones_key(federation, connect):
    updated = connect(federation.regulator).revoke_key("carrier-north", federation.carrier.kid)

    assert updated.keys[0].HasField("revoked_at")
    details = fails_with(grpc.StatusCode.UNAUTHENTICATED, connect(federation.carrier).lookup, NUMBER)
    assert "revoked_key" in details


def test_the_regulator_may_add_a_key_to_anyone(federation, connect):
    rotated = generate_identity("handset-co", Role.HANDSET_VENDOR, "ES256")

    updated = connect(federation.regulator).add_key("handset-co", public_jwk_text(rotated))

    assert rotated.kid in [k.kid for k in updated.keys]
    connect(rotated).lookup(NUMBER)


def test_revoking_a_key_that_does_not_exist_is_not_found(federation, connect):
    details = fails_with(grpc.StatusCode.NOT_FOUND, connect(federation.carrier).revoke_key, "carrier-north", "carrier-north#nope")
    assert "'carrier-north#nope'" in details


def test_adding_a_key_that_is_registered_already_is_already_exists(federation, connect):
    fails_with(
        grpc.StatusCode.ALREADY_EXISTS, connect(federation.carrier).add_key, "carrier-north", public_jwk_text(federation.carrier))


def _rsa_jwk() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    return json.dumps({**jwk, "kid": "carrier-north#rsa", "alg": "RS256"})


def _bad_jwks() -> list:
    spare = generate_identity("carrier-north", Role.CARRIER, "EdDSA")
    good = spare.public_jwk()
    private = json.loads(spare.to_json())["private_jwk"]
    return [
        pytest.param("{not json", "not JSON", id="not-json"),
        pytest.param('["a", "list"]', "JSON object", id="not-an-object"),
        pytest.param(json.dumps({**private, "kid": spare.kid, "alg": "EdDSA"}), "private key", id="private-key"),
        pytest.param(json.dumps({k: v for k, v in good.items() if k != "kid"}), "no 'kid'", id="no-kid"),
        pytest.param(json.dumps({**good, "kid": "someone-else#1"}), "must start with 'carrier-north#'", id="kid-of-another"),
        pytest.param(json.dumps({**good, "alg": "HS256"}), "not allowed", id="hmac-alg"),
        pytest.param(json.dumps({**good, "x": "AAAA"}), "not a valid EdDSA public key", id="broken-key"),
        pytest.param(_rsa_jwk(), "not allowed", id="rsa"),
    ]


@pytest.mark.parametrize(("jwk", "complaint"), _bad_jwks())
def test_adding_a_bad_jwk_is_invalid_argument_saying_what_is_wrong(federation, connect, jwk, complaint):
    details = fails_with(grpc.StatusCode.INVALID_ARGUMENT, connect(federation.carrier).add_key, "carrier-north", jwk)
    assert complaint in details


def _jwk_on_curve(private_key, alg_name: str) -> str:
    algorithm = ECAlgorithm(ECAlgorithm.SHA256) if alg_name == "ES256" else OKPAlgorithm()
    jwk = algorithm.to_jwk(private_key.public_key(), as_dict=True)
    return json.dumps({**jwk, "kid": "carrier-north#curve", "alg": alg_name})


@pytest.mark.parametrize(
    ("make_key", "alg"),
    [
        pytest.param(lambda: ec.generate_private_key(ec.SECP384R1()), "ES256", id="p384-as-es256"),
        pytest.param(lambda: ec.generate_private_key(ec.SECP256K1()), "ES256", id="secp256k1-as-es256"),
        pytest.param(lambda: ed448.Ed448PrivateKey.generate(), "EdDSA", id="ed448-as-eddsa"),
    ],
)
def test_adding_a_key_on_a_curve_its_algorithm_does_not_use_is_invalid_argument(federation, connect, make_key, alg):
    fails_with(grpc.StatusCode.INVALID_ARGUMENT, connect(federation.carrier).add_key, "carrier-north", _jwk_on_curve(make_key(), alg))


def test_registering_with_a_bad_jwk_is_invalid_argument(federation, connect):
    details = fails_with(
        grpc.StatusCode.INVALID_ARGUMENT, connect(federation.regulator).register_participant,
        "carrier-south", common_pb2.ROLE_CARRIER, ["{not json"])
    assert "not JSON" in details


# --- health and reflection -------------------------------------------------------------
@pytest.mark.parametrize("service", ["", "numrep.v1.LookupService", "numrep.v1.SyncService"])
def test_health_check_answers_serving_without_credentials(server, service):
    with grpc.insecure_channel(server.address) as channel:
        response = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
    assert response.status == health_pb2.HealthCheckResponse.SERVING


def test_health_check_of_an_unknown_service_is_not_found(server):
    with grpc.insecure_channel(server.address) as channel:
        with pytest.raises(grpc.RpcError) as caught:
            health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service="numrep.v1.Nope"), timeout=5)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


def reflect(server, request: reflection_pb2.ServerReflectionRequest) -> reflection_pb2.ServerReflectionResponse:
    with grpc.insecure_channel(server.address) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        [response] = list(stub.ServerReflectionInfo(iter([request]), timeout=5))
    return response


def test_reflection_lists_every_numrep_v1_service(server):
    response = reflect(server, reflection_pb2.ServerReflectionRequest(list_services=""))

    names = {s.name for s in response.list_services_response.service}
    assert {
        "numrep.v1.LookupService", "numrep.v1.PublishService", "numrep.v1.FlagsService",
        "numrep.v1.SyncService", "numrep.v1.RegistryService", "grpc.health.v1.Health",
    } <= names


def test_reflection_describes_a_numrep_service(server):
    response = reflect(server, reflection_pb2.ServerReflectionRequest(file_containing_symbol="numrep.v1.LookupService"))

    files = [descriptor_pb2.FileDescriptorProto.FromString(b) for b in response.file_descriptor_response.file_descriptor_proto]
    lookup = next(f for f in files if f.name == "numrep/v1/lookup.proto")
    generated = lookup_pb2.DESCRIPTOR.services_by_name["LookupService"]
    assert [m.name for m in lookup.service[0].method] == [m.name for m in generated.methods]
    assert {"Lookup", "BatchLookup"} <= {m.name for m in lookup.service[0].method}
