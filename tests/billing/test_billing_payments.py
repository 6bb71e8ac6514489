"""Payments and the audit, on SQLite and PostgreSQL: balance = payments - debits, or we say so."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pytest
from billing_helpers import SETTINGS, rate, set_rates

from esl_callback.callback import billing
from esl_callback.callback.billing import BillingError, Hangup
from esl_callback.models import Account, Payment


def test_a_payment_credits_the_balance_and_is_listed(account) -> None:
    alice = account(balance="0")
    billing.add_payment(alice, "25.50", "invoice 7", at=datetime(2026, 1, 1))
    billing.add_payment(alice, Decimal("-0.5"), "correction", at=datetime(2026, 1, 2))
    assert Account.get_by_id(alice.id).balance == Decimal("25.00")
    listed = [(p.amount, p.reference) for p in billing.payments_of(alice)]
    assert listed == [(Decimal("-0.5"), "correction"), (Decimal("25.5"), "invoice 7")]


@pytest.mark.parametrize(
    ("amount", "reference", "message"),
    [
        ("0", "r", "non-zero"),
        ("abc", "r", "is not a decimal amount"),
        ("1.00001", "r", "more than 4 decimal places"),
        ("10000000000", "r", "below"),
        ("1e3", "r", "is not a decimal amount"),
        ("NaN", "r", "is not a decimal amount"),
        (Decimal("NaN"), "r", "non-zero"),
        (1.5, "r", "never float"),
        ("5", "  ", "reference is missing"),
        ("5", "x" * 129, "at most 128 characters"),
        ("5", "voucher\n42", "one line of printable text"),
    ],
)
def test_a_bad_payment_is_refused_and_changes_nothing(
    account, amount: object, reference: str, message: str
) -> None:
    alice = account(balance="3")
    with pytest.raises(BillingError, match=message):
        billing.add_payment(alice, amount, reference)  # type: ignore[arg-type]
    assert Account.get_by_id(alice.id).balance == 3
    assert Payment.select().count() == 1


def test_the_audit_balances_payments_against_billed_calls(account, request_for) -> None:
    set_rates(rate("49", "0.1200"))
    alice = account(balance="5")
    billing.add_payment(alice, "2.5", "top-up")
    auth = billing.authorise(alice, request_for(alice), "4930111", "4940222", SETTINGS)
    billing.open_leg(auth, "a", "leg-a")
    billing.open_leg(auth, "b", "leg-b")
    billing.close_leg(Hangup("leg-b", "NORMAL_CLEARING", 100), SETTINGS)
    audit = billing.audit(alice)
    assert audit.reserved > 0  # leg A is still up
    assert (audit.payments, audit.debits, audit.expected_balance) == (
        Decimal("7.5"),
        Decimal("0.24"),
        Decimal("7.26"),
    )
    assert audit.stored_balance == Decimal("7.26") and audit.balanced
    assert audit.as_dict()["difference"] == "0.0000"


def test_the_audit_shows_a_balance_changed_behind_its_back(account) -> None:
    alice = account(balance="5")
    Account.update(balance=Decimal("6.25")).where(Account.id == alice.id).execute()
    audit = billing.audit(alice)
    assert not audit.balanced
    assert (audit.expected_balance, audit.stored_balance, audit.difference) == (
        Decimal("5"),
        Decimal("6.25"),
        Decimal("1.25"),
    )
    assert audit.as_dict()["balanced"] is False


def test_a_payment_reference_is_used_once_per_account(account) -> None:
    alice, bob = account("alice", balance="0"), account("bob", balance="0")
    billing.add_payment(alice, "10", "receipt 7")
    billing.add_payment(bob, "10", "receipt 7")  # another account's receipt 7
    with pytest.raises(BillingError, match=r"already has payment \d+ with reference .receipt 7."):
        billing.add_payment(alice, "10", " receipt 7 ")
    assert Account.get_by_id(alice.id).balance == 10
    billing.add_payment(alice, "10", "receipt 7", allow_duplicate_reference=True)
    assert Account.get_by_id(alice.id).balance == 20


def test_a_correction_may_take_the_balance_below_zero_only_when_allowed(account) -> None:
    alice = account(balance="3")
    with pytest.raises(BillingError, match=r"balance of alice to -1\.0000 EUR"):
        billing.add_payment(alice, "-4", "correction")
    assert Account.get_by_id(alice.id).balance == 3
    billing.add_payment(alice, "-4", "correction", allow_negative=True)
    assert Account.get_by_id(alice.id).balance == -1
