"""A carrier's lookup must not wait on one hung Cassandra node: a read its call
waits on, unanswered in time, goes to another replica too (the fault suite hangs
a node under load: ``tests/faults/test_cluster_node_faults.py``). Only those
single-row reads: everything else (paged scans, writes) runs once. How long to
wait is the store URL's ``speculate`` (seconds; 0 turns it off)."""

from __future__ import annotations

import pytest
from cassandra import ConsistencyLevel
from cassandra.policies import ConstantSpeculativeExecutionPolicy, NoSpeculativeExecutionPolicy
from cassandra.query import SimpleStatement

from numrep.core.errors import InvalidArgument
from numrep.store.cassandra import SPECULATE_AFTER_SECONDS, CassandraStore, execution_profile


def _call_path_policy(url: str):
    options = CassandraStore.parse_url(url)
    return execution_profile("datacenter1", ConsistencyLevel.QUORUM, 5.0,
                             options.get("speculate_after", SPECULATE_AFTER_SECONDS)).speculative_execution_policy


def test_an_unanswered_call_path_read_goes_to_another_replica_after_50_ms_by_default() -> None:
    policy = _call_path_policy("cassandra://db1,db2,db3/numrep")
    assert isinstance(policy, ConstantSpeculativeExecutionPolicy)
    plan = policy.new_plan("numrep", SimpleStatement("SELECT 1", is_idempotent=True))
    assert [plan.next_execution(None) for _ in range(3)] == [0.05, 0.05, -1]  # at most two more replicas


def test_every_other_statement_runs_once() -> None:
    default = execution_profile("datacenter1", ConsistencyLevel.QUORUM, 5.0)
    assert isinstance(default.speculative_execution_policy, NoSpeculativeExecutionPolicy)


def test_the_url_sets_the_wait_or_turns_it_off() -> None:
    assert CassandraStore.parse_url("cassandra://db1/numrep?speculate=0.04")["speculate_after"] == 0.04
    policy = _call_path_policy("cassandra://db1/numrep?speculate=0.04")
    assert policy.new_plan("numrep", SimpleStatement("SELECT 1")).next_execution(None) == 0.04
    assert isinstance(_call_path_policy("cassandra://db1/numrep?speculate=0"), NoSpeculativeExecutionPolicy)


@pytest.mark.parametrize("value", ["-1", "nan", "inf"])
def test_a_wait_that_is_not_a_number_of_seconds_is_refused(value: str) -> None:
    with pytest.raises(InvalidArgument, match="speculate must be 0"):
        CassandraStore.parse_url(f"cassandra://db1/numrep?speculate={value}")
