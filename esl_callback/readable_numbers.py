"""Phone numbers written for reading: `15550001001` becomes `+1 555-000-1001`.

Numbers are stored as E.164 digits without `+` (`numbers.normalise`); this module only writes
them out, the way the number's own country groups its digits (Google's libphonenumber, through
the `phonenumbers` package). A number libphonenumber cannot read is written `+` and its digits.
"""

from __future__ import annotations

import functools

import phonenumbers

from esl_callback import numbers


@functools.lru_cache(maxsize=4096)
def readable(digits: str | None) -> str:
    """`digits` (E.164 without `+`) grouped for reading, e.g. `+49 30 111111`; "" for none."""
    if not digits:
        return ""
    if not numbers.is_digits(digits):
        return digits
    try:
        parsed = phonenumbers.parse("+" + digits, None)
    except phonenumbers.NumberParseException:
        return "+" + digits
    if not phonenumbers.is_possible_number(parsed):
        return "+" + digits
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.INTERNATIONAL)


def country_of(digits: str) -> str | None:
    """The region code (ISO 3166, e.g. `DE`) a number belongs to, if libphonenumber knows it."""
    try:
        parsed = phonenumbers.parse("+" + digits, None)
    except phonenumbers.NumberParseException:
        return None
    return phonenumbers.region_code_for_number(parsed)
