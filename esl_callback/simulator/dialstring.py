"""Parsing of originate arguments and dial strings (``{global}[leg]endpoint/data``)."""

from __future__ import annotations

from dataclasses import dataclass, field


def split_args(text: str) -> list[str]:
    """switch_separate_string on spaces: quotes group words and are removed."""
    out: list[str] = []
    current: list[str] = []
    quote: str | None = None
    started = False
    for ch in text:
        if quote:
            if ch == quote:
                quote = None
            else:
                current.append(ch)
        elif ch in ("'", '"'):
            quote = ch
            started = True
        elif ch == " ":
            if current or started:
                out.append("".join(current))
                current, started = [], False
        else:
            current.append(ch)
            started = True
    if current or started:
        out.append("".join(current))
    return out


def _parse_vars(body: str) -> list[tuple[str, str]]:
    """``a=b,c='d,e'`` into ordered pairs (``\\,`` escapes a comma)."""
    pairs: list[tuple[str, str]] = []
    items: list[str] = []
    current: list[str] = []
    quote: str | None = None
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body):
            current.append(body[i + 1])
            i += 2
            continue
        if quote:
            if ch == quote:
                quote = None
            else:
                current.append(ch)
        elif ch == "'":
            quote = ch
        elif ch == ",":
            items.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    items.append("".join(current))
    for item in items:
        name, sep, value = item.partition("=")
        if sep and name.strip():
            pairs.append((name.strip(), value))
    return pairs


def _take_block(text: str, opener: str, closer: str) -> tuple[str | None, str]:
    if not text.startswith(opener):
        return None, text
    end = text.find(closer)
    if end < 0:
        return None, text
    return text[1:end], text[end + 1 :]


@dataclass
class Leg:
    """One destination of a dial string."""

    endpoint: str
    data: str
    variables: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class DialString:
    """``{global vars}`` followed by legs separated by ``|`` (tried one after another)."""

    variables: list[tuple[str, str]]
    legs: list[Leg]


def parse_dial_string(text: str) -> DialString:
    text = text.strip()
    global_vars: list[tuple[str, str]] = []
    body, rest = _take_block(text, "{", "}")
    if body is not None:
        global_vars = _parse_vars(body)
        text = rest
    legs = []
    for part in text.split("|"):
        part = part.strip()
        leg_vars: list[tuple[str, str]] = []
        block, rest = _take_block(part, "[", "]")
        if block is not None:
            leg_vars = _parse_vars(block)
            part = rest
        endpoint, _, data = part.partition("/")
        legs.append(Leg(endpoint, data, leg_vars))
    return DialString(global_vars, legs)


def parse_application(exten: str) -> tuple[str, str | None] | None:
    """``&app(args)`` into (app, args); None when ``exten`` is a dialplan extension."""
    if not exten.startswith("&") or len(exten) < 2:
        return None
    name = exten[1:]
    if "(" in name:
        name, _, arg = name.partition("(")
        arg = arg[: arg.rfind(")")] if ")" in arg else arg
        return name, arg or None
    return name, None


def sanitize_number(number: str) -> str:
    """switch_sanitize_number: what is left after '@' and after the last '/' or ':'."""
    if not any(c in number for c in "/:@%"):
        return number
    number = number.split("@", 1)[0]
    for sep in ("/", ":"):
        number = number.rsplit(sep, 1)[-1]
    return number
