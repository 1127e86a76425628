"""Versioned CQL migrations from ``infra/schema/`` (``numrep migrate``)."""

from __future__ import annotations

import os
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[3]
_FILE = re.compile(r"^v(\d{3})_([a-z0-9_]+)\.cql$")
_KEYSPACE = re.compile(r"^[a-zA-Z][a-zA-Z0-9_]{0,47}$")


def schema_dir() -> Path:
    return Path(os.environ.get("NUMREP_SCHEMA_DIR") or REPO_ROOT / "infra" / "schema")


def migrations() -> list[tuple[int, str, Path]]:
    found = []
    for path in sorted(schema_dir().glob("v*.cql")):
        match = _FILE.match(path.name)
        if match:
            found.append((int(match.group(1)), match.group(2), path))
    if not found:
        raise FileNotFoundError(f"no CQL migrations in {schema_dir()}")
    return found


def replication_cql(spec: str) -> str:
    """'SimpleStrategy:1' or 'NetworkTopologyStrategy:dc1=3,dc2=3' as a CQL map."""
    strategy, _, rest = spec.partition(":")
    if strategy == "SimpleStrategy":
        return f"{{'class': 'SimpleStrategy', 'replication_factor': {int(rest or 1)}}}"
    if strategy == "NetworkTopologyStrategy":
        pairs = [p.split("=") for p in rest.split(",") if p]
        if not pairs:
            raise ValueError("NetworkTopologyStrategy needs dc=rf pairs, e.g. NetworkTopologyStrategy:datacenter1=3")
        body = ", ".join(f"'{dc}': {int(rf)}" for dc, rf in pairs)
        return f"{{'class': 'NetworkTopologyStrategy', {body}}}"
    raise ValueError(f"unknown replication {spec!r}; use SimpleStrategy:RF or NetworkTopologyStrategy:dc=rf,...")


def statements(text: str, keyspace: str) -> list[str]:
    lines = [line for line in text.splitlines() if not line.strip().startswith("--")]
    body = "\n".join(lines).replace("{keyspace}", keyspace)
    return [s.strip() for s in body.split(";") if s.strip()]


SCHEMA_TIMEOUT = 60.0  # schema changes wait for every node's agreement: slow on a loaded or multi-node ring


def migrate(session: Any, keyspace: str, replication: str = "SimpleStrategy:1") -> list[int]:
    """Create the keyspace if needed and apply the migrations not yet applied.
    Returns the versions applied now."""
    if not _KEYSPACE.match(keyspace):
        raise ValueError(f"invalid keyspace name {keyspace!r}")
    session.execute(f"CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = {replication_cql(replication)}", timeout=SCHEMA_TIMEOUT)
    session.execute(
        f"CREATE TABLE IF NOT EXISTS {keyspace}.schema_migrations (version int PRIMARY KEY, name text, applied_at timestamp)",
        timeout=SCHEMA_TIMEOUT,
    )
    done = {row.version for row in session.execute(f"SELECT version FROM {keyspace}.schema_migrations")}
    applied = []
    for version, name, path in migrations():
        if version in done:
            continue
        for statement in statements(path.read_text(), keyspace):
            session.execute(statement, timeout=SCHEMA_TIMEOUT)
        session.execute(
            f"INSERT INTO {keyspace}.schema_migrations (version, name, applied_at) VALUES (%s, %s, %s)",
            (version, name, datetime.now(timezone.utc)),
        )
        applied.append(version)
    return applied
