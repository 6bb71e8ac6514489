"""How the window writes amounts, durations, times and price quotes, as the portal does."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from esl_callback.durations import duration

NOTHING = "\N{EN DASH}"


def money(value: str | None) -> str:
    """An amount with 2 decimals, or up to 4 when the fraction needs them (as the portal)."""
    if value in (None, ""):
        return NOTHING
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        return str(value)
    text = f"{amount:.4f}".rstrip("0")
    return f"{amount:.2f}" if len(text.split(".")[1]) <= 2 else text


def amount(value: str | None, currency: str | None) -> str:
    return f"{money(value)} {currency or ''}".rstrip()


def clock(seconds: int) -> str:
    """A running call's time: 0:07, 12:34, 1:02:03."""
    seconds = max(int(seconds), 0)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def local_time(moment: str | None) -> str:
    """An API time (2025-01-31T12:34:56Z) in this computer's time zone."""
    if not moment:
        return NOTHING
    try:
        parsed = datetime.fromisoformat(moment.replace("Z", "+00:00"))
    except ValueError:
        return moment
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    local = parsed.astimezone()
    today = datetime.now().astimezone().date()
    return local.strftime("%H:%M" if local.date() == today else "%d %b %H:%M")


def billing_steps(rate: dict[str, Any] | None) -> str:
    """How a leg's seconds are billed, as carriers write it: 60/60 is per minute."""
    if not rate:
        return ""
    if rate["minimum"] == 1 and rate["increment"] == 1:
        return "billed per second"
    if rate["minimum"] == 60 and rate["increment"] == 60:
        return "billed per minute"
    return f"billed {rate['minimum']} s, then every {rate['increment']} s"


def quote_line(quote: dict[str, Any]) -> str:
    """The price of a call and the longest the balance pays, in one line."""
    currency = quote["currency"]
    parts = [f"{money(quote['price_per_minute'])} {currency}/min"]
    if Decimal(quote["connect_fee"] or 0):
        parts.append(f"{money(quote['connect_fee'])} {currency} to connect")
    steps = billing_steps(quote.get("destination_rate"))
    if steps:
        parts.append(steps)
    parts.append(f"up to {duration(quote['max_seconds'])} with your balance")
    return " · ".join(parts)


def number_with_name(number: str | None, names: dict[str, str]) -> str:
    if not number:
        return NOTHING
    name = names.get(number)
    return f"{name} ({number})" if name else number
