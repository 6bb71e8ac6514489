"""How amounts, prices, durations, numbers and times are written on the pages.

Money is written with its currency's own decimals (ISO 4217 minor units: 2 for EUR and USD, 0
for JPY, 3 for KWD), rounded half up: a balance of 24.685 EUR reads 24.69 EUR. A price per
minute keeps up to 4 decimals (0.0125 EUR), as it is charged. Times are written in the user's
time zone (`web.time_zones`).
"""

from __future__ import annotations

from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from esl_callback.durations import duration as duration  # a filter of the portal too
from esl_callback.readable_numbers import readable

NOTHING = "\N{EN DASH}"  # shown for an amount or a time not known (yet)
# ISO 4217 currencies whose minor unit is not 2 decimals (the rest have 2).
MINOR_UNITS = {
    **dict.fromkeys(
        ("BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI"), 0
    ),
    **dict.fromkeys(("VND", "VUV", "XAF", "XOF", "XPF"), 0),
    **dict.fromkeys(("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"), 3),
    "CLF": 4,
    "UYW": 4,
}


def minor_units(currency: str | None) -> int:
    """How many decimals the currency's amounts have (2 unless ISO 4217 says otherwise)."""
    return MINOR_UNITS.get((currency or "").upper(), 2)


def _decimal(value: Decimal | str | int | None) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def money(value: Decimal | str | None, currency: str | None = None) -> str:
    """An amount with the currency's decimals, rounded half up: 24.685 EUR -> 24.69."""
    amount = _decimal(value)
    if amount is None:
        return NOTHING
    places = minor_units(currency)
    step = Decimal(1).scaleb(-places)
    return f"{amount.quantize(step, rounding=ROUND_HALF_UP):.{places}f}"


def amount(value: Decimal | str | None, currency: str | None) -> str:
    """Money with its currency code: `24.69 EUR`."""
    if _decimal(value) is None:
        return NOTHING
    return f"{money(value, currency)} {currency or ''}".rstrip()


def price(value: Decimal | str | None, currency: str | None) -> str:
    """A rate: the currency's decimals, more (up to 4) when the price has them: 0.0125 EUR."""
    number = _decimal(value)
    if number is None:
        return NOTHING
    places = minor_units(currency)
    text = f"{number:.4f}".rstrip("0").rstrip(".")
    decimals = len(text.partition(".")[2])
    return f"{number:.{max(places, decimals)}f} {currency or ''}".rstrip()


def clock(seconds: int | None) -> str:
    """A call's length as a clock: 00:07, 12:34, 1:02:03."""
    seconds = max(int(seconds or 0), 0)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def phone(digits: str | None) -> str:
    """A stored number (E.164 digits) written for reading: +1 555-000-1001."""
    return readable(digits) or NOTHING


def parse_iso(moment: str | datetime | None) -> datetime | None:
    """A snapshot's time (`2025-01-31T12:34:56Z`) or a naive UTC datetime, as naive UTC."""
    if moment is None or moment == "":
        return None
    if isinstance(moment, datetime):
        return moment.replace(tzinfo=None)
    try:
        return datetime.fromisoformat(moment.removesuffix("Z"))
    except ValueError:
        return None
