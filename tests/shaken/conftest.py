"""Fixtures for SHAKEN verification: one self-made PKI per session (key
generation is the only slow part), fresh trust anchors per test."""

from __future__ import annotations

import pytest

from numrep.shaken import TrustAnchors

from shaken_pki import X5U, Pki, build_pki


@pytest.fixture(scope="session")
def pki() -> Pki:
    return build_pki()


@pytest.fixture(scope="session")
def other_pki() -> Pki:
    """A second, unrelated hierarchy: its root is not a configured anchor."""
    return build_pki()


@pytest.fixture
def anchors(pki: Pki) -> TrustAnchors:
    trust = TrustAnchors([pki.root])
    trust.cache_certificate(X5U, pki.bundle_pem())
    return trust
