"""A listed number's Sync entry in the wire format (numrep.v1), which stores keep
next to its verdict so that a snapshot streams stored bytes instead of decoding
and re-encoding every entry.

Each value is one element of ``SyncChunk.entries`` as encoded: the field's tag
and length, then the ``SyncEntry``. Such elements concatenate into a valid run
of entries, which a chunk carries as they are."""

from __future__ import annotations

from numrep.core.model import Action, Listing
from numrep.v1 import common_pb2, sync_pb2

_ACTIONS = {action: common_pb2.Action.Value(f"ACTION_{action.name}") for action in Action}


def entry_field(listing: Listing) -> bytes:
    """``listing`` as an encoded element of ``SyncChunk.entries``."""
    entry = sync_pb2.SyncEntry(number=listing.number, action=_ACTIONS[listing.action], category=listing.category,
                               spam_probability=listing.spam_probability, labels=listing.tokens, version=listing.version)
    return sync_pb2.SyncChunk(entries=[entry]).SerializeToString()
