"""Certificate files renewed on disk, noticed by a long-lived client.

A client reads its TLS files when it makes a channel, and TLS checks a client
certificate only at the handshake, while the exchange refuses every call a
client certificate authenticates once that certificate has expired. A client
that runs longer than its certificate must therefore pick up the renewed files
and connect again. ``CertificateRenewals`` looks at the files at most once per
``every`` seconds (a ``stat`` of each) and offers them once they have changed
into a certificate and key that belong together; a pair caught halfway through
its replacement (the certificate written, the key not yet) is not offered. The
client then connects with them away from its checks, and takes them only once
that connection is up (``taken``); otherwise (``failed``) the next look offers
them again.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Callable

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from numrep.signing.certificates import public_key_bytes
from numrep_client._client import TlsFiles

RECHECK_SECONDS = 30.0  # how often a client looks at its certificate files
CONNECT_TIMEOUT = 10.0  # seconds a connection with renewed files has to come up before they are tried again later
RETIRE_AFTER = 10.0  # seconds the old connections stay open after the switch (a check's deadline is far shorter)

Stamp = tuple[tuple[int, int, int], ...]

log = logging.getLogger("numrep_client.renewal")


class CertificateRenewals:
    """Is there a renewed certificate on disk? Safe to ask from any thread; never raises."""

    def __init__(self, tls: TlsFiles, every: float = RECHECK_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self._tls = tls
        self._every = checked_recheck(every)
        self._clock = clock
        self._seen = _stamp(tls)
        self._warned: Stamp | None = None
        self._offered = False
        self._next = clock() + self._every
        self._lock = threading.Lock()

    def changed(self) -> Stamp | None:
        """The files' stamp if they now hold a renewed, matching pair not yet taken, and no
        connection with them is being tried; None otherwise (also between two looks)."""
        if self._clock() < self._next or not self._lock.acquire(blocking=False):
            return None
        try:
            if self._offered:
                return None
            self._next = self._clock() + self._every
            stamp = _stamp(self._tls)
            if stamp == self._seen:
                return None
            problem = _pair_problem(self._tls)
            if problem:
                if stamp != self._warned:
                    log.warning("renewed TLS files not taken yet: %s; looking again in %.0f s", problem, self._every)
                    self._warned = stamp
                return None
            self._offered = True
            return stamp
        except OSError:  # a file is being replaced: the next look
            return None
        except Exception:  # never let a look hold up a check
            log.warning("cannot read the TLS files; looking again in %.0f s", self._every, exc_info=True)
            return None
        finally:
            self._lock.release()

    def taken(self, stamp: Stamp) -> None:
        """The client now connects with the files as of ``stamp``."""
        with self._lock:
            self._seen, self._offered = stamp, False

    def failed(self, why: str) -> None:
        """No connection came up with the files offered: offer them again at the next look."""
        log.warning("reconnecting with the renewed TLS files failed (%s); trying again in %.0f s", why, self._every)
        with self._lock:
            self._offered = False


def checked_recheck(every: float) -> float:
    if not every >= 0:  # NaN too
        raise ValueError(f"tls_recheck must be a number of seconds >= 0, not {every!r}")
    return every


def _stamp(tls: TlsFiles) -> Stamp:
    stats = [os.stat(path) for path in (tls.ca, tls.cert, tls.key) if path is not None]
    return tuple((s.st_ino, s.st_mtime_ns, s.st_size) for s in stats)


def _pair_problem(tls: TlsFiles) -> str:
    """Why the certificate and key cannot be used together ("" if they can)."""
    if tls.cert is None or tls.key is None:
        return ""
    try:
        chain = x509.load_pem_x509_certificates(tls.cert.read_bytes())
    except ValueError as exc:
        return f"cannot read the certificate {tls.cert}: {exc}"
    try:
        key = serialization.load_pem_private_key(tls.key.read_bytes(), password=None)
    except (ValueError, TypeError) as exc:
        return f"cannot read the key {tls.key} (an unencrypted PEM key is needed): {exc}"
    if public_key_bytes(chain[0].public_key()) != public_key_bytes(key.public_key()):  # type: ignore[arg-type]
        return f"the key {tls.key} does not belong to the certificate {tls.cert}"
    return ""
