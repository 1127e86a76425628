"""How CassandraStore keeps a trust snapshot: in parts of at most 1 MiB (one CQL
message takes at most 16 MiB), named by the epoch's row, checked on the way back.
The store contract itself (any size round trips, an epoch is written once) is in
``test_trust_conformance``; this is what only Cassandra's layout can get wrong."""

from __future__ import annotations

import pytest

from numrep.core.errors import StoreUnavailable
from numrep.store.cassandra import TRUST_PART_CHARS, CassandraStore

from test_conformance import NOW

pytestmark = pytest.mark.parametrize("backend", ["cassandra"], indirect=True)

BODY = "x" * (2 * TRUST_PART_CHARS + 5)  # three parts


def _part_rows(store: CassandraStore) -> list[tuple[int, str, int]]:
    rows = store._session.execute(f"SELECT epoch, body_id, part FROM {store.keyspace}.trust_snapshot_parts")
    return sorted((row.epoch, row.body_id, row.part) for row in rows)


def test_a_body_is_kept_in_parts_named_by_its_epoch(store: CassandraStore) -> None:
    assert store.put_trust_snapshot(1, BODY, NOW) is True

    head = store._session.execute(f"SELECT body, body_id, parts FROM {store.keyspace}.trust_snapshots WHERE shard = 0").one()
    assert (head.body, head.parts) == (None, 3)
    assert _part_rows(store) == [(1, head.body_id, 0), (1, head.body_id, 1), (1, head.body_id, 2)]


def test_the_replica_that_loses_an_epoch_leaves_no_parts_behind(store: CassandraStore) -> None:
    assert store.put_trust_snapshot(1, BODY, NOW) is True
    before = _part_rows(store)

    assert store.put_trust_snapshot(1, "y" * (TRUST_PART_CHARS + 1), NOW) is False

    assert _part_rows(store) == before
    assert store.latest_trust_snapshot() == (1, BODY)


def test_a_body_missing_a_part_is_refused_not_read_short(store: CassandraStore) -> None:
    store.put_trust_snapshot(1, BODY, NOW)
    [(epoch, body_id, _), *_] = _part_rows(store)
    store._session.execute(f"DELETE FROM {store.keyspace}.trust_snapshot_parts WHERE epoch = %s AND body_id = %s AND part = 1",
                           (epoch, body_id))

    with pytest.raises(StoreUnavailable, match="2 of 3 parts"):
        store.latest_trust_snapshot()


def test_an_epoch_stored_before_bodies_went_in_parts_is_still_read(store: CassandraStore) -> None:
    store._session.execute(f"INSERT INTO {store.keyspace}.trust_snapshots (shard, epoch, fitted_at, body) VALUES (0, 4, %s, %s)",
                           (NOW, '{"epoch": 4}'))

    assert store.latest_trust_epoch() == 4
    assert store.latest_trust_snapshot() == (4, '{"epoch": 4}')


def test_forgotten_epochs_take_their_parts_along_even_those_of_a_write_that_died(store: CassandraStore) -> None:
    store._session.execute(f"INSERT INTO {store.keyspace}.trust_snapshots (shard, epoch, fitted_at, body) VALUES (0, 1, %s, %s)",
                           (NOW, '{"epoch": 1}'))  # from before bodies went in parts
    store.put_trust_snapshot(2, BODY, NOW)
    store._session.execute(f"INSERT INTO {store.keyspace}.trust_snapshot_writes (shard, epoch, body_id) VALUES (0, 3, 'died')")
    store._session.execute(f"INSERT INTO {store.keyspace}.trust_snapshot_parts (epoch, body_id, part, text) VALUES (3, 'died', 0, 'x')")
    store.put_trust_snapshot(3, BODY, NOW)  # another replica stored epoch 3 after the one that died midway
    store.put_trust_snapshot(4, BODY, NOW)
    [kept] = {body_id for epoch, body_id, _ in _part_rows(store) if epoch == 4}

    assert store.forget_trust_snapshots(4) == 3

    assert store.trust_epochs() == [4]
    assert _part_rows(store) == [(4, kept, 0), (4, kept, 1), (4, kept, 2)]
    notes = store._session.execute(f"SELECT epoch, body_id FROM {store.keyspace}.trust_snapshot_writes")
    assert [(row.epoch, row.body_id) for row in notes] == [(4, kept)]
    assert store.latest_trust_snapshot() == (4, BODY)
