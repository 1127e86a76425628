"""The deployment manifests parse and describe the scale path: stateless
exchange replicas in front of a 3-node Cassandra ring with RF=3."""

from __future__ import annotations

from pathlib import Path

import yaml

from numrep.store.cassandra import CassandraStore

DEPLOY = Path(__file__).resolve().parents[1] / "infra" / "deploy"


def _documents(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def test_every_manifest_parses() -> None:
    files = sorted(DEPLOY.rglob("*.yaml"))
    assert files, "no manifests found"
    for path in files:
        for doc in _documents(path):
            assert isinstance(doc, dict), path


def test_kubernetes_runs_replicated_exchange_in_front_of_three_cassandra_nodes() -> None:
    docs = {(d["kind"], d["metadata"]["name"]): d for p in (DEPLOY / "k8s").glob("*.yaml") for d in _documents(p)}
    exchange = docs[("Deployment", "numrep-exchange")]
    assert exchange["spec"]["replicas"] >= 2
    container = exchange["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["grpc"]["port"] == 50051  # gRPC health checking
    assert docs[("StatefulSet", "cassandra")]["spec"]["replicas"] == 3
    migrate_args = docs[("Job", "numrep-migrate")]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "NetworkTopologyStrategy:dc1=3" in migrate_args[-1]
    store_url = docs[("ConfigMap", "numrep-config")]["data"]["NUMREP_STORE"]
    options = CassandraStore.parse_url(store_url)
    assert len(options["contact_points"]) == 3 and options["local_dc"] == "dc1"


def test_compose_file_wires_the_same_topology() -> None:
    compose = _documents(DEPLOY / "compose.yaml")[0]
    services = compose["services"]
    assert {"cassandra-1", "cassandra-2", "cassandra-3", "migrate", "exchange"} <= set(services)
    assert "NetworkTopologyStrategy:dc1=3" in services["migrate"]["command"][-1]
    options = CassandraStore.parse_url(services["exchange"]["command"][-1])
    assert options["contact_points"] == ["cassandra-1", "cassandra-2", "cassandra-3"]
