"""A handset vendor's sync: pull the label set (a snapshot, then deltas) into a
local SQLite file, verifying every label offline against its publisher's key.

Start the demo exchange in one terminal (``make run``; it serves on
127.0.0.1:50051 and writes its identities to ``var/demo/identities/``), then,
from the repository root::

    .venv/bin/python examples/handset_sync.py --server 127.0.0.1:50051 \\
        --identity var/demo/identities/handset-acme.json --store var/demo/handset-example.sqlite3

The first run downloads a full snapshot; run it again and only the changes
since the stored cursor arrive (often none). The file holds what a phone's
call-directory extension needs: number, action, category and the signed labels.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from numrep.signing.keys import Identity
from numrep_client import ExchangeClient, ExchangeError, HandsetLabelStore, TlsFiles, sync_handset


def tls(args: argparse.Namespace) -> TlsFiles | None:
    return TlsFiles(args.tls_ca, args.tls_cert, args.tls_key) if args.tls_ca or args.tls_cert else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", default="127.0.0.1:50051", help="exchange address (default 127.0.0.1:50051)")
    parser.add_argument("--identity", type=Path, default=Path("var/demo/identities/handset-acme.json"),
                        help="the handset vendor's identity file")
    parser.add_argument("--store", type=Path, default=Path("var/demo/handset-example.sqlite3"),
                        help="the local label store, SQLite (created on the first run)")
    parser.add_argument("--chunk-size", type=int, default=0, help="numbers per chunk (0: the exchange's default)")
    parser.add_argument("--tls-ca", type=Path, help="PEM CA of the exchange's certificate (the exchange serves TLS)")
    parser.add_argument("--tls-cert", type=Path, help="client certificate, for mutual TLS")
    parser.add_argument("--tls-key", type=Path, help="client key, for mutual TLS")
    args = parser.parse_args(argv)

    identity = Identity.load(args.identity)
    store = HandsetLabelStore(args.store)
    started_from = "a full snapshot" if not store.cursor else "the stored cursor (deltas only)"
    try:
        with ExchangeClient(args.server, identity, timeout=30.0, tls=tls(args)) as client:
            report = sync_handset(client, store, args.chunk_size)
    except ExchangeError as exc:
        print(f"handset_sync: {exc}", file=sys.stderr)
        return 1
    print(f"synced {args.store} from {started_from}: {report.chunks} chunks, {report.upserts} numbers updated, "
          f"{report.tombstones} removed, {report.labels_verified} labels verified, "
          f"{len(report.labels_dropped)} dropped")
    for number, reason in report.labels_dropped[:5]:
        print(f"  dropped a label for {number}: {reason}")
    blocks = store.block_list()
    print(f"the handset now holds {len(blocks)} numbers to warn about or block")
    for number, action, category in blocks[:10]:
        print(f"  {number:<16} {action:<6} {category}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
