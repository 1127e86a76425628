"""Stores behind one narrow interface (``numrep.store.base.Store``)."""

from numrep.store.base import AddOutcome, Change, Store
from numrep.store.factory import open_store

__all__ = ["AddOutcome", "Change", "Store", "open_store"]
