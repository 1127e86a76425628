"""Certificate files renewed on disk, noticed by a long-lived client.

A client reads its TLS files when it makes a channel, and TLS checks a client
certificate only at the handshake, while the exchange refuses every call a
client certificate authenticates once that certificate has expired. A client
that runs longer than its certificate must therefore pick up the renewed files
and connect again. ``CertificateRenewals`` looks at the files at most once per
``every`` seconds (a ``stat`` of each) and says when they have changed into a
certificate and key that belong together. A pair caught halfway through its
replacement (the certificate written, the key not yet) is not taken; the next
look tries again.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Callable

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from numrep_client._client import TlsFiles

RECHECK_SECONDS = 30.0  # how often a client looks at its certificate files
RETIRE_AFTER = 10.0  # seconds the old connections keep what they carry after a reconnection

Stamp = tuple[tuple[int, int, int], ...]


class CertificateRenewals:
    """Is there a renewed certificate on disk? Safe to ask from any thread."""

    def __init__(self, tls: TlsFiles, every: float = RECHECK_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        if not every >= 0:  # NaN too
            raise ValueError(f"tls_recheck must be a number of seconds >= 0, not {every!r}")
        self._tls = tls
        self._every = every
        self._clock = clock
        self._seen = _stamp(tls)
        self._next = clock() + every
        self._lock = threading.Lock()

    def renewed(self) -> bool:
        """Have the files changed into a matching pair since they were last read?"""
        if self._clock() < self._next or not self._lock.acquire(blocking=False):
            return False
        try:
            self._next = self._clock() + self._every
            stamp = _stamp(self._tls)
            if stamp == self._seen or not _pair_matches(self._tls):
                return False
            self._seen = stamp
            return True
        except OSError:  # a file is being replaced: the next look
            return False
        finally:
            self._lock.release()


def _stamp(tls: TlsFiles) -> Stamp:
    stats = [os.stat(path) for path in (tls.ca, tls.cert, tls.key) if path is not None]
    return tuple((s.st_ino, s.st_mtime_ns, s.st_size) for s in stats)


def _pair_matches(tls: TlsFiles) -> bool:
    if tls.cert is None or tls.key is None:
        return True
    try:
        leaf = x509.load_pem_x509_certificates(tls.cert.read_bytes())[0]
        key = serialization.load_pem_private_key(tls.key.read_bytes(), password=None)
    except (ValueError, TypeError, IndexError):
        return False
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    return leaf.public_key().public_bytes(*spki) == key.public_key().public_bytes(*spki)
