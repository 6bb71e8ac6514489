"""The account as its user sees it: balance, numbers, default callback number, payments, PIN.

Run these through `Database.run`.
"""

from __future__ import annotations

import secrets
from typing import Any

import peewee

from esl_callback import accounts, vouchers
from esl_callback.callback import billing
from esl_callback.callback.status import amount, iso
from esl_callback.models import Account, CallerId, Payment
from esl_callback.web.errors import Conflict, Invalid, NotFound, TooMany, Unavailable

# A PIN made in the portal: the account's only key on a PIN access number, so a long one.
PORTAL_PIN_DIGITS = 8
PIN_TRIES = 5


def own_numbers(account_id: int) -> list[CallerId]:
    return list(CallerId.select().where(CallerId.account == account_id).order_by(CallerId.number))


def overview(account_id: int) -> dict[str, Any]:
    """Balance, currency, the account's numbers and its default callback number."""
    account = Account.get_by_id(account_id)
    return {
        "name": account.name,
        "status": account.status,
        "balance": amount(account.balance),
        "available": amount(billing.available_balance(account)),
        "currency": account.currency,
        "default_callback_number": account.default_callback_number,
        "allow_any_source": account.allow_any_source,
        "has_pin": bool(account.pin_hash),
        "max_concurrent_calls": account.max_concurrent_calls,
        "numbers": [
            {
                "number": caller_id.number,
                "verified_at": iso(caller_id.verified_at),
                "default": caller_id.number == account.default_callback_number,
            }
            for caller_id in own_numbers(account_id)
        ],
    }


def set_default_number(account_id: int, digits: str) -> None:
    """Make one of the account's own numbers its default callback number."""
    if (
        not CallerId.select()
        .where(CallerId.account == account_id, CallerId.number == digits)
        .exists()
    ):
        raise Invalid(
            f"{digits} is not one of your numbers: add it and verify it first.",
            field="number",
        )
    accounts.update_account(Account.get_by_id(account_id), default_callback_number=digits)


def remove_number(account_id: int, digits: str) -> None:
    """Remove one of the account's numbers (not its default callback number)."""
    if (
        not CallerId.select()
        .where(CallerId.account == account_id, CallerId.number == digits)
        .exists()
    ):
        raise NotFound(f"{digits} is not one of your numbers.")
    try:
        accounts.remove_caller_id(digits)
    except accounts.AccountError as exc:
        raise Conflict(str(exc), field="number") from None


def describe_payment(payment: Payment) -> dict[str, Any]:
    return {
        "id": payment.id,
        "amount": amount(payment.amount),
        "reference": payment.reference,
        "created_at": iso(payment.created_at),
    }


def payments(account_id: int) -> list[dict[str, Any]]:
    """The account's payments, newest first."""
    return [describe_payment(p) for p in billing.payments_of(account_id)]


def redeem_voucher(
    account_id: int, code: object, client: str, settings: vouchers.LockoutSettings
) -> dict[str, Any]:
    """Top the account up with a voucher (`client`: the address asking, for the lockout); what
    it added and the new balance, or Invalid / TooMany saying why not."""
    try:
        done = vouchers.redeem(account_id, code, (f"ip:{client}",), settings)
    except vouchers.Refused as refused:
        if refused.reason == "locked":
            raise TooMany(str(refused), retry_after=settings.voucher_lockout_seconds) from None
        raise Invalid(str(refused), field="code") from None
    return {
        "amount": amount(done.amount),
        "currency": done.currency,
        "balance": amount(done.balance),
        "payment_id": done.payment_id,
    }


def new_pin(account_id: int) -> str:
    """A new random PIN for the account, replacing the old one; returned once, to be shown.

    Only its keyed digest is stored (`hashing.pin_digest`), so the portal can never show a PIN
    again, only make a new one. It is drawn, not chosen: as a PIN alone finds its account, a
    chosen PIN refused as taken would tell the user another account's PIN.
    """
    for _ in range(PIN_TRIES):
        pin = "".join(secrets.choice("0123456789") for _ in range(PORTAL_PIN_DIGITS))
        try:
            accounts.update_account(Account.get_by_id(account_id), pin=pin)
        except (accounts.AccountError, peewee.IntegrityError):
            continue  # drawn already (1 in 10^8 per account): draw again
        return pin
    raise Unavailable("No new PIN could be made just now: try again in a moment.")
