"""Open a store from a URL: ``sqlite:///path/to/dir`` (or a bare directory) or
``cassandra://host[:port][,host...]/keyspace``."""

from __future__ import annotations

from pathlib import Path

from numrep.core.errors import InvalidArgument
from numrep.store.base import Store


def open_store(url: str, data_dir: Path) -> Store:
    if url in ("", "sqlite"):
        from numrep.store.sqlite import SqliteStore

        return SqliteStore.in_directory(data_dir)
    if url.startswith("sqlite://"):
        from numrep.store.sqlite import SqliteStore

        return SqliteStore.in_directory(Path(url.removeprefix("sqlite://")))
    if url.startswith("cassandra://"):
        try:
            from numrep.store.cassandra import CassandraStore
        except ImportError as exc:  # the Cassandra store lands in its own issue
            raise InvalidArgument(f"the Cassandra store is not available: {exc}") from None
        return CassandraStore.from_url(url)
    raise InvalidArgument(f"unknown store {url!r}; use 'sqlite' or cassandra://host[:port]/keyspace")
