"""What the operator paid for that no account did: the exposure report, per day and kind.

`billing.close_leg` stores on each leg the part of its cost (at its rate) that no account paid,
`Leg.operator_cost`. Its kinds:

* `before_pin`: a leg A whose caller never proved who they were (PIN access, an SMS that needs
  the PIN): the callback legs of toll-fraud attempts land here;
* `not_charged`: a leg the account is not charged for (`billing.charge_leg_a` off, or the
  account's own setting): the operator's choice;
* `over_floor`: what a debit would have taken below the account's floor (0, or its credit
  limit): a call that outran its money; none in normal operation.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from peewee import JOIN, Case, fn

from esl_callback.callback.rating import money
from esl_callback.models import CallbackRequest, Leg

KINDS = ("before_pin", "not_charged", "over_floor")


@dataclass(frozen=True)
class OperatorCost:
    """One day's unbilled cost of one kind."""

    day: date
    kind: str
    legs: int
    billsec: int
    cost: Decimal

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["day"] = self.day.isoformat()
        data["cost"] = str(self.cost)
        return data


def operator_costs(since: datetime) -> list[OperatorCost]:
    """Legs billed since `since` that cost the operator something, per day (UTC) and kind."""
    kind = Case(
        None,
        [
            (CallbackRequest.account.is_null(), "before_pin"),
            (Leg.charged == False, "not_charged"),  # noqa: E712
        ],
        "over_floor",
    )
    day = fn.DATE(Leg.billed_at)
    rows = (
        Leg.select(
            day.alias("day"),
            kind.alias("kind"),
            fn.COUNT(Leg.id),
            fn.SUM(Leg.billsec),
            fn.SUM(Leg.operator_cost),
        )
        .join(CallbackRequest, JOIN.INNER)
        .where(Leg.billed_at >= since, Leg.operator_cost > 0)
        .group_by(day, kind)
        .order_by(day, kind)
        .tuples()
    )
    return [
        OperatorCost(
            day=value if isinstance(value, date) else date.fromisoformat(str(value)),
            kind=kind_name,
            legs=count,
            billsec=int(billsec or 0),
            cost=money(Decimal(str(total or 0))),
        )
        for value, kind_name, count, billsec, total in rows
    ]
