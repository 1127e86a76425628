"""``CertificateRenewals``: when the carrier SDK offers renewed TLS files for a new
connection. Real PEM files in a temporary directory, a settable clock; the
reconnection itself is tested end to end in ``test_client_tls.py``."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

from numrep.core.model import Role
from numrep.signing.certificates import certificate_pem, issue_participant_certificate, new_certificate_authority, private_key_pem
from numrep.signing.keys import Identity, generate_identity
from numrep_client import TlsFiles
from numrep_client._renewal import CertificateRenewals

from sdk_testkit import FakeClock

EVERY = 30.0


class Files:
    def __init__(self, directory: Path) -> None:
        self.ca_cert, self.ca_key = new_certificate_authority("renewals CA")
        self.tls = TlsFiles(directory / "ca.pem", directory / "me.pem", directory / "me.key")
        self.tls.ca.write_bytes(certificate_pem(self.ca_cert))  # type: ignore[union-attr]

    def write(self, holder: Identity, *, cert: bool = True, key: bool = True) -> None:
        if cert:
            issued = issue_participant_certificate(holder.participant_id, json.dumps(holder.public_jwk()), self.ca_cert, self.ca_key)  # type: ignore[arg-type]
            _replace(self.tls.cert, certificate_pem(issued))
        if key:
            _replace(self.tls.key, private_key_pem(holder.private_key))


def _replace(path: Path | None, data: bytes) -> None:
    """As renewal tools do: a new file renamed over the old one."""
    assert path is not None
    fresh = path.with_suffix(".new")
    fresh.write_bytes(data)
    os.replace(fresh, path)


@pytest.fixture
def files(tmp_path: Path) -> Files:
    made = Files(tmp_path)
    made.write(generate_identity("carrier-a", Role.CARRIER, "ES256"))
    return made


def test_unchanged_files_are_never_offered(files):
    clock = FakeClock()
    renewals = CertificateRenewals(files.tls, EVERY, clock)
    clock.advance(10 * EVERY)
    assert renewals.changed() is None


def test_renewed_files_are_offered_at_the_next_look_and_not_again_once_taken(files):
    clock = FakeClock()
    renewals = CertificateRenewals(files.tls, EVERY, clock)
    files.write(generate_identity("carrier-a", Role.CARRIER, "ES256"))
    assert renewals.changed() is None  # not before the next look
    clock.advance(EVERY)
    stamp = renewals.changed()
    assert stamp is not None
    clock.advance(EVERY)
    assert renewals.changed() is None  # a connection with them is being tried
    renewals.taken(stamp)
    clock.advance(EVERY)
    assert renewals.changed() is None


def test_renewed_files_whose_connection_failed_are_offered_again_at_the_next_look(files):
    clock = FakeClock()
    renewals = CertificateRenewals(files.tls, EVERY, clock)
    files.write(generate_identity("carrier-a", Role.CARRIER, "ES256"))
    clock.advance(EVERY)
    assert renewals.changed() is not None
    renewals.failed("the TLS handshake failed")
    assert renewals.changed() is None
    clock.advance(EVERY)
    assert renewals.changed() is not None


def test_a_certificate_whose_key_is_not_written_yet_is_not_offered_and_is_warned_about_once(files, caplog):
    clock = FakeClock()
    renewals = CertificateRenewals(files.tls, EVERY, clock)
    renewed = generate_identity("carrier-a", Role.CARRIER, "ES256")
    files.write(renewed, key=False)
    with caplog.at_level(logging.WARNING, logger="numrep_client.renewal"):
        for _ in range(3):
            clock.advance(EVERY)
            assert renewals.changed() is None
    assert [r.getMessage() for r in caplog.records] == [
        f"renewed TLS files not taken yet: the key {files.tls.key} does not belong to the certificate {files.tls.cert}; "
        "looking again in 30 s"]
    files.write(renewed, cert=False)
    clock.advance(EVERY)
    assert renewals.changed() is not None


@pytest.mark.parametrize("garbage", [b"", b"not a key", b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"])
def test_an_unreadable_key_is_not_offered_and_nothing_raises(files, garbage):
    clock = FakeClock()
    renewals = CertificateRenewals(files.tls, EVERY, clock)
    _replace(files.tls.key, garbage)
    clock.advance(EVERY)
    assert renewals.changed() is None


def test_a_file_missing_for_a_moment_is_looked_at_again_later(files):
    clock = FakeClock()
    renewals = CertificateRenewals(files.tls, EVERY, clock)
    assert files.tls.key is not None
    files.tls.key.unlink()
    clock.advance(EVERY)
    assert renewals.changed() is None
    files.write(generate_identity("carrier-a", Role.CARRIER, "ES256"))
    clock.advance(EVERY)
    assert renewals.changed() is not None


def test_a_ca_rotated_alone_is_offered(files):
    clock = FakeClock()
    renewals = CertificateRenewals(files.tls, EVERY, clock)
    _replace(files.tls.ca, certificate_pem(new_certificate_authority("the next CA")[0]))
    clock.advance(EVERY)
    assert renewals.changed() is not None


@pytest.mark.parametrize("every", [-1.0, float("nan")])
def test_a_bad_interval_is_refused(files, every):
    with pytest.raises(ValueError, match="tls_recheck must be a number of seconds >= 0"):
        CertificateRenewals(files.tls, every)
