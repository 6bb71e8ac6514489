"""Reading user input: JSON bodies, numbers, modes, dates and page numbers.

Each is refused with a clear message (a WebError) instead of failing inside the view.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any

from flask import request

from esl_callback import numbers
from esl_callback.text import InvalidText, one_line
from esl_callback.web.errors import Invalid, WebError

MODES = {
    "source_first": "source_first",
    "source-first": "source_first",
    "simultaneous": "simultaneous",
}
MAX_PER_PAGE = 100
# JSON may escape half of a UTF-16 surrogate pair alone (\ud800): the parser gives a str no
# database, encoder or log can take.
LONE_SURROGATE = re.compile(r"[\ud800-\udfff]")


def json_body() -> Any:
    """The request's JSON document; None when it is not JSON (or not valid JSON).

    Every JSON endpoint reads its body here. A document nested so deeply that the parser gives
    up, or holding text that is not valid Unicode, is refused (400), not a crash.
    """
    try:
        document = request.get_json(silent=True)
    except RecursionError:
        raise WebError("the JSON document is nested too deeply; send a flat JSON object") from None
    refuse_invalid_unicode(document)
    return document


def refuse_invalid_unicode(document: Any) -> None:
    """WebError if a string of the document, a key too, holds a lone surrogate.

    It names the top-level field whose value holds it, if there is one.
    """
    parts = document.items() if isinstance(document, dict) else [(None, document)]
    for key, value in parts:
        if any(LONE_SURROGATE.search(text) for text in strings_in([key, value])):
            field = key if key is not None and not LONE_SURROGATE.search(key) else None
            what = field or "the JSON document"
            raise WebError(
                f"{what} holds text that is not valid Unicode (half of a surrogate pair alone, "
                "e.g. \\ud800); send whole characters, as UTF-8",
                field=field,
            )


def strings_in(document: Any) -> Iterator[str]:
    """Every string of a parsed JSON document, object keys too (no recursion: it may be deep)."""
    pending = [document]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict):
            pending.extend(item)
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)


def json_object() -> dict[str, Any]:
    """The request's body as a JSON object, or Invalid saying how to send one."""
    data = json_body()
    if not isinstance(data, dict):
        raise Invalid("send a JSON object with Content-Type: application/json")
    return data


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


def flag(raw: Any, field: str) -> bool | None:
    """A yes/no: JSON true/false, a form's checkbox ("on"), "1"/"0"; None when not given."""
    if raw is None or raw == "":
        return None
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.lower() in ("on", "1", "true", "yes"):
        return True
    if isinstance(raw, str) and raw.lower() in ("0", "false", "no", "off"):
        return False
    raise Invalid(f"{field} must be true or false", field=field)


def text(raw: Any, field: str, what: str, *, max_length: int, required: bool = True) -> str:
    """Trimmed text of at most `max_length` characters on one line (`text.one_line`)."""
    if raw is None:
        raw = ""
    if not isinstance(raw, str):
        raise Invalid(f"{what} must be text", field=field)
    try:
        return one_line(raw, what, max_length, required=required)
    except InvalidText as exc:
        raise Invalid(str(exc), field=field) from None


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
    return PageRequest(
        page=whole_number(args.get("page"), "page", 1, 1_000_000, default=1),
        per_page=whole_number(
            args.get("per_page"), "per_page", 1, MAX_PER_PAGE, default=default_per_page
        ),
    )


def whole_number(raw: Any, field: str, low: int, high: int, *, default: int) -> int:
    """A number written in ASCII digits 0-9, from `low` to `high`; `default` when empty.

    Other digits (superscript, circled, full-width) are refused, as is a number too long to be
    in range.
    """
    if raw in (None, ""):
        return default
    text = str(raw)
    if not (text.isascii() and text.isdigit()) or len(text) > len(str(high)):
        value = None
    else:
        value = int(text)
    if value is None or not low <= value <= high:
        raise Invalid(f"{field} must be a whole number from {low} to {high}", field=field)
    return value
