"""Trust anchors and the local certificate cache for SHAKEN verification.

Two things are configured, never discovered:

- the **anchors**: the CA certificates (in the US, the STI-PA's list of
  approved STI-CAs) that a signing certificate must chain to;
- the **cache**: the certificate bundle behind each ``x5u`` URL, leaf first
  then its intermediates, exactly as the STI-SP publishes it.

Nothing in this package opens a network connection. A verifier must answer
inside call set-up time, and fetching an attacker-chosen URL there would be
both slow and a server-side request forgery; so an ``x5u`` that is not in the
cache is reported as ``certificate_unavailable``, and filling the cache is
the job of an out-of-band refresher (``cache_certificate`` / ``load_cache``).
"""

from __future__ import annotations

import json
import threading
from datetime import datetime
from pathlib import Path
from typing import Iterable, Mapping, Sequence
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.x509 import verification

PEM_SUFFIXES = (".pem", ".crt", ".cer")
MAX_VERIFIED_CHAINS = 10_000  # remembered verified chains; about one per signing certificate in use


class TrustAnchors:
    """Configured CA certificates plus a certificate cache keyed by x5u URL."""

    def __init__(
        self,
        roots: Iterable[x509.Certificate] = (),
        cache: Mapping[str, Sequence[x509.Certificate]] | None = None,
    ) -> None:
        self._roots = tuple(roots)
        for root in self._roots:
            if not isinstance(root, x509.Certificate):
                raise TypeError(f"a trust anchor must be an x509.Certificate, not {type(root).__name__}")
        self._store = verification.Store(list(self._roots)) if self._roots else None
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[x509.Certificate, ...]] = {}
        # chains that verified, with the window in which every certificate on the path is valid
        self._verified: dict[tuple[x509.Certificate, ...], tuple[datetime, datetime]] = {}
        for url, chain in (cache or {}).items():
            self._put(url, tuple(chain))

    # -- construction ---------------------------------------------------------

    @classmethod
    def from_pem(cls, *pem: bytes | str) -> TrustAnchors:
        """Anchors from PEM text; each argument may hold several certificates."""
        roots: list[x509.Certificate] = []
        for item in pem:
            roots.extend(_load_pem(item, "trust anchor PEM"))
        return cls(roots)

    @classmethod
    def from_pem_files(cls, *paths: str | Path) -> TrustAnchors:
        """Anchors from PEM files; each file may hold several certificates."""
        roots: list[x509.Certificate] = []
        for path in paths:
            roots.extend(_load_pem(Path(path).read_bytes(), str(path)))
        return cls(roots)

    @classmethod
    def from_directory(cls, directory: str | Path) -> TrustAnchors:
        """Anchors from every ``*.pem``, ``*.crt`` and ``*.cer`` (PEM) file in ``directory``."""
        folder = Path(directory)
        files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in PEM_SUFFIXES)
        if not files:
            raise ValueError(f"no PEM certificates ({', '.join(PEM_SUFFIXES)}) in {folder}")
        return cls.from_pem_files(*files)

    # -- the cache ------------------------------------------------------------

    def cache_certificate(self, url: str, pem: bytes | str | Sequence[x509.Certificate]) -> None:
        """Store the bundle served at ``url``: the signing (leaf) certificate first, then its chain."""
        chain = tuple(pem) if not isinstance(pem, (bytes, str)) else tuple(_load_pem(pem, url))
        self._put(url, chain)

    def load_cache(self, index: str | Path) -> int:
        """Load cached bundles from a JSON index ``{"https://...": "file.pem", ...}``.

        Paths are relative to the index file. Returns how many URLs were loaded.
        """
        index_path = Path(index)
        entries = json.loads(index_path.read_text(encoding="utf-8"))
        if not isinstance(entries, dict):
            raise ValueError(f"{index_path}: expected a JSON object mapping x5u URLs to PEM files")
        for url, name in entries.items():
            if not isinstance(name, str):
                raise ValueError(f"{index_path}: the file for {url!r} must be a string")
            self.cache_certificate(url, (index_path.parent / name).read_bytes())
        return len(entries)

    def evict(self, url: str) -> None:
        with self._lock:
            self._cache.pop(url, None)

    def cached(self, url: str) -> tuple[x509.Certificate, ...] | None:
        """The bundle cached for ``url`` (leaf first), or None. Never fetches."""
        return self._cache.get(url)

    def __contains__(self, url: object) -> bool:
        return isinstance(url, str) and url in self._cache

    @property
    def roots(self) -> tuple[x509.Certificate, ...]:
        return self._roots

    # -- verification ---------------------------------------------------------

    def verify_chain(self, leaf: x509.Certificate, intermediates: Sequence[x509.Certificate], now: datetime) -> None:
        """Raise ``verification.VerificationError`` unless ``leaf`` chains to an anchor at ``now``.

        Path building and RFC 5280 checks are cryptography's (the Rust verifier):
        CA certificates must meet its Web-PKI CA profile (basicConstraints CA,
        keyCertSign, key identifiers); the STI-SP leaf may carry any non-critical
        extension (TNAuthList among them) but must not be a CA.

        A chain that verified is remembered with the window in which every
        certificate on its path is valid, so the next call from the same
        provider costs a dictionary lookup instead of path building (the
        anchors never change after construction, so nothing else can change
        the answer). Failures are not remembered.
        """
        if self._store is None:
            raise verification.VerificationError("no trust anchors are configured")
        key = (leaf, *intermediates)
        window = self._verified.get(key)
        if window is not None and window[0] <= now <= window[1]:
            return
        verifier = (
            verification.PolicyBuilder()
            .store(self._store)
            .time(now)
            .extension_policies(ca_policy=verification.ExtensionPolicy.webpki_defaults_ca(), ee_policy=_LEAF_POLICY)
            .build_client_verifier()
        )
        path = verifier.verify(leaf, list(intermediates)).chain
        if len(self._verified) >= MAX_VERIFIED_CHAINS:
            self._verified.clear()
        self._verified[key] = (
            max(c.not_valid_before_utc for c in path),
            min(c.not_valid_after_utc for c in path),
        )

    def _put(self, url: str, chain: tuple[x509.Certificate, ...]) -> None:
        parts = urlsplit(url) if isinstance(url, str) else None
        if parts is None or parts.scheme != "https" or not parts.hostname:
            raise ValueError(f"a cached certificate must be keyed by its https x5u URL, not {url!r}")
        if not chain:
            raise ValueError(f"no certificate for {url}")
        for cert in chain:
            if not isinstance(cert, x509.Certificate):
                raise TypeError(f"the bundle for {url} must hold x509.Certificate objects")
        with self._lock:
            self._cache[url] = chain


def _leaf_basic_constraints(_policy: object, _cert: x509.Certificate, ext: x509.BasicConstraints | None) -> None:
    if ext is not None and ext.ca:
        raise ValueError("the signing certificate is a CA certificate")


_LEAF_POLICY = verification.ExtensionPolicy.permit_all().may_be_present(
    x509.BasicConstraints, verification.Criticality.AGNOSTIC, _leaf_basic_constraints
)


def _load_pem(data: bytes | str, where: str) -> list[x509.Certificate]:
    raw = data.encode("ascii") if isinstance(data, str) else data
    try:
        certs = x509.load_pem_x509_certificates(raw)
    except ValueError as exc:
        raise ValueError(f"{where}: not PEM certificates ({exc})") from None
    if not certs:
        raise ValueError(f"{where}: no certificate found")
    return certs
