"""The one place that validates and normalises phone numbers.

Everything that reaches a dial string, a database row or a CLI argument as a phone number passes
through here first. A valid number is a string of ASCII digits in E.164 form without the `+`
(country code first, at most 15 digits). Anything else raises `InvalidNumber` with a message an
operator or a caller-facing error page can show as it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

ASCII_DIGITS = frozenset("0123456789")
E164_MAX_DIGITS = 15
# Characters people type between digit groups; only accepted where a human typed the number.
FORMATTING_CHARACTERS = " -./()"


class InvalidNumber(ValueError):
    """A phone number that is not a plain string of digits of an acceptable length."""


class NumberRules(Protocol):
    """How numbers of the operator's country are written (see the `numbers` config section)."""

    country_code: str
    national_prefix: str
    international_prefix: str
    min_length: int
    max_length: int


@dataclass(frozen=True)
class DefaultNumberRules:
    """Rules used when no configuration is at hand: numbers must already be international."""

    country_code: str = ""
    national_prefix: str = "0"
    international_prefix: str = "00"
    min_length: int = 3
    max_length: int = E164_MAX_DIGITS


DEFAULT_RULES = DefaultNumberRules()


def is_digits(text: str) -> bool:
    """True when `text` is non-empty and made of ASCII digits only (no Unicode digits)."""
    return bool(text) and all(ch in ASCII_DIGITS for ch in text)


def digits_only(raw: object, *, what: str = "number", allow_formatting: bool = False) -> str:
    """Return `raw` as ASCII digits or raise InvalidNumber.

    A single leading `+` is dropped. With `allow_formatting`, spaces, dashes, dots, slashes and
    parentheses between digits are removed (for numbers typed by people); otherwise any character
    other than a digit is refused.
    """
    if not isinstance(raw, str):
        raise InvalidNumber(f"{what}: expected a string of digits, got {type(raw).__name__}")
    text = raw.strip()
    if text.startswith("+"):
        text = text[1:]
    if allow_formatting:
        text = "".join(ch for ch in text if ch not in FORMATTING_CHARACTERS)
    if not text:
        raise InvalidNumber(f"{what}: is empty")
    if len(text) > 64:
        raise InvalidNumber(f"{what}: too long ({len(text)} characters)")
    if not is_digits(text):
        bad = next(ch for ch in text if ch not in ASCII_DIGITS)
        raise InvalidNumber(f"{what}: only digits 0-9 are allowed, found {bad!r} in {raw!r}")
    return text


def normalise(
    raw: object,
    rules: NumberRules = DEFAULT_RULES,
    *,
    what: str = "number",
    allow_formatting: bool = False,
) -> str:
    """Normalise a dialled or typed number to E.164 digits (no `+`) using the number rules.

    `+4930123` and `004930123` are international; `030123` is national when a country code is
    configured (`49` + `30123`); anything else is taken as already international.
    """
    stripped = raw.strip() if isinstance(raw, str) else raw
    international = isinstance(stripped, str) and stripped.startswith("+")
    digits = digits_only(raw, what=what, allow_formatting=allow_formatting)
    if not international:
        if rules.international_prefix and digits.startswith(rules.international_prefix):
            digits = digits[len(rules.international_prefix) :]
        elif (
            rules.country_code
            and rules.national_prefix
            and digits.startswith(rules.national_prefix)
        ):
            digits = rules.country_code + digits[len(rules.national_prefix) :]
    return check_length(digits, rules, what=what)


def check_length(digits: str, rules: NumberRules = DEFAULT_RULES, *, what: str = "number") -> str:
    """Refuse digit strings shorter or longer than the rules (and E.164) allow."""
    longest = min(rules.max_length, E164_MAX_DIGITS)
    if len(digits) < rules.min_length:
        raise InvalidNumber(f"{what}: {digits} is too short (at least {rules.min_length} digits)")
    if len(digits) > longest:
        raise InvalidNumber(f"{what}: {digits} is too long (at most {longest} digits)")
    return digits
