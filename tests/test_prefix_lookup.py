"""Privacy-preserving lookup: the client sends only a hash prefix and receives
every listed number in that bucket, and nothing outside it."""

from __future__ import annotations

import grpc
import pytest

from numrep.core.privacy import hash32, number_hash, prefix_range
from numrep.signing.labels import sign_label
from numrep_client import ExchangeError

LISTED = [f"+1212555{n:04d}" for n in range(100, 160)]


@pytest.fixture
def listed(federation, connect):
    carrier = connect(federation.carrier)
    results = carrier.publish([sign_label(federation.carrier, n, "fraud", 1.0) for n in LISTED])
    assert all(r.status == 1 for r in results)
    return carrier


def test_a_bucket_holds_exactly_the_listed_numbers_with_that_prefix(federation, connect, listed):
    app = connect(federation.app)
    prefix = number_hash(LISTED[0])[:2]
    response = app.prefix_lookup(prefix)

    expected = {number_hash(n) for n in LISTED if number_hash(n).startswith(prefix)}
    assert {e.number_hash for e in response.entries} == expected
    assert response.prefix_bits == 8
    assert all(e.action != 0 and e.category == "fraud" for e in response.entries)


def test_private_lookup_finds_a_listed_number_without_sending_it(federation, connect, listed):
    answer = connect(federation.app).private_lookup("(212) 555-0100", prefix_digits=1)
    assert answer.number == "+12125550100"
    assert answer.entry is not None and answer.entry.number_hash == number_hash("+12125550100")
    assert answer.bucket_size >= 1  # hidden among the other listed numbers of its bucket


def test_private_lookup_of_an_unlisted_number_finds_nothing(federation, connect, listed):
    answer = connect(federation.app).private_lookup("+12125559999", prefix_digits=2)
    assert answer.entry is None


@pytest.mark.parametrize("prefix", ["", "xyz", "123456789", "0x12"])
def test_a_malformed_prefix_is_invalid_argument(federation, connect, prefix):
    with pytest.raises(ExchangeError) as caught:
        connect(federation.app).prefix_lookup(prefix)
    assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "hex digits" in caught.value.details


def test_prefix_ranges_cover_exactly_their_hashes() -> None:
    low, high = prefix_range("a")
    assert (low, high) == (0xA0000000, 0xAFFFFFFF)
    assert prefix_range("0123abcd") == (0x0123ABCD, 0x0123ABCD)
    assert all(low <= hash32(n) <= high for n in LISTED if number_hash(n).startswith("a"))
