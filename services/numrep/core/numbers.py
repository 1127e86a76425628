"""Phone-number parsing and normalisation to E.164."""

from __future__ import annotations

import functools
import re
from typing import Iterable

import phonenumbers

from numrep.core.errors import InvalidNumber

DEFAULT_REGION = "US"
MAX_NUMBER_LENGTH = 64
NORMALIZE_CACHE_SIZE = 65_536  # canonical forms remembered; about 10 MB when full
# A North American number already in E.164. Its national number starts with 2-9, so
# phonenumbers.parse would strip no national prefix ("1") and keep no leading zero:
# it would build exactly PhoneNumber(1, <the ten digits>), at about nine times the cost.
# Ten digits are a possible length for every NANP region, and its E.164 form is the text.
_NANP_E164 = re.compile(r"\+1[2-9][0-9]{9}")
# is_valid_number finds a number's region, then checks its number type in that region.
# The US (first of the NANP regions) is found by exactly that check, its metadata having
# no leading digits, so for a US number the second check repeats the first.
_US_FOUND_BY_TYPE = phonenumbers.PhoneMetadata.metadata_for_region("US").leading_digits is None


def normalize(raw: str, default_region: str = DEFAULT_REGION) -> str:
    """Return ``raw`` as an E.164 string (``+15551234567``) or raise ``InvalidNumber``.

    Numbers without a leading ``+`` are read in ``default_region``. Numbers that
    cannot exist (wrong length for the country, unassigned prefixes) are refused:
    a reputation for an impossible number is noise that only grows the tables.

    Parsing costs tens of microseconds and the same numbers are asked about
    again and again, so the canonical forms of recent inputs are remembered
    (an LRU of ``NORMALIZE_CACHE_SIZE``); refusals are not remembered.
    """
    if not isinstance(raw, str):
        raise InvalidNumber(repr(raw), "not a string")
    if len(raw) > 2 * MAX_NUMBER_LENGTH:  # never keep a huge input alive as a cache key
        return _parse(raw, default_region)
    return _cached_parse(raw, default_region)


def _parse(raw: str, default_region: str) -> str:
    text = raw.strip()
    if not text:
        raise InvalidNumber(raw, "empty")
    if len(text) > MAX_NUMBER_LENGTH:
        raise InvalidNumber(raw[:MAX_NUMBER_LENGTH] + "...", "too long")
    if _NANP_E164.fullmatch(text):
        if not _valid_nanp(phonenumbers.PhoneNumber(country_code=1, national_number=int(text[2:]))):
            raise InvalidNumber(raw, "not a valid number in its numbering plan")
        return text
    try:
        parsed = phonenumbers.parse(text, None if text.startswith("+") else default_region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidNumber(raw, _parse_error_text(exc)) from None
    if not phonenumbers.is_possible_number(parsed):
        raise InvalidNumber(raw, "not a possible number (wrong length for its country)")
    if not phonenumbers.is_valid_number(parsed):
        raise InvalidNumber(raw, "not a valid number in its numbering plan")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def _valid_nanp(number: phonenumbers.PhoneNumber) -> bool:
    """``phonenumbers.is_valid_number`` of a ten-digit NANP number, without its repeated check."""
    region = phonenumbers.region_code_for_number(number)
    if region == "US" and _US_FOUND_BY_TYPE:
        return True
    return region is not None and phonenumbers.is_valid_number_for_region(number, region)


_cached_parse = functools.lru_cache(maxsize=NORMALIZE_CACHE_SIZE)(_parse)


def normalize_each(raws: Iterable[str], default_region: str = DEFAULT_REGION) -> list[str | InvalidNumber]:
    """``normalize`` of each of ``raws`` in order (a batch's numbers), each refusal
    standing in its number's place."""
    limit = 2 * MAX_NUMBER_LENGTH
    out: list[str | InvalidNumber] = []
    for raw in raws:
        try:
            out.append(_cached_parse(raw, default_region) if type(raw) is str and len(raw) <= limit else normalize(raw, default_region))
        except InvalidNumber as exc:
            out.append(exc)
    return out


def is_e164(text: str) -> bool:
    """True when ``text`` is already the canonical E.164 form of a valid number."""
    try:
        return normalize(text) == text
    except InvalidNumber:
        return False


def _parse_error_text(exc: phonenumbers.NumberParseException) -> str:
    kinds = {
        phonenumbers.NumberParseException.INVALID_COUNTRY_CODE: "unknown country code",
        phonenumbers.NumberParseException.NOT_A_NUMBER: "not a phone number",
        phonenumbers.NumberParseException.TOO_SHORT_AFTER_IDD: "too short",
        phonenumbers.NumberParseException.TOO_SHORT_NSN: "too short",
        phonenumbers.NumberParseException.TOO_LONG: "too long",
    }
    return kinds.get(exc.error_type, "cannot be parsed")
