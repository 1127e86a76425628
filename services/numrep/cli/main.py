"""``numrep``: run the exchange and act as a participant against it.

Errors are one line on stderr and a non-zero exit code, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import logging
import os
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable, Sequence

from numrep.config import SERVICES, ServerConfig, default_data_dir, parse_services
from numrep.core.categories import CATEGORIES
from numrep.core.errors import NumrepError
from numrep.core.model import Role

EXIT_ERROR = 1
DEFAULT_SERVER = "127.0.0.1:50051"


class CliError(Exception):
    """A problem the user can fix; printed as one line."""


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["replay"]:  # its own parser (and numpy) load only for this command
        from numrep.trust.replay import main as replay_main

        return replay_main(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return EXIT_ERROR
    logging.basicConfig(level=logging.INFO if getattr(args, "verbose", False) else logging.WARNING, format="%(message)s")
    try:
        return args.handler(args) or 0
    except KeyboardInterrupt:
        return 130
    except (CliError, NumrepError, OSError, ValueError) as exc:
        print(f"numrep: error: {getattr(exc, 'message', None) or exc}", file=sys.stderr)
        return EXIT_ERROR
    except Exception as exc:  # the last line of defence: a clear line, not a traceback
        from numrep_client import ExchangeError

        if isinstance(exc, ExchangeError):
            print(f"numrep: {exc.code.name.lower()}: {exc.details}", file=sys.stderr)
            return EXIT_ERROR
        print(f"numrep: unexpected error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_ERROR


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="numrep",
        description="numrep: a federated phone-number reputation exchange. Serve it, or act as a participant against it.",
    )
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")

    def command(name: str, help_text: str, handler: Callable[[argparse.Namespace], int | None]) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(handler=handler)
        return p

    p = command("serve", "Run the exchange's gRPC services (all, or a subset).", cmd_serve)
    _server_flags(p)
    p.add_argument("--services", default=os.environ.get("NUMREP_SERVICES", ",".join(SERVICES)),
                   help=f"comma-separated subset of: {', '.join(SERVICES)} (default: all)")

    p = command("demo", "Run the exchange with a demo federation seeded from real FTC complaints, then keep serving.", cmd_demo)
    _server_flags(p)
    p.add_argument("--fresh", action="store_true", help="wipe the demo data directory first")
    p.add_argument("--numbers", type=int, default=1500, help="how many complained-about numbers to seed (default 1500)")
    p.add_argument("--no-serve", action="store_true", help="exit after the walkthrough instead of serving")

    p = command("keys", "Generate a participant's signing key pair (identity file + public JWK).", cmd_keys)
    p.add_argument("participant", help="participant id, e.g. carrier-east")
    p.add_argument("--role", required=True, choices=[r.value for r in Role])
    p.add_argument("--alg", default="EdDSA", choices=["EdDSA", "ES256"])
    p.add_argument("--out", type=Path, required=True, help="identity file to write (private: keep it secret)")
    p.add_argument("--public-out", type=Path, help="also write the public JWK here")

    participants = command("participants", "Manage participants and keys (locally on --data-dir, or over gRPC as a regulator).", _need_subcommand)
    psub = participants.add_subparsers(title="actions", metavar="ACTION")
    for name, help_text, handler in [
        ("add", "Register a participant with its public JWK.", cmd_participants_add),
        ("list", "List participants and their keys.", cmd_participants_list),
        ("add-key", "Add a public key to a participant (rotation).", cmd_participants_add_key),
        ("revoke-key", "Revoke one of a participant's keys.", cmd_participants_revoke_key),
    ]:
        p = psub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(handler=handler)
        _admin_flags(p)
        if name in ("add", "add-key", "revoke-key"):
            p.add_argument("participant")
        if name == "add":
            p.add_argument("--role", required=True, choices=[r.value for r in Role])
            p.add_argument("--name", default="", help="display name")
        if name in ("add", "add-key"):
            p.add_argument("--jwk", type=Path, required=True, help="public JWK file")
        if name == "revoke-key":
            p.add_argument("kid")

    p = command("publish", "Sign and publish labels (one, or many from a CSV of number,category[,confidence]).", cmd_publish)
    _client_flags(p)
    p.add_argument("number", nargs="?")
    p.add_argument("category", nargs="?", help=f"one of: {', '.join(CATEGORIES)}")
    p.add_argument("--confidence", type=float, default=0.9)
    p.add_argument("--days", type=int, default=90, help="label lifetime in days (default 90)")
    p.add_argument("--evidence", default="", help="optional evidence text (no personal data)")
    p.add_argument("--csv", type=Path, help="CSV file with number,category[,confidence] rows")

    p = command("retract", "Retract labels you published, by label id.", cmd_retract)
    _client_flags(p)
    p.add_argument("label_ids", nargs="+")

    p = command("lookup", "Look numbers up and explain the verdicts.", cmd_lookup)
    _client_flags(p)
    p.add_argument("numbers", nargs="+")
    p.add_argument("--callee", default="", help="the called number: adds this call's consent state and calling hours")
    p.add_argument("--at", default="", help="with --callee: the call's time, ISO 8601 with offset (default now)")
    p.add_argument("--category", default="", help="with --callee: the call's declared category, e.g. marketing.loans")

    p = command("flag", "Send an end-user flag (app vendors).", cmd_flag)
    _client_flags(p)
    p.add_argument("number")
    p.add_argument("category")
    p.add_argument("--reporter", required=True, help="the app's pseudonymous reporter id")
    p.add_argument("--comment", default="")
    p.add_argument("--batch-id", help="idempotency key (default: random)")

    p = command("sync", "Sync the label set into a local file (snapshot first, then deltas), verifying every label.", cmd_sync)
    _client_flags(p)
    p.add_argument("--out", type=Path, required=True, help="local label store (SQLite); resumes from its cursor")
    p.add_argument("--chunk-size", type=int, default=0)

    trust = command("trust", "The learned trust engine: each participant's learned reliability, and refits.", _need_subcommand)
    tsub = trust.add_subparsers(title="actions", metavar="ACTION")
    for name, help_text, handler in [
        ("show", "Print what the trust engine has learned about each participant (regulator).", cmd_trust_show),
        ("refit", "Fit a new trust epoch from everything stored now and update every verdict (regulator).", cmd_trust_refit),
    ]:
        p = tsub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(handler=handler)
        _admin_flags(p)
        p.add_argument("--store", default=os.environ.get("NUMREP_STORE", "sqlite"),
                       help="with --data-dir: 'sqlite' (default) or cassandra://HOST[:PORT][,HOST...]/KEYSPACE")

    p = command("migrate", "Create or upgrade the Cassandra schema (infra/schema/*.cql).", cmd_migrate)
    p.add_argument("--store", default=os.environ.get("NUMREP_STORE", ""), help="cassandra://HOST[:PORT][,HOST...]/KEYSPACE[?replication=...]")

    p = sub.add_parser("replay", add_help=False, help="Replay a labelled history (CSV/JSONL) through the trust engine without a server; "
                       "score it where rows carry truth (see numrep replay --help).")
    p.add_argument("replay_args", nargs=argparse.REMAINDER)
    p.set_defaults(handler=cmd_replay)

    command("roles", "Print which role may call which RPC.", cmd_roles)
    _consent_commands(command)
    from numrep.cli.cases import add_case_commands

    add_case_commands(command, _client_flags, _need_subcommand)
    from numrep.cli.certs import add_cert_commands

    add_cert_commands(command, _need_subcommand)
    return parser


def _need_subcommand(args: argparse.Namespace) -> int:
    raise CliError("choose an action; see --help")


def _server_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--listen", default=os.environ.get("NUMREP_LISTEN", "127.0.0.1:50051"), help="HOST:PORT (default 127.0.0.1:50051)")
    p.add_argument("--http", default=None, metavar="HOST:PORT",
                   help="also serve the public web page on this HTTP side-port (default $NUMREP_HTTP_LISTEN; none if unset)")
    p.add_argument("--data-dir", type=Path, default=None, help="data directory (default $NUMREP_DATA_DIR or ~/.local/share/numrep)")
    p.add_argument("--store", default=os.environ.get("NUMREP_STORE", "sqlite"),
                   help="'sqlite' (embedded, default) or cassandra://HOST[:PORT][,HOST...]/KEYSPACE")
    p.add_argument("--region", default=os.environ.get("NUMREP_REGION", "US"), help="region for numbers without +country (default US)")
    p.add_argument("--telemetry", choices=["off", "console"], default=os.environ.get("NUMREP_TELEMETRY", "off"),
                   help="console: print spans and metrics (OTLP export follows the standard OTEL_* variables)")
    p.add_argument("--metrics-port", type=int, default=_env_int("NUMREP_METRICS_PORT"), help="serve Prometheus metrics on 127.0.0.1:PORT")
    p.add_argument("--log-format", choices=["text", "json"], default=os.environ.get("NUMREP_LOG_FORMAT", "text"))
    p.add_argument("--tls-cert", type=Path, default=_env_path("NUMREP_TLS_CERT"), help="PEM certificate chain: serve TLS")
    p.add_argument("--tls-key", type=Path, default=_env_path("NUMREP_TLS_KEY"), help="PEM private key for --tls-cert")
    p.add_argument("--tls-client-ca", type=Path, default=_env_path("NUMREP_TLS_CLIENT_CA"),
                   help="PEM CA bundle: require client certificates signed by it (mutual TLS)")
    p.add_argument("--shaken-anchors", type=Path, default=_env_path("NUMREP_SHAKEN_ANCHORS"),
                   help="directory of PEM STI-CA root certificates for caller-ID (STIR/SHAKEN) verification")
    p.add_argument("--shaken-cert-cache", type=Path, default=_env_path("NUMREP_SHAKEN_CERT_CACHE"),
                   help="JSON index {x5u URL: PEM file} of cached STI certificates (never fetched per call)")
    p.add_argument("-v", "--verbose", action="store_true")


def _client_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--server", default=os.environ.get("NUMREP_SERVER", DEFAULT_SERVER), help="exchange address (default $NUMREP_SERVER or 127.0.0.1:50051)")
    p.add_argument("--identity", type=Path, default=_env_path("NUMREP_IDENTITY"), help="your identity file (default $NUMREP_IDENTITY)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    _client_tls_flags(p)


def _client_tls_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tls-ca", type=Path, default=_env_path("NUMREP_TLS_CA"), help="PEM CA that signed the exchange's certificate (enables TLS)")
    p.add_argument("--tls-cert", type=Path, default=_env_path("NUMREP_TLS_CERT"), help="your PEM client certificate (mutual TLS)")
    p.add_argument("--tls-key", type=Path, default=_env_path("NUMREP_TLS_KEY"), help="your PEM client key (mutual TLS)")
    p.add_argument("--cert-identity", action="store_true", default=os.environ.get("NUMREP_CERT_IDENTITY") == "1",
                   help="your client certificate is bound to your participant (numrep cert issue): send no per-call tokens")


def _admin_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", type=Path, default=None, help="act locally on this data directory (operator)")
    p.add_argument("--server", default=os.environ.get("NUMREP_SERVER"), help="act over gRPC on this exchange instead")
    p.add_argument("--identity", type=Path, default=_env_path("NUMREP_IDENTITY"), help="identity file for --server")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    _client_tls_flags(p)


def _env_int(name: str) -> int | None:
    value = os.environ.get(name)
    return int(value) if value else None


def _telemetry(args: argparse.Namespace) -> Any:
    from numrep.telemetry import TelemetryConfig, setup_telemetry
    from numrep.telemetry.logs import configure_logging

    configure_logging(logging.INFO if args.verbose or args.log_format == "json" else logging.WARNING, args.log_format == "json")
    return setup_telemetry(TelemetryConfig(console=args.telemetry == "console", metrics_port=args.metrics_port))


def _env_path(name: str) -> Path | None:
    value = os.environ.get(name)
    return Path(value) if value else None


def _config(args: argparse.Namespace, services: str | None = None) -> ServerConfig:
    return ServerConfig.from_env(
        listen=args.listen,
        data_dir=args.data_dir or default_data_dir(),
        store=args.store,
        default_region=args.region,
        services=parse_services(services) if services else None,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        tls_client_ca=args.tls_client_ca,
        shaken_anchors=args.shaken_anchors,
        shaken_cert_cache=args.shaken_cert_cache,
        http_listen=args.http,
    )


# --- commands -----------------------------------------------------------------------
def cmd_serve(args: argparse.Namespace) -> int:
    from numrep.server import serve_forever

    config = _config(args, args.services)

    def announce(running: Any) -> None:
        print(f"numrep: serving {', '.join(config.services)} on {running.address} (store: {config.store}, data: {config.data_dir})", flush=True)
        if running.web is not None:
            print(f"numrep: web page on {running.web.url}", flush=True)

    telemetry = _telemetry(args)
    try:
        asyncio.run(serve_forever(config, announce, telemetry))
    finally:
        telemetry.shutdown()
    print("numrep: stopped", flush=True)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from numrep.demo.run import run_demo

    config = _config(args)
    telemetry = _telemetry(args)
    try:
        return run_demo(config, fresh=args.fresh, numbers=args.numbers, keep_serving=not args.no_serve, telemetry=telemetry)
    finally:
        telemetry.shutdown()


def cmd_keys(args: argparse.Namespace) -> int:
    from numrep.signing.keys import generate_identity

    if args.out.exists():
        raise CliError(f"{args.out} exists; refusing to overwrite a private key")
    identity = generate_identity(args.participant, Role(args.role), args.alg)
    identity.save(args.out)
    public = json.dumps(identity.public_jwk(), indent=2)
    if args.public_out:
        args.public_out.write_text(public + "\n")
    print(f"wrote identity {args.out} (kid {identity.kid}); public JWK:\n{public}")
    return 0


def _client(args: argparse.Namespace) -> Any:
    from numrep.signing.keys import Identity
    from numrep_client import ExchangeClient, TlsFiles

    if args.identity is None:
        raise CliError("no identity: pass --identity FILE or set NUMREP_IDENTITY")
    if not args.identity.exists():
        raise CliError(f"identity file {args.identity} not found")
    if args.cert_identity and not (args.tls_cert and args.tls_key):
        raise CliError("--cert-identity needs your client certificate and key: --tls-cert FILE --tls-key FILE")
    tls = TlsFiles(args.tls_ca, args.tls_cert, args.tls_key, args.cert_identity) if args.tls_ca or args.tls_cert else None
    return ExchangeClient(args.server, Identity.load(args.identity), tls=tls)


def _local_exchange(args: argparse.Namespace) -> Any:
    from numrep.server import build_exchange

    data_dir = args.data_dir or default_data_dir()
    return build_exchange(ServerConfig.from_env(data_dir=data_dir))


def _print_participants(participants: list[Any], as_json: bool) -> None:
    from numrep.cli.output import as_dict, emit_json, participant_text

    if as_json:
        emit_json([as_dict(p) for p in participants])
    else:
        for p in participants:
            print(participant_text(p))


def _admin(args: argparse.Namespace, remote: Callable[[Any], Any], local: Callable[[Any], Any]) -> None:
    from numrep.api.convert import participant_to_pb

    if args.server:
        with _client(args) as client:
            result = remote(client)
    else:
        exchange = _local_exchange(args)
        try:
            result = local(exchange)
            result = [participant_to_pb(p) for p in result] if isinstance(result, list) else participant_to_pb(result)
        finally:
            exchange.store.close()
    _print_participants(result if isinstance(result, list) else [result], args.json)


def cmd_participants_add(args: argparse.Namespace) -> int:
    from numrep.api.convert import ROLE_TO_PB

    jwk = _read(args.jwk)
    role = Role(args.role)
    _admin(
        args,
        lambda c: c.register_participant(args.participant, ROLE_TO_PB[role], [jwk], args.name),
        lambda x: x.register_participant(args.participant, role, args.name, [jwk]),
    )
    return 0


def cmd_participants_list(args: argparse.Namespace) -> int:
    _admin(args, lambda c: c.list_participants(), lambda x: x.list_participants())
    return 0


def cmd_participants_add_key(args: argparse.Namespace) -> int:
    jwk = _read(args.jwk)
    _admin(args, lambda c: c.add_key(args.participant, jwk), lambda x: x.add_key(None, args.participant, jwk))
    return 0


def cmd_participants_revoke_key(args: argparse.Namespace) -> int:
    _admin(args, lambda c: c.revoke_key(args.participant, args.kid), lambda x: x.revoke_key(None, args.participant, args.kid))
    return 0


def cmd_publish(args: argparse.Namespace) -> int:
    from numrep.signing.labels import sign_label

    rows: list[tuple[str, str, float]] = []
    if args.csv:
        with open(args.csv, newline="") as f:
            for row in csv.reader(f):
                if row and not row[0].startswith("#") and row[0] != "number":
                    rows.append((row[0], row[1], float(row[2]) if len(row) > 2 and row[2] else args.confidence))
    elif args.number and args.category:
        rows.append((args.number, args.category, args.confidence))
    else:
        raise CliError("give NUMBER CATEGORY, or --csv FILE")
    with _client(args) as client:
        tokens = [
            sign_label(client.identity, _e164(number), cat, conf, lifetime=timedelta(days=args.days), evidence=args.evidence)
            for number, cat, conf in rows
        ]
        results = client.publish(tokens)
    return _report_items(results, args.json)


def cmd_retract(args: argparse.Namespace) -> int:
    with _client(args) as client:
        results = client.retract(args.label_ids)
    return _report_items(results, args.json)


def _report_items(results: list[Any], as_json: bool) -> int:
    """Print per-item outcomes; exit 1 when any item was rejected."""
    from numrep.cli.output import as_dict, emit_json, item_text

    if as_json:
        emit_json([as_dict(r) for r in results])
    else:
        for r in results:
            print(item_text(r))
    return 0 if all(r.status != 3 for r in results) else EXIT_ERROR


def cmd_lookup(args: argparse.Namespace) -> int:
    from numrep.cli.output import as_dict, emit_json, verdict_text

    with _client(args) as client:
        if len(args.numbers) == 1 or args.callee:
            verdicts = [client.lookup(n, callee=args.callee, call_time=_when(args.at), call_category=args.category) for n in args.numbers]
            errors: list[str] = []
        else:
            results = client.batch_lookup(args.numbers)
            verdicts = [r.verdict for r in results if not r.error_code]
            errors = [f"{r.input}: {r.error_message}" for r in results if r.error_code]
    if args.json:
        emit_json({"verdicts": [as_dict(v) for v in verdicts], "errors": errors})
    else:
        print("\n".join(verdict_text(v) + (f"\n  {v.consent.explanation}" if v.HasField("consent") else "") for v in verdicts))
        for e in errors:
            print(f"error: {e}", file=sys.stderr)
    return EXIT_ERROR if errors else 0


def cmd_flag(args: argparse.Namespace) -> int:
    from numrep.cli.output import as_dict, emit_json, item_text
    from numrep_client import FlagToSend

    with _client(args) as client:
        result = client.submit_flags([FlagToSend(args.number, args.category, args.reporter, comment=args.comment)], args.batch_id)
    if args.json:
        emit_json(as_dict(result))
    else:
        for r in result.results:
            print(item_text(r) + ("  (batch already received)" if result.replayed_batch else ""))
    return 0 if result.accepted or result.replayed_batch else EXIT_ERROR


def cmd_sync(args: argparse.Namespace) -> int:
    from numrep.cli.output import emit_json
    from numrep_client import HandsetLabelStore, sync_handset

    store = HandsetLabelStore(args.out)
    started_from = "snapshot" if not store.cursor else "cursor"
    with _client(args) as client:
        report = sync_handset(client, store, args.chunk_size)
    summary = {
        "started_from": started_from,
        "chunks": report.chunks,
        "numbers_updated": report.upserts,
        "tombstones": report.tombstones,
        "labels_verified": report.labels_verified,
        "signatures_reused": report.signatures_reused,
        "labels_dropped": len(report.labels_dropped),
        "numbers_held": len(store.numbers),
        "file": str(args.out),
    }
    if args.json:
        emit_json(summary)
    else:
        print(f"synced from {started_from}: {report.chunks} chunks, {report.upserts} numbers updated, "
              f"{report.tombstones} removed, {report.labels_verified} labels verified offline "
              f"({report.signatures_reused} of them held already: signature not checked again), "
              f"{len(report.labels_dropped)} dropped; {len(store.numbers)} numbers now in {args.out}")
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    if not args.store.startswith("cassandra://"):
        raise CliError("migrate applies to a Cassandra store: --store cassandra://HOST/KEYSPACE (SQLite needs no migration)")
    from numrep.store.cassandra import CassandraStore
    from numrep.store.cassandra_schema import migrate

    store = CassandraStore.from_url(args.store, run_migrations=False)
    try:
        options = CassandraStore.parse_url(args.store)
        applied = migrate(store._session, store.keyspace, options.get("replication", "SimpleStrategy:1"))
    finally:
        store.close()
    print(f"keyspace {store.keyspace}: applied {', '.join(f'v{v:03d}' for v in applied) if applied else 'nothing (up to date)'}")
    return 0


def cmd_trust_show(args: argparse.Namespace) -> int:
    from numrep.api.convert import trust_report_to_pb

    _trust(args, lambda c: c.trust_report(), lambda x: trust_report_to_pb(x.trust_snapshot()))
    return 0


def cmd_trust_refit(args: argparse.Namespace) -> int:
    from numrep.api.convert import trust_report_to_pb

    _trust(args, lambda c: c.refit_trust(), lambda x: trust_report_to_pb(*x.refit_trust()))
    return 0


def _trust(args: argparse.Namespace, remote: Callable[[Any], Any], local: Callable[[Any], Any]) -> None:
    from numrep.cli.output import as_dict, emit_json, trust_text
    from numrep.server import build_exchange

    if args.server:
        with _client(args) as client:
            report = remote(client)
    else:
        exchange = build_exchange(ServerConfig.from_env(data_dir=args.data_dir or default_data_dir(), store=args.store))
        try:
            report = local(exchange)
        finally:
            exchange.store.close()
    if args.json:
        emit_json(as_dict(report))
    else:
        print(trust_text(report))


def cmd_replay(args: argparse.Namespace) -> int:
    from numrep.trust.replay import main as replay_main

    return replay_main(args.replay_args)


def _consent_commands(command: Callable[..., argparse.ArgumentParser]) -> None:
    consent = command("consent", "Consent ledger: register consent, record refusals, revoke them, ask the state of a call.", _need_subcommand)
    csub = consent.add_subparsers(title="actions", metavar="ACTION")

    def action(name: str, help_text: str, handler: Callable[[argparse.Namespace], int]) -> argparse.ArgumentParser:
        p = csub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(handler=handler)
        _client_flags(p)
        return p

    p = action("register", "Sign and register a consent record (carriers, the regulator).", cmd_consent_register)
    p.add_argument("caller", help="the caller's number, or several separated by commas (an enterprise's numbers)")
    p.add_argument("callee")
    p.add_argument("--scope", required=True, help="marketing categories, comma-separated (e.g. marketing.loans,marketing.insurance)")
    evidence = p.add_mutually_exclusive_group(required=True)
    evidence.add_argument("--evidence-file", type=Path, help="the consent proof you keep; only its SHA-256 is sent")
    evidence.add_argument("--evidence-hash", help="sha256:<64 hex digits> of the consent proof")
    p.add_argument("--hours", default="", help="allowed hours in the callee's local time, e.g. 'mon-fri 09:00-20:00; sat 10:00-14:00'")
    p.add_argument("--tz", default="", help="the callee's IANA time zone, when the number does not tell it")
    p.add_argument("--enterprise", default="", help="enterprise id the caller numbers belong to")
    p.add_argument("--days", type=int, default=365, help="consent lifetime in days (default 365)")

    p = action("refuse", "Sign and record a callee's refusal (carriers, app vendors).", cmd_consent_refuse)
    p.add_argument("callee")
    p.add_argument("--caller", action="append", default=[], help="a refused caller number (repeat); default: every marketing caller")
    p.add_argument("--days", type=int, default=0, help="refusal lifetime in days (default: no end)")

    p = action("revoke", "Revoke your consent records or refusals by id.", cmd_consent_revoke)
    p.add_argument("record_ids", nargs="+")

    p = action("state", "The consent state of a call, as a lookup would apply it.", cmd_consent_state)
    p.add_argument("caller")
    p.add_argument("callee")
    p.add_argument("--at", default="", help="the call's time, ISO 8601 with offset (default now)")
    p.add_argument("--category", default="", help="the call's category (default marketing)")


def cmd_consent_register(args: argparse.Namespace) -> int:
    from numrep.signing.consent import evidence_hash, sign_consent

    proof = evidence_hash(_read_bytes(args.evidence_file)) if args.evidence_file else args.evidence_hash
    callers = [_e164(c) for c in args.caller.split(",") if c.strip()]
    scope = [s.strip() for s in args.scope.split(",") if s.strip()]
    with _client(args) as client:
        token = sign_consent(client.identity, callers, _e164(args.callee), scope, proof, hours=args.hours, tz=args.tz,
                             enterprise=args.enterprise, lifetime=timedelta(days=args.days))
        results = client.register_consent([token])
    return _report_items(results, args.json)


def cmd_consent_refuse(args: argparse.Namespace) -> int:
    from numrep.signing.consent import sign_refusal

    callers = [_e164(c) for c in args.caller] or "*"
    with _client(args) as client:
        token = sign_refusal(client.identity, _e164(args.callee), callers, lifetime=timedelta(days=args.days) if args.days else None)
        results = client.record_refusal([token])
    return _report_items(results, args.json)


def cmd_consent_revoke(args: argparse.Namespace) -> int:
    with _client(args) as client:
        results = client.revoke_consent(args.record_ids)
    return _report_items(results, args.json)


def cmd_consent_state(args: argparse.Namespace) -> int:
    from numrep.cli.output import as_dict, emit_json

    with _client(args) as client:
        check = client.consent_state(args.caller, args.callee, _when(args.at), args.category)
    if args.json:
        emit_json(as_dict(check))
    else:
        print(check.explanation + (f" Decided by {check.record_id}." if check.record_id else ""))
    return 0


def _when(text: str) -> Any:
    """An aware datetime from ISO 8601 text, or None for empty text."""
    from datetime import datetime

    if not text:
        return None
    at = datetime.fromisoformat(text)
    if at.tzinfo is None:
        raise CliError(f"time {text!r} needs a UTC offset, e.g. 2026-11-29T18:30:00+00:00")
    return at


def _read_bytes(path: Path) -> bytes:
    if not path.exists():
        raise CliError(f"file {path} not found")
    return path.read_bytes()


def cmd_roles(args: argparse.Namespace) -> int:
    from numrep.core.roles import matrix_markdown

    print(matrix_markdown())
    return 0


def _read(path: Path) -> str:
    if not path.exists():
        raise CliError(f"file {path} not found")
    return path.read_text()


def _e164(number: str) -> str:
    from numrep.core.numbers import normalize

    return normalize(number, os.environ.get("NUMREP_REGION", "US"))


if __name__ == "__main__":
    sys.exit(main())
