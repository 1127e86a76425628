"""A Sync chunk is sent as bytes: the snapshot's stored entries copied verbatim,
then the entries built for this page and the chunk's own fields. It must be the
same message the page converts to."""

from __future__ import annotations

from datetime import datetime, timezone

from numrep.api.convert import sync_page_bytes, sync_page_to_pb
from numrep.core.model import Action, Listing, SyncEntry, SyncPage, Verdict
from numrep.store.wire import entry_field
from numrep.v1 import sync_pb2

NOW = datetime(2026, 11, 29, tzinfo=timezone.utc)


def listing(number: str, *tokens: str) -> Listing:
    return Listing(number, Action.BLOCK, "fraud.impersonation", 0.97, 3, NOW, tokens)


def test_stored_and_built_entries_make_the_message_the_page_converts_to() -> None:
    stored = [listing("+12025550143", "a.b.c"), listing("+12025550144", "d.e.f", "g.h.i")]
    rebuilt = Verdict("+12025550145", Action.WARN, "marketing.robocall", 0.8, 0.6, (), NOW, NOW, version=2)
    page = SyncPage((SyncEntry(rebuilt.number, rebuilt, ("j.k.l",)), SyncEntry("+12025550146", None, (), ("x/1",))),
                    cursor="c2", snapshot=True, caught_up=False,
                    encoded=b"".join(entry_field(x) for x in stored), encoded_count=len(stored))

    sent = sync_pb2.SyncChunk.FromString(sync_page_bytes(page))

    assert sent == sync_page_to_pb(page)
    assert [e.number for e in sent.entries] == ["+12025550143", "+12025550144", "+12025550145", "+12025550146"]
    assert list(sent.entries[1].labels) == ["d.e.f", "g.h.i"] and sent.entries[3].tombstone
    assert (sent.cursor, sent.snapshot, sent.caught_up) == ("c2", True, False)


def test_a_page_without_stored_entries_is_encoded_as_built() -> None:
    page = SyncPage((), cursor="c3", snapshot=False, caught_up=True)

    assert sync_page_bytes(page) == sync_page_to_pb(page).SerializeToString()
