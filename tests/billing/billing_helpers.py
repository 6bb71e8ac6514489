"""Rate rows and settings shared by the billing tests (import as `billing_helpers`)."""

from __future__ import annotations

from decimal import Decimal

from esl_callback.callback import billing
from esl_callback.callback.rating import RateRow, RateSnapshot

SETTINGS = billing.DefaultBilling()


def rate(
    prefix: str, price: str, connect_fee: str = "0", increment: int = 60, minimum: int = 60
) -> RateRow:
    snapshot = RateSnapshot(prefix, Decimal(price), Decimal(connect_fee), increment, minimum)
    return RateRow(rate=snapshot, description=f"rate {prefix}", line=0)


def set_rates(*rows: RateRow) -> None:
    """Replace the rate table."""
    billing.import_rates(rows, replace=True)
