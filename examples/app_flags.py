"""An app vendor pushing its users' spam flags: pseudonymised, de-duplicated,
sent in idempotent batches with retries.

Start the demo exchange in one terminal (``make run``; it serves on
127.0.0.1:50051 and writes its identities to ``var/demo/identities/``), then,
from the repository root::

    .venv/bin/python examples/app_flags.py --server 127.0.0.1:50051 \\
        --identity var/demo/identities/app-callguard.json

Four users of the app flag ``(202) 555-0143`` (one of them twice, which is
de-duplicated before sending); raw user ids are replaced by HMAC-SHA256
pseudonyms under the app's own key (``--key-file``, created on first use) and
never leave the process. With ``--spool FILE`` unsent flags and their batch
ids survive a restart. The verdict before and after shows the flags counting.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from pathlib import Path

from numrep.signing.keys import Identity
from numrep_client import AppFlagClient, ExchangeClient, ExchangeError, TlsFiles

NUMBER = "(202) 555-0143"
USERS = ["user-1001", "user-1002", "user-1003", "user-1004"]


def load_key(path: Path) -> bytes:
    """The app's pseudonymisation key: 32 random bytes, created once, kept private."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_hex(32))
    return bytes.fromhex(path.read_text().strip())


def tls(args: argparse.Namespace) -> TlsFiles | None:
    return TlsFiles(args.tls_ca, args.tls_cert, args.tls_key) if args.tls_ca or args.tls_cert else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", default="127.0.0.1:50051", help="exchange address (default 127.0.0.1:50051)")
    parser.add_argument("--identity", type=Path, default=Path("var/demo/identities/app-callguard.json"),
                        help="the app vendor's identity file")
    parser.add_argument("--key-file", type=Path, default=Path("var/demo/app-pseudonym.key"),
                        help="the app's secret pseudonymisation key (hex; created if missing)")
    parser.add_argument("--spool", type=Path, default=None, help="SQLite file for a durable queue (optional)")
    parser.add_argument("--number", default=NUMBER, help=f"the number the users flag (default {NUMBER!r})")
    parser.add_argument("--tls-ca", type=Path, help="PEM CA of the exchange's certificate (the exchange serves TLS)")
    parser.add_argument("--tls-cert", type=Path, help="client certificate, for mutual TLS")
    parser.add_argument("--tls-key", type=Path, help="client key, for mutual TLS")
    args = parser.parse_args(argv)

    identity = Identity.load(args.identity)
    key = load_key(args.key_file)
    with ExchangeClient(args.server, identity, tls=tls(args)) as exchange, \
            AppFlagClient(args.server, identity, key, spool_path=args.spool, client=exchange) as app:
        try:
            before = exchange.lookup(args.number)
        except ExchangeError as exc:
            print(f"app_flags: {exc}", file=sys.stderr)
            return 1
        for user in USERS:
            queued = app.flag(args.number, "fraud.impersonation", user, comment="caller claimed to be the tax office")
            print(f"  queued a flag by {user} as reporter {queued.reporter_id[:12]}... for {queued.number}")
        app.flag(args.number, "fraud.impersonation", USERS[0], comment="called again")  # replaces the first one
        print(f"{app.pending()} flags queued")
        report = app.flush()
        print(f"flush: {report.batches} batch(es) {report.batch_ids}, {report.sent} flags sent, "
              f"{report.accepted} accepted, {report.replayed} already received, rejected {report.rejected or 'none'}, "
              f"{report.deduplicated} de-duplicated, {report.retries} retries, {report.pending} still queued")
        if report.error:
            print(f"app_flags: flush stopped: {report.error}", file=sys.stderr)
            return 1
        after = exchange.lookup(args.number)
        print(f"{after.number}: flag_count {before.flag_count} -> {after.flag_count}, "
              f"spam probability {before.spam_probability:.2f} -> {after.spam_probability:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
