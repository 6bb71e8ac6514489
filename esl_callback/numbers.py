"""The one place that validates and normalises phone numbers.

Everything that reaches a dial string, a database row or a CLI argument as a phone number passes
through here first. A valid number is a string of ASCII digits in E.164 form without the `+`
(country code first, at most 15 digits). Anything else raises `InvalidNumber` with a message an
operator or a caller-facing error page can show as it is: a sentence saying what is wrong with the
number and what to type instead ("That number has letters in it: type digits only.").
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


def subject(what: str) -> str:
    """How a message names the number: "That number" for a plain number, else "The <what>"."""
    if what == "number":
        return "That number"
    return what[0].upper() + what[1:] if what.startswith(("The ", "the ", '"')) else f"The {what}"


def not_a_digit(bad: str, allow_formatting: bool) -> str:
    """What is wrong with a number holding `bad`, and what to type instead."""
    allowed = (
        "type digits only (spaces, dashes and a leading + are fine)"
        if allow_formatting
        else "type digits 0-9 only, with no spaces"
    )
    if bad.isdigit():
        return f"has a digit written in another script ({bad!r}): {allowed}"
    if bad.isalpha():
        return f"has letters in it: {allowed}"
    return f"has {bad!r} in it, which is not a digit: {allowed}"


def digits_only(raw: object, *, what: str = "number", allow_formatting: bool = False) -> str:
    """Return `raw` as ASCII digits or raise InvalidNumber.

    A single leading `+` is dropped. With `allow_formatting`, spaces, dashes, dots, slashes and
    parentheses between digits are removed (for numbers typed by people); otherwise any character
    other than a digit is refused.
    """
    if not isinstance(raw, str):
        raise InvalidNumber(
            f"{subject(what)} must be text made of digits, not {type(raw).__name__}."
        )
    text = raw.strip()
    if text.startswith("+"):
        text = text[1:]
    if allow_formatting:
        text = "".join(ch for ch in text if ch not in FORMATTING_CHARACTERS)
    if not text:
        raise InvalidNumber(f"{subject(what)} is empty: type a phone number.")
    if len(text) > 64:
        raise InvalidNumber(
            f"{subject(what)} is far too long to be a phone number ({len(text)} characters)."
        )
    if not is_digits(text):
        bad = next(ch for ch in text if ch not in ASCII_DIGITS)
        raise InvalidNumber(f"{subject(what)} {not_a_digit(bad, allow_formatting)}.")
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
        raise InvalidNumber(
            f"{subject(what)} is too short: {digits} has {len(digits)} digits and a phone number "
            f"has at least {rules.min_length}."
        )
    if len(digits) > longest:
        raise InvalidNumber(
            f"{subject(what)} is too long: {digits} has {len(digits)} digits and a phone number "
            f"has at most {longest}."
        )
    return digits
