"""``numrep cert ...``: the certificates of mutual TLS with certificate identity.

    numrep cert ca --out ca.pem --key-out ca.key [--name NAME] [--days 3650]
    numrep cert server HOST... --ca ca.pem --ca-key ca.key --out server.pem --key-out server.key
    numrep cert issue --identity id.json --ca ca.pem --ca-key ca.key --out id.pem --key-out id.key
    numrep cert issue PARTICIPANT --jwk pub.jwk --ca ca.pem --ca-key ca.key --out id.pem

``issue`` binds a participant id (SAN URI ``urn:numrep:participant:<id>``) to one
of its registered ES256 keys; with ``--identity`` it can also write that key as
the PEM file a TLS client reads.
"""

from __future__ import annotations

import argparse
import json
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from numrep.signing.certificates import (certificate_pem, issue_participant_certificate, issue_server_certificate,
                                         new_certificate_authority, participant_uri, private_key_pem)
from numrep.signing.keys import Identity

Command = Callable[..., argparse.ArgumentParser]


class CertError(ValueError):
    """A problem with the command's files or arguments (printed as one line)."""


def add_cert_commands(command: Command, need_subcommand: Callable[[argparse.Namespace], int]) -> None:
    cert = command("cert", "Certificates for mutual TLS: a CA, the exchange's certificate, participant certificates.",
                   need_subcommand)
    sub = cert.add_subparsers(title="actions", metavar="ACTION")

    def action(name: str, help_text: str, handler: Callable[[argparse.Namespace], int], days: int) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(handler=handler)
        p.add_argument("--out", type=Path, required=True, help="certificate to write (PEM)")
        p.add_argument("--days", type=int, default=days, help=f"validity in days (default {days})")
        return p

    p = action("ca", "Create a CA (self-signed P-256) to sign the exchange's and participants' certificates.", cmd_ca, 3650)
    p.add_argument("--key-out", type=Path, required=True, help="the CA's private key (PEM; keep it secret)")
    p.add_argument("--name", default="numrep participants CA", help="the CA's common name")

    p = action("server", "Issue the exchange's TLS certificate (new P-256 key) for host names or addresses.", cmd_server, 365)
    p.add_argument("hosts", nargs="+", help="DNS names or IP addresses clients connect to")
    p.add_argument("--key-out", type=Path, required=True, help="the server's private key (PEM)")
    _ca_flags(p)

    p = action("issue", "Issue a participant's client certificate for one of its registered ES256 keys "
                        "(certificate identity: calls need no per-call token).", cmd_issue, 365)
    p.add_argument("participant", nargs="?", help="participant id (default: the --identity file's)")
    key = p.add_mutually_exclusive_group(required=True)
    key.add_argument("--identity", type=Path, help="the participant's identity file (numrep keys ... --alg ES256)")
    key.add_argument("--jwk", type=Path, help="the participant's registered public JWK (the CA never sees the private key)")
    p.add_argument("--key-out", type=Path, help="with --identity: also write its private key as PEM for the TLS client")
    _ca_flags(p)


def _ca_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ca", type=Path, required=True, help="the CA certificate (PEM)")
    p.add_argument("--ca-key", type=Path, required=True, help="the CA's private key (PEM)")


def cmd_ca(args: argparse.Namespace) -> int:
    cert, key = new_certificate_authority(args.name, lifetime=_days(args))
    _write_secret(args.key_out, private_key_pem(key))
    args.out.write_bytes(certificate_pem(cert))
    print(f"wrote CA certificate {args.out} and key {args.key_out}")
    return 0


def cmd_server(args: argparse.Namespace) -> int:
    ca_cert, ca_key = _load_ca(args)
    cert, key = issue_server_certificate(args.hosts, ca_cert, ca_key, lifetime=_days(args))
    _write_secret(args.key_out, private_key_pem(key))
    args.out.write_bytes(certificate_pem(cert))
    print(f"wrote server certificate {args.out} (for {', '.join(args.hosts)}) and key {args.key_out}")
    return 0


def cmd_issue(args: argparse.Namespace) -> int:
    participant, jwk, identity = _participant_key(args)
    ca_cert, ca_key = _load_ca(args)
    cert = issue_participant_certificate(participant, jwk, ca_cert, ca_key, lifetime=_days(args))
    if args.key_out is not None:
        if identity is None:
            raise CertError("--key-out needs --identity (a JWK holds no private key)")
        _write_secret(args.key_out, private_key_pem(identity.private_key))
    args.out.write_bytes(certificate_pem(cert))
    print(f"wrote {args.out}: {participant_uri(participant)}, valid until {cert.not_valid_after_utc:%Y-%m-%d}")
    return 0


def _participant_key(args: argparse.Namespace) -> tuple[str, str, Identity | None]:
    """(participant id, public JWK text, the identity if given) from the arguments."""
    if args.identity is not None:
        identity = Identity.load(args.identity)
        if args.participant and args.participant != identity.participant_id:
            raise CertError(f"{args.identity} is {identity.participant_id!r}, not {args.participant!r}")
        return identity.participant_id, json.dumps(identity.public_jwk()), identity
    if not args.participant:
        raise CertError("with --jwk, name the participant: numrep cert issue PARTICIPANT --jwk FILE ...")
    return args.participant, args.jwk.read_text(), None


def _load_ca(args: argparse.Namespace) -> tuple[x509.Certificate, Any]:
    try:
        cert = x509.load_pem_x509_certificate(args.ca.read_bytes())
        key = serialization.load_pem_private_key(args.ca_key.read_bytes(), password=None)
    except ValueError as exc:
        raise CertError(f"cannot read the CA ({args.ca}, {args.ca_key}): {exc}") from None
    if cert.public_key() != key.public_key():
        raise CertError(f"{args.ca_key} is not the key of {args.ca}")
    return cert, key


def _days(args: argparse.Namespace) -> timedelta:
    if args.days <= 0:
        raise CertError("--days must be positive")
    return timedelta(days=args.days)


def _write_secret(path: Path, data: bytes) -> None:
    if path.exists():
        raise CertError(f"{path} exists; refusing to overwrite a private key")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_bytes(data)
