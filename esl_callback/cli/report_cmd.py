"""`esl-callback report`: what the operator pays for that no account does."""

from __future__ import annotations

from datetime import timedelta

import click

from esl_callback.callback import operator_cost
from esl_callback.callback.rating import money
from esl_callback.cli.common import emit, json_option, with_database
from esl_callback.db import utcnow


@click.group("report")
def report_group() -> None:
    """Reports for the operator."""


@report_group.command("operator-cost")
@click.option(
    "--days",
    type=click.IntRange(1, 3660),
    default=30,
    show_default=True,
    help="How many days back, today included (UTC).",
)
@json_option
@with_database()
def operator_cost_command(days: int, as_json: bool) -> None:
    """The cost of legs no account paid for, per day and kind, at the legs' rates.

    \b
    before_pin   leg A of callbacks whose caller never keyed a valid PIN (toll-fraud
                 attempts land here: bound them with the callback.pin_* settings)
    not_charged  legs the account is not charged for (billing.charge_leg_a)
    over_floor   what a debit could not take below an account's floor (0 or its
                 credit limit): calls that outran their money, none normally
    """
    today = utcnow().replace(hour=0, minute=0, second=0, microsecond=0)
    rows = operator_cost.operator_costs(today - timedelta(days=days - 1))
    lines = [
        f"{row.day}  {row.kind:<12} {row.legs:>6} legs {row.billsec:>8} s  {row.cost:>12}"
        for row in rows
    ]
    total = sum((row.cost for row in rows), start=money(0))
    text = "\n".join([*lines, f"total {total}"]) if rows else f"no operator cost in {days} days"
    emit([row.as_dict() for row in rows], as_json, text)


COMMANDS = [report_group]
