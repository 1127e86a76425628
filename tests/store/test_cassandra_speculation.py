"""A carrier's read must not wait on one hung Cassandra node: an idempotent
statement its coordinator has not answered in time goes to another replica too
(the fault suite hangs a node under load: ``tests/faults/test_cluster_node_faults.py``).
How long to wait is the store URL's ``speculate`` (seconds; 0 turns it off)."""

from __future__ import annotations

from cassandra import ConsistencyLevel
from cassandra.policies import ConstantSpeculativeExecutionPolicy, NoSpeculativeExecutionPolicy
from cassandra.query import SimpleStatement

from numrep.store.cassandra import SPECULATE_AFTER_SECONDS, CassandraStore, execution_profile


def _profile(url: str):
    options = CassandraStore.parse_url(url)
    return execution_profile(options.get("local_dc", "datacenter1"), ConsistencyLevel.QUORUM, 5.0,
                             options.get("speculate_after", SPECULATE_AFTER_SECONDS))


def test_an_unanswered_read_goes_to_another_replica_after_a_tenth_of_a_second_by_default() -> None:
    policy = _profile("cassandra://db1,db2,db3/numrep").speculative_execution_policy
    assert isinstance(policy, ConstantSpeculativeExecutionPolicy)
    plan = policy.new_plan("numrep", SimpleStatement("SELECT 1", is_idempotent=True))
    assert [plan.next_execution(None) for _ in range(3)] == [0.1, 0.1, -1]  # at most two more replicas


def test_the_url_sets_the_wait_or_turns_it_off() -> None:
    assert CassandraStore.parse_url("cassandra://db1/numrep?speculate=0.04")["speculate_after"] == 0.04
    policy = _profile("cassandra://db1/numrep?speculate=0.04").speculative_execution_policy
    assert policy.new_plan("numrep", SimpleStatement("SELECT 1")).next_execution(None) == 0.04
    assert isinstance(_profile("cassandra://db1/numrep?speculate=0").speculative_execution_policy, NoSpeculativeExecutionPolicy)
