#!/usr/bin/env bash
# `make test-faults`: the fault scenarios of tests/faults, including those marked `faults`
# that kill, hang or stop Cassandra nodes. They get dedicated nodes, never the shared node on
# 127.0.0.1 that `make test` and other runs use:
#   - a 3-node cluster on 127.0.1.1-3 (JMX 7301-7303, home ~/.cache/numrep/cassandra-faults),
#     started here, also used by the SIGKILL-during-ingest test;
#   - a single node on 127.0.2.1 (JMX 7401, home ~/.cache/numrep/cassandra-faults-single),
#     started and stopped by the store-outage test itself.
# Both are stopped at the end, also on failure or Ctrl-C. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
started=$(date +%s)
export NUMREP_FAULTS_CLUSTER_HOME="${NUMREP_FAULTS_CLUSTER_HOME:-$HOME/.cache/numrep/cassandra-faults}"
export NUMREP_FAULTS_CLUSTER_NET="${NUMREP_FAULTS_CLUSTER_NET:-127.0.1}"
export NUMREP_FAULTS_SINGLE_HOME="${NUMREP_FAULTS_SINGLE_HOME:-$HOME/.cache/numrep/cassandra-faults-single}"
export NUMREP_FAULTS_SINGLE_NET="${NUMREP_FAULTS_SINGLE_NET:-127.0.2}"
export NUMREP_CASSANDRA_TIMEOUT="${NUMREP_CASSANDRA_TIMEOUT:-400}"  # per node: restarts under load can exceed 180 s

cluster() {
  NUMREP_CASSANDRA_HOME="$NUMREP_FAULTS_CLUSTER_HOME" NUMREP_CASSANDRA_NET="$NUMREP_FAULTS_CLUSTER_NET" \
    NUMREP_CASSANDRA_JMX_BASE=7300 bash infra/cassandra/cassandra.sh "$@"
}
single() {
  NUMREP_CASSANDRA_HOME="$NUMREP_FAULTS_SINGLE_HOME" NUMREP_CASSANDRA_NET="$NUMREP_FAULTS_SINGLE_NET" \
    NUMREP_CASSANDRA_JMX_BASE=7400 bash infra/cassandra/cassandra.sh "$@"
}

cleanup() {
  status=$?
  cluster stop || true
  single stop || true
  echo "make test-faults: finished in $(( $(date +%s) - started )) s (exit $status)"
}
trap cleanup EXIT

cluster start --nodes 3
echo "make test-faults: cluster up after $(( $(date +%s) - started )) s"

# NUMREP_TEST_FAULTS=1 selects the `faults`-marked tests; the other fault scenarios
# (SIGKILL of the exchange, full or read-only disk) run too, the Cassandra halves on the cluster.
NUMREP_TEST_FAULTS=1 NUMREP_TEST_CASSANDRA="$NUMREP_FAULTS_CLUSTER_NET.1:9042" \
  "$PY" -m pytest -q -p no:cacheprovider -rA tests/faults "$@"
