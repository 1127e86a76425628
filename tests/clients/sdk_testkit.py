"""Helpers for the SDK tests (imported by name: this directory is on sys.path)."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Callable, Sequence

from numrep.signing.keys import Identity

SPAM_NUMBER = "+12025550143"
SPAM_NUMBER_LOCAL = "(202) 555-0143"
CLEAN_NUMBER = "+12025550188"
SLOW_NUMBER = "+12025550199"  # the ``slow_number`` fixture's
SLOW = 0.6  # how long the exchange takes over SLOW_NUMBER under ``slow_number``
# A stream write racing the exchange's going away can end the stream INTERNAL in grpcio (grpc/grpc#36066): still a
# fail-open within the deadline, under another reason.
WRITE_RACED_THE_END = ("server_error", "Internal error from Core")
LOOKUP_RATE = "carrier.lookup=0.2/5"  # the ``rated`` exchange's: a slow refill, so no test's lookup rides on tokens earned meanwhile


def numbers(count: int, start: int = 1000) -> list[str]:
    """Distinct valid numbers, so that no check is answered from the client's cache."""
    return [f"+1202555{n:04d}" for n in range(start, start + count)]


def stream_threads() -> list[threading.Thread]:
    """The threads the blocking carrier client's lookup streams run on."""
    return [t for t in threading.enumerate() if t.name == "numrep-lookup-stream"]


class FakeClock:
    """A settable clock: ``clock()`` returns the current value, ``advance(s)`` moves it."""

    def __init__(self, start: float = 1_000.0) -> None:
        self.now = start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds


def save_identity(identity: Identity, directory: Path) -> Path:
    path = directory / f"{identity.participant_id}.json"
    identity.save(path)
    return path


def public_jwk(identity: Identity) -> str:
    return json.dumps(identity.public_jwk())


def best_of(measure: Callable[[], Sequence[float]], deadline: float, tries: int = 3) -> list[list[float]]:
    """Run ``measure`` (it returns latencies in seconds) until one run keeps every
    latency inside ``deadline``, at most ``tries`` times; return every run.

    A client that waits for a stalled or absent exchange misses the deadline on
    every run. A test process the OS did not schedule for a few dozen
    milliseconds (a busy machine) spoils one run, not three in a row.
    """
    runs: list[list[float]] = []
    for _ in range(tries):
        runs.append(list(measure()))
        if max(runs[-1]) < deadline:
            break
    return runs


def make_pki(directory: Path) -> dict[str, Path]:
    """A throw-away CA and, signed by it, a server certificate for 127.0.0.1 and a
    client certificate (PEM files in ``directory``) for TLS and mutual TLS."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    def certificate(subject: str, key, issuer=None, issuer_key=None, ca: bool = False):  # type: ignore[no-untyped-def]
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
        now = dt.datetime.now(dt.timezone.utc)
        builder = (
            x509.CertificateBuilder().subject_name(name).issuer_name(issuer.subject if issuer else name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            builder = builder.add_extension(x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        return builder.sign(issuer_key or key, hashes.SHA256())

    directory.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = certificate("numrep SDK test CA", ca_key, ca=True)
    files = {"ca": directory / "ca.pem"}
    files["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    for who in ("server", "client"):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = certificate(f"numrep {who}", key, ca, ca_key)
        files[f"{who}_cert"] = directory / f"{who}.pem"
        files[f"{who}_cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        files[f"{who}_key"] = directory / f"{who}.key"
        files[f"{who}_key"].write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return files
