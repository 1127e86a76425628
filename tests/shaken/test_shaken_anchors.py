"""TrustAnchors: configured CA certificates (files, directories) and the local x5u cache."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from numrep.shaken import TrustAnchors, verify_passport

from shaken_pki import NOW, X5U, Pki, ca_cert, claims, leaf_cert, p256, sign

CALLER = "+12025550143"


def test_from_pem_files(pki: Pki, tmp_path: Path) -> None:
    path = tmp_path / "sti-root.pem"
    path.write_bytes(pki.root_pem())
    trust = TrustAnchors.from_pem_files(path)
    assert trust.roots == (pki.root,)
    trust.cache_certificate(X5U, pki.bundle_pem())
    assert verify_passport(sign(pki.leaf_key), CALLER, trust, NOW).reason == "verified_a"


def test_from_directory_reads_every_pem(pki: Pki, other_pki: Pki, tmp_path: Path) -> None:
    (tmp_path / "a.pem").write_bytes(pki.root_pem())
    (tmp_path / "b.crt").write_bytes(other_pki.root_pem())
    (tmp_path / "README.txt").write_text("not a certificate")
    trust = TrustAnchors.from_directory(tmp_path)
    assert set(trust.roots) == {pki.root, other_pki.root}


def test_from_directory_without_certificates_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no PEM certificates"):
        TrustAnchors.from_directory(tmp_path)


def test_from_pem_rejects_garbage() -> None:
    with pytest.raises(ValueError, match="not PEM certificates|no certificate"):
        TrustAnchors.from_pem(b"-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n")


def test_load_cache_index(pki: Pki, tmp_path: Path) -> None:
    (tmp_path / "sp-1234.pem").write_bytes(pki.bundle_pem())
    index = tmp_path / "index.json"
    index.write_text(json.dumps({X5U: "sp-1234.pem"}))
    trust = TrustAnchors.from_pem(pki.root_pem())
    assert X5U not in trust
    assert trust.load_cache(index) == 1
    assert X5U in trust and trust.cached(X5U) == (pki.leaf, pki.inter)
    assert verify_passport(sign(pki.leaf_key), CALLER, trust, NOW).reason == "verified_a"


def test_cache_is_keyed_by_https_url(pki: Pki) -> None:
    trust = TrustAnchors([pki.root])
    with pytest.raises(ValueError, match="https x5u URL"):
        trust.cache_certificate("http://cert.example/cert.pem", pki.bundle_pem())
    with pytest.raises(ValueError, match="no certificate"):
        trust.cache_certificate(X5U, [])


def test_evict_makes_the_certificate_unavailable(pki: Pki, anchors: TrustAnchors) -> None:
    anchors.evict(X5U)
    assert verify_passport(sign(pki.leaf_key), CALLER, anchors, NOW).reason == "certificate_unavailable"


def test_remembered_chain_still_honours_validity(pki: Pki) -> None:
    """A chain verified once is remembered only for the window in which all of it is valid."""
    inter_key, key = p256(), p256()
    inter = ca_cert("Short-lived STI-CA", inter_key, pki.root, pki.root_key, not_before=NOW - timedelta(days=1), not_after=NOW + timedelta(days=1))
    trust = TrustAnchors([pki.root], cache={X5U: [leaf_cert(key, inter, inter_key), inter]})
    assert verify_passport(sign(key), CALLER, trust, NOW).reason == "verified_a"
    assert verify_passport(sign(key), CALLER, trust, NOW).reason == "verified_a"
    later = NOW + timedelta(days=2)
    result = verify_passport(sign(key, body=claims(iat=later)), CALLER, trust, later)
    assert result.reason == "untrusted_certificate"
    assert "not valid at validation time" in result.message


def test_anchors_must_be_certificates() -> None:
    with pytest.raises(TypeError, match="x509.Certificate"):
        TrustAnchors(["-----BEGIN CERTIFICATE-----"])  # type: ignore[list-item]
