"""Reading user input: numbers, modes, dates and page numbers, each refused with a clear message."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from esl_callback import numbers
from esl_callback.web.errors import Invalid

MODES = {
    "source_first": "source_first",
    "source-first": "source_first",
    "simultaneous": "simultaneous",
}
MAX_PER_PAGE = 100


def number(raw: Any, field: str, what: str, rules: numbers.NumberRules) -> str:
    """A typed phone number as E.164 digits, or Invalid naming the field."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        raise Invalid(f"{what}: enter a phone number", field=field)
    try:
        return numbers.normalise(raw, rules, what=what, allow_formatting=True)
    except numbers.InvalidNumber as exc:
        raise Invalid(str(exc), field=field) from None


def mode(raw: Any) -> str:
    """`source_first` (also `source-first`) or `simultaneous`; empty means source first."""
    if raw in (None, ""):
        return "source_first"
    if not isinstance(raw, str) or raw not in MODES:
        raise Invalid("mode must be source_first or simultaneous", field="mode")
    return MODES[raw]


def text(raw: Any, field: str, what: str, *, max_length: int, required: bool = True) -> str:
    """Trimmed text of at most `max_length` characters."""
    if raw is None:
        raw = ""
    if not isinstance(raw, str):
        raise Invalid(f"{what} must be text", field=field)
    value = raw.strip()
    if required and not value:
        raise Invalid(f"{what} is required", field=field)
    if len(value) > max_length:
        raise Invalid(f"{what} is too long (at most {max_length} characters)", field=field)
    return value


def day(raw: Any, field: str) -> date | None:
    """A date written YYYY-MM-DD, or None when empty."""
    if raw in (None, ""):
        return None
    try:
        return date.fromisoformat(str(raw))
    except ValueError:
        raise Invalid(f"{field}: expected a date such as 2025-01-31", field=field) from None


@dataclass(frozen=True)
class PageRequest:
    page: int = 1
    per_page: int = 25


def page_request(args: Any, default_per_page: int = 25) -> PageRequest:
    """`page` (from 1) and `per_page` (1-100) from query arguments."""
    values = {}
    for key, default, high in (
        ("page", 1, 1_000_000),
        ("per_page", default_per_page, MAX_PER_PAGE),
    ):
        raw = args.get(key) or str(default)
        if not raw.isdigit() or not 1 <= int(raw) <= high:
            raise Invalid(f"{key} must be a whole number from 1 to {high}", field=key)
        values[key] = int(raw)
    return PageRequest(**values)
