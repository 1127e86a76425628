"""parse_identity_header: the RFC 8224 Identity header form and the bare compact form."""

from __future__ import annotations

import pytest

from numrep.shaken import PassportError, parse_identity_header

from shaken_pki import X5U, Pki, claims, header, identity_header, sign


def test_header_form(pki: Pki) -> None:
    token = sign(pki.leaf_key)
    parsed = parse_identity_header(f"{token};info=<{X5U}>;alg=ES256;ppt=shaken")
    assert parsed.compact == token
    assert parsed.header == header() and parsed.claims == claims()
    assert parsed.params == {"info": X5U, "alg": "ES256", "ppt": "shaken"}
    assert parsed.from_identity_header and parsed.info == X5U
    assert len(parsed.signature) == 64
    assert parsed.signing_input == token.rsplit(".", 1)[0].encode()


def test_bare_form(pki: Pki) -> None:
    token = sign(pki.leaf_key)
    parsed = parse_identity_header(f"  {token}\r\n")
    assert parsed.compact == token and parsed.params == {} and not parsed.from_identity_header and parsed.info is None


def test_parameter_names_are_case_insensitive_and_extensions_kept(pki: Pki) -> None:
    parsed = parse_identity_header(f"{sign(pki.leaf_key)};INFO=<{X5U}>;PPT=shaken;x-ext=\"a;b\"")
    assert parsed.params == {"info": X5U, "ppt": "shaken", "x-ext": "a;b"}


def test_identity_header_helper_matches_rfc_layout(pki: Pki) -> None:
    token = sign(pki.leaf_key)
    assert identity_header(token) == f"{token};info=<{X5U}>;alg=ES256;ppt=shaken"


def test_malformed_raises_with_reason() -> None:
    with pytest.raises(PassportError) as caught:
        parse_identity_header("one.two")
    assert caught.value.reason == "malformed" and "found 2" in caught.value.message
