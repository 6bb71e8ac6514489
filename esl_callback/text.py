"""The one check of free text given by an operator or a user: names, usernames, references,
descriptions. Such text ends up in one-line listings, logs and CSV exports, where a newline, an
escape sequence or a NUL would break the line or hide what follows.
"""

from __future__ import annotations

import unicodedata

# Control characters (C0, DEL, C1) and the line and paragraph separators.
_BREAKING = frozenset({"Cc", "Zl", "Zp"})


class InvalidText(ValueError):
    """Text that cannot be stored as given; the message says why."""


def sentence_start(what: str) -> str:
    """`what` (e.g. "name", "a payment's reference") to begin a sentence with."""
    return what[:1].upper() + what[1:]


def one_line(raw: str, what: str, max_length: int, *, required: bool = True) -> str:
    """`raw` without surrounding blanks, if it is at most `max_length` characters (and not
    empty when `required`) and holds no control character; else InvalidText naming `what`."""
    value = raw.strip()
    if required and not value:
        raise InvalidText(f"{sentence_start(what)} is missing: type it.")
    if len(value) > max_length:
        raise InvalidText(
            f"{sentence_start(what)} is too long: at most {max_length} characters, please."
        )
    for ch in value:
        if unicodedata.category(ch) in _BREAKING:
            raise InvalidText(
                f"{sentence_start(what)} must be one line of printable text; it holds the control "
                f"character U+{ord(ch):04X}."
            )
    return value
