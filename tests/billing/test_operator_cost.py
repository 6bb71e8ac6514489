"""What no account paid for: each leg's operator cost, the floor of a debit, and the report.

On SQLite and PostgreSQL, through the billing functions the controller uses and the operator's
`esl-callback report operator-cost`.
"""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from click.testing import CliRunner

from esl_callback import accounts
from esl_callback.callback import billing, requests
from esl_callback.callback.billing import DefaultBilling, Hangup
from esl_callback.callback.rating import RateRow, RateSnapshot
from esl_callback.cli import main
from esl_callback.db import Database
from esl_callback.models import Account, CallbackRequest, Leg

SETTINGS = DefaultBilling()


@pytest.fixture(autouse=True)
def rates(db: Database) -> None:
    """0.60 a minute to 49..., by the second: a second costs 0.01."""
    billing.import_rates([RateRow(RateSnapshot("49", Decimal("0.60"), Decimal(0), 1, 1), "", 1)])


def pin_callback_leg(uuid: str, number: str = "4930111") -> CallbackRequest:
    """Leg A of a PIN callback, stored before anyone is known to pay."""
    request = requests.create(trigger="phone", method="pin", account=None, source=number)
    billing.record_leg(request.id, "a", uuid, "fs1", number)
    return request


def test_a_leg_nobody_identified_costs_the_operator_at_its_rate() -> None:
    pin_callback_leg("a-1")

    bill = billing.close_leg(Hangup("a-1", "NORMAL_CLEARING", 30), SETTINGS)

    assert (bill.cost, bill.operator_cost) == (0, Decimal("0.30"))
    leg = Leg.get(Leg.uuid == "a-1")
    assert (leg.cost, leg.operator_cost, leg.billed) == (0, Decimal("0.30"), True)


def test_a_debit_stops_at_the_floor_and_the_rest_is_the_operators() -> None:
    alice = accounts.create_account("alice")
    billing.add_payment(alice, "0.10", "voucher")
    request = requests.create(trigger="web", method="web", account=alice, source="4930111")
    billing.record_leg(request.id, "a", "a-1", "fs1", "4930111")

    bill = billing.close_leg(Hangup("a-1", "NORMAL_CLEARING", 25), SETTINGS)

    assert (bill.cost, bill.operator_cost, bill.balance) == (Decimal("0.10"), Decimal("0.15"), 0)
    assert Account.get_by_id(alice.id).balance == 0
    assert billing.audit(alice).balanced


def test_a_credit_limit_lowers_the_floor_to_minus_the_limit() -> None:
    bob = accounts.create_account("bob", credit_limit="0.20")
    request = requests.create(trigger="web", method="web", account=bob, source="4930111")
    billing.record_leg(request.id, "a", "a-1", "fs1", "4930111")

    bill = billing.close_leg(Hangup("a-1", "NORMAL_CLEARING", 25), SETTINGS)

    assert (bill.cost, bill.operator_cost) == (Decimal("0.20"), Decimal("0.05"))
    assert Account.get_by_id(bob.id).balance == Decimal("-0.20") == Account.get_by_id(bob.id).floor
    assert billing.available_balance(bob) == 0  # nothing left to hold for a next call


def test_a_leg_the_account_is_not_charged_for_is_the_operators(db: Database) -> None:
    carol = accounts.create_account("carol", charge_leg_a=False)
    billing.add_payment(carol, "5", "voucher")
    request = requests.create(trigger="web", method="web", account=carol, source="4930111")
    auth = billing.authorise(carol, request, "4930111", None, SETTINGS)
    billing.open_leg(auth, "a", "a-1", "fs1")

    bill = billing.close_leg(Hangup("a-1", "NORMAL_CLEARING", 10), SETTINGS)

    assert (bill.cost, bill.operator_cost) == (0, Decimal("0.10"))


def test_the_report_sums_what_no_account_paid_per_day_and_kind(db: Database) -> None:
    pin_callback_leg("a-1")
    pin_callback_leg("a-2")
    billing.close_leg(Hangup("a-1", "NORMAL_CLEARING", 30), SETTINGS)
    billing.close_leg(Hangup("a-2", "NORMAL_CLEARING", 12), SETTINGS)
    dave = accounts.create_account("dave")
    billing.add_payment(dave, "0.05", "voucher")
    request = requests.create(trigger="web", method="web", account=dave, source="4930111")
    billing.record_leg(request.id, "a", "d-1", "fs1", "4930111")
    billing.close_leg(Hangup("d-1", "NORMAL_CLEARING", 9), SETTINGS)
    db.close()

    run = CliRunner().invoke(
        main, ["report", "operator-cost", "--json", "--database", db.url], catch_exceptions=False
    )
    text = CliRunner().invoke(main, ["report", "operator-cost", "--database", db.url]).output

    assert run.exit_code == 0, run.output
    rows = {row["kind"]: row for row in json.loads(run.output)}
    assert (rows["before_pin"]["legs"], rows["before_pin"]["billsec"]) == (2, 42)
    assert rows["before_pin"]["cost"] == "0.4200"
    assert (rows["over_floor"]["legs"], rows["over_floor"]["cost"]) == (1, "0.0400")
    assert "not_charged" not in rows
    assert "before_pin" in text and "total 0.4600" in text
