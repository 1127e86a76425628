"""Key rotation and revocation through the RPCs, on both stores.

* Rotation: after AddKey, the old and the new key both sign valid tokens and
  labels (the overlap window) until the old one is revoked.
* Revocation is judged when a label arrives: a label signed with a key revoked
  by then is refused ``revoked_key``, also when its ``iat`` claims a time before
  the revocation (a stolen key can backdate).
* A label accepted before its key was revoked stays valid: it keeps counting in
  the verdict, the lookup's explanation says that its key was revoked since, and
  a handset that verifies the synced label offline keeps it and reports it.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import grpc
import pytest

from numrep.core.model import Role
from numrep.signing.keys import generate_identity
from numrep.signing.labels import sign_label
from numrep.v1 import common_pb2, publish_pb2
from numrep_client import ExchangeError, HandsetLabelStore, sync_handset

from numrep_testkit import NUMBER, OTHER_NUMBER, public_jwk_text

ACCEPTED, REJECTED = publish_pb2.ITEM_STATUS_ACCEPTED, publish_pb2.ITEM_STATUS_REJECTED


def _contribution(verdict: common_pb2.Verdict, label_id: str) -> common_pb2.Contribution:
    return next(c for c in verdict.contributions if c.label_id == label_id)


def test_old_and_new_key_are_both_valid_until_the_old_one_is_revoked(federation, connect) -> None:
    old = federation.carrier
    new = generate_identity("carrier-north", Role.CARRIER, "EdDSA")
    connect(old).add_key("carrier-north", public_jwk_text(new))

    # the overlap window: either key authenticates calls and signs labels
    for signer, number in ((old, NUMBER), (new, OTHER_NUMBER)):
        [result] = connect(signer).publish([sign_label(signer, number, "fraud.impersonation", 0.9)])
        assert result.status == ACCEPTED, result
    assert connect(old).lookup(OTHER_NUMBER).label_count == 1
    assert connect(new).lookup(NUMBER).label_count == 1

    connect(new).revoke_key("carrier-north", old.kid)

    with pytest.raises(ExchangeError) as refused:
        connect(old).lookup(NUMBER)
    assert refused.value.code is grpc.StatusCode.UNAUTHENTICATED and "revoked_key" in refused.value.details
    [late] = connect(new).publish([sign_label(old, "+12025550199", "fraud", 0.9)])
    assert (late.status, late.reason) == (REJECTED, "revoked_key")
    [fresh] = connect(new).publish([sign_label(new, "+12025550199", "fraud", 0.9)])
    assert fresh.status == ACCEPTED


def test_a_revoked_key_cannot_sign_a_label_backdated_to_before_its_revocation(federation, connect) -> None:
    old = federation.carrier
    new = generate_identity("carrier-north", Role.CARRIER, "EdDSA")
    connect(old).add_key("carrier-north", public_jwk_text(new))
    connect(new).revoke_key("carrier-north", old.kid)

    backdated = sign_label(old, NUMBER, "fraud", 0.9, issued_at=datetime.now(timezone.utc) - timedelta(hours=2))
    [result] = connect(new).publish([backdated])

    assert (result.status, result.reason) == (REJECTED, "revoked_key")
    assert old.kid in result.message
    assert connect(new).lookup(NUMBER).label_count == 0


def test_a_label_accepted_before_its_key_was_revoked_keeps_counting_and_is_marked(federation, connect) -> None:
    old = federation.carrier
    [early] = connect(old).publish([sign_label(old, NUMBER, "fraud.impersonation", 0.9)])
    [confirmed] = connect(federation.regulator).publish([sign_label(federation.regulator, NUMBER, "fraud.impersonation", 0.95)])
    before = connect(federation.handset).lookup(NUMBER)
    assert "revoked" not in _contribution(before, early.id).explanation

    new = generate_identity("carrier-north", Role.CARRIER, "EdDSA")
    connect(old).add_key("carrier-north", public_jwk_text(new))
    connect(new).revoke_key("carrier-north", old.kid)

    after = connect(federation.handset).lookup(NUMBER)
    assert after.label_count == before.label_count == 2
    assert (after.action, after.spam_probability) == (before.action, before.spam_probability)
    marked = _contribution(after, early.id)
    assert marked.weight == _contribution(before, early.id).weight
    assert old.kid in marked.explanation and "revoked" in marked.explanation and "still counts" in marked.explanation
    assert "revoked" not in _contribution(after, confirmed.id).explanation  # the regulator's key is not revoked
    [batched] = connect(federation.handset).batch_lookup([NUMBER])
    assert old.kid in _contribution(batched.verdict, early.id).explanation


def test_a_handset_keeps_a_label_accepted_before_its_key_was_revoked_and_marks_it(federation, connect, tmp_path) -> None:
    old = federation.carrier
    [early] = connect(old).publish([sign_label(old, NUMBER, "fraud.impersonation", 0.9)])
    connect(federation.regulator).publish([sign_label(federation.regulator, NUMBER, "fraud.impersonation", 0.95)])
    new = generate_identity("carrier-north", Role.CARRIER, "EdDSA")
    connect(old).add_key("carrier-north", public_jwk_text(new))
    connect(new).revoke_key("carrier-north", old.kid)
    # a label signed with the revoked key and sent now never reaches a handset: it is refused
    [late] = connect(new).publish([sign_label(old, OTHER_NUMBER, "fraud", 0.9)])
    assert late.reason == "revoked_key"

    store = HandsetLabelStore(tmp_path / "handset.sqlite3")
    report = sync_handset(connect(federation.handset), store)

    assert report.labels_dropped == []
    assert len(store.numbers[NUMBER]["labels"]) == 2  # verified offline, the early label included
    assert report.labels_with_revoked_key == [(NUMBER, early.id, old.kid)]
