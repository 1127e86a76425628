"""Open a store from a URL: ``sqlite:///path/to/dir`` (or a bare directory) or
``cassandra://host[:port][,host...]/keyspace``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from numrep.core.errors import InvalidArgument
from numrep.store.base import Store

if TYPE_CHECKING:
    from numrep.store.cases_base import CaseStore
    from numrep.store.consent_base import ConsentStore


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


def case_store_for(store: Store) -> "CaseStore":
    """The case store that lives beside ``store``: a sibling file of an SQLite
    store's (``numrep-cases.sqlite3`` beside ``numrep.sqlite3``), the same
    keyspace (and driver session) as a Cassandra store."""
    from numrep.store.cases_base import CaseStore

    inner = getattr(store, "inner", store)  # a TracedStore wraps the real one
    from numrep.store.sqlite import SqliteStore

    if isinstance(inner, SqliteStore):
        from numrep.store.cases_sqlite import SqliteCaseStore

        return SqliteCaseStore.beside(inner.path)
    try:
        from numrep.store.cassandra import CassandraStore
    except ImportError:  # no driver installed: the store cannot be a Cassandra one
        CassandraStore = None  # type: ignore[assignment,misc]
    if CassandraStore is not None and isinstance(inner, CassandraStore):
        from numrep.store.cases_cassandra import CassandraCaseStore

        return CassandraCaseStore.beside(inner)
    if isinstance(inner, CaseStore):
        return inner
    raise InvalidArgument(f"no case store for a {type(inner).__name__}")


def open_consent_store(store: Store) -> "ConsentStore":
    """The consent ledger beside ``store``: the same SQLite file, or the same
    Cassandra session and keyspace (tables from ``infra/schema/v003_consent.cql``)."""
    from numrep.store.sqlite import SqliteStore

    inner = getattr(store, "inner", store)  # a TracedStore wraps the real one
    if isinstance(inner, SqliteStore):
        from numrep.store.consent_sqlite import SqliteConsentStore

        return SqliteConsentStore(inner.path)
    from numrep.store.cassandra import CassandraStore

    if isinstance(inner, CassandraStore):
        from numrep.store.consent_cassandra import CassandraConsentStore

        return CassandraConsentStore.sharing(inner)
    raise InvalidArgument(f"no consent ledger for a {type(inner).__name__}")
