"""How amounts and times are written on the pages."""

from __future__ import annotations

from decimal import Decimal

NOTHING = "\N{EN DASH}"  # shown for an amount or a time not known (yet)


def money(value: Decimal | str | None) -> str:
    """An amount with 2 decimals, or up to 4 when the fraction needs them (0.0125)."""
    if value is None or value == "":
        return NOTHING
    amount = Decimal(str(value))
    text = f"{amount:.4f}".rstrip("0")
    return f"{amount:.2f}" if len(text.split(".")[1]) <= 2 else text


def when(moment: str | None) -> str:
    """An ISO time of a snapshot (`2025-01-31T12:34:56Z`) as `2025-01-31 12:34:56 UTC`."""
    if not moment:
        return NOTHING
    return moment.replace("T", " ").removesuffix("Z") + " UTC"
