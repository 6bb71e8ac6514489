"""Vouchers (prepaid cards): the classic top-up of a callback business.

The operator makes a batch (`esl-callback voucher create`): random 14-digit codes, each worth an
amount in a currency, optionally expiring; the codes are printed (or written as CSV) once and
only their keyed digest is stored. A customer redeems one in the portal, by SMS (`TOPUP CODE`)
or in the IVR (`*` at the destination question): once, by one account in the voucher's
currency, before it expires. Redeeming books a payment whose reference names the voucher (the
audit trail: `account audit` balances as for any payment). Wrong codes count towards a lockout
of the account and of the phone or address they came from (`billing.voucher_lockout_*`).

Run the functions through `Database.run`; `redeem` is one transaction that locks the voucher
row (FOR UPDATE on PostgreSQL; SQLite's BEGIN IMMEDIATE has one writer), so two sessions
redeeming the same code at once get exactly one payment.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

from peewee import Case, fn

from esl_callback import accounts, lockout
from esl_callback.callback import billing
from esl_callback.callback.rating import MONEY_LIMIT, AmountError, money, parse_amount
from esl_callback.db import database_proxy, utcnow
from esl_callback.hashing import pin_digest
from esl_callback.models import Account, Voucher

log = logging.getLogger(__name__)

CODE_DIGITS = 14
MAX_BATCH = 100_000
LOCKOUT_KIND = "voucher"


class VoucherError(ValueError):
    """A voucher request that cannot be carried out; the message says why (to show a user)."""


class Refused(VoucherError):
    """A code that does not top the account up; `reason` is a short word."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class LockoutSettings(Protocol):
    voucher_lockout_failures: int
    voucher_lockout_seconds: int


@dataclass(frozen=True)
class Redeemed:
    """A voucher that topped an account up."""

    amount: Decimal
    currency: str
    balance: Decimal
    payment_id: int


def new_code() -> str:
    """A random code of CODE_DIGITS digits (keyable on a phone, 10^14 of them)."""
    return "".join(secrets.choice("0123456789") for _ in range(CODE_DIGITS))


def readable(code: str) -> str:
    """A code as printed on a card: groups of four digits."""
    return " ".join(code[i : i + 4] for i in range(0, len(code), 4))


def normalise_code(raw: object) -> str:
    """The digits of a code as typed (spaces and dashes allowed), or Refused."""
    if not isinstance(raw, str):
        raise Refused("invalid", "Type the voucher's code.")
    digits = "".join(ch for ch in raw if ch not in " -")
    if not digits:
        raise Refused("invalid", "Type the voucher's code.")
    if not digits.isascii() or not digits.isdigit() or len(digits) != CODE_DIGITS:
        raise Refused("invalid", f"A voucher code has {CODE_DIGITS} digits.")
    return digits


def digest(code: str) -> str:
    """The stored form of a code: keyed SHA-256 under the installation's key (as PINs)."""
    return pin_digest(f"voucher:{code}", accounts.pin_key())


def create_batch(
    count: int,
    amount: Decimal | str,
    currency: str,
    *,
    batch: str | None = None,
    expires_at: datetime | None = None,
) -> tuple[str, list[str]]:
    """Make `count` vouchers worth `amount` `currency` each; (batch name, their codes).

    The codes exist only in what this returns: print them or hand them over now.
    """
    if not 1 <= count <= MAX_BATCH:
        raise VoucherError(f"a batch has 1 to {MAX_BATCH} vouchers, not {count}")
    value = _amount(amount)
    currency = currency.strip().upper()
    if len(currency) != 3 or not currency.isalpha():
        raise VoucherError("currency must be a 3-letter ISO code such as EUR")
    now = utcnow()
    if expires_at is not None and expires_at <= now:
        raise VoucherError("the expiry date is already past")
    name = batch or f"{now:%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"
    if not 1 <= len(name) <= 64 or not name.isprintable():
        raise VoucherError("a batch name is 1 to 64 printable characters")
    codes: list[str] = []
    with database_proxy.atomic():
        if batch is not None and Voucher.select().where(Voucher.batch == name).exists():
            raise VoucherError(f"batch {name!r} exists already; give the new one its own name")
        while len(codes) < count:
            code = new_code()
            hashed = digest(code)
            if Voucher.select().where(Voucher.code_hash == hashed).exists():
                continue  # a collision in 10^14: draw again
            Voucher.create(
                code_hash=hashed,
                batch=name,
                amount=value,
                currency=currency,
                created_at=now,
                expires_at=expires_at,
            )
            codes.append(code)
    log.info("voucher batch %s: %d x %s %s", name, count, value, currency)
    return name, codes


def redeem(
    account_id: int, raw_code: object, keys: Sequence[str], settings: LockoutSettings
) -> Redeemed:
    """Top the account up with a voucher, once; or Refused (a wrong code counts against the
    account and `keys`, e.g. `cid:4930...` or `ip:192.0.2.1`, until the lockout)."""
    with database_proxy.atomic():  # the failure is counted in the same commit as the check
        outcome = _redeem(account_id, raw_code, (f"account:{account_id}", *keys), settings)
    if isinstance(outcome, Refused):
        log.info("account %s: voucher refused (%s)", account_id, outcome.reason)
        raise outcome
    log.info("account %s redeemed a voucher of %s %s", account_id, outcome.amount, outcome.currency)
    return outcome


def _redeem(
    account_id: int, raw_code: object, lock_keys: tuple[str, ...], settings: LockoutSettings
) -> Redeemed | Refused:
    failures, window = settings.voucher_lockout_failures, settings.voucher_lockout_seconds
    if lockout.is_locked(LOCKOUT_KIND, lock_keys, failures, window):
        return Refused("locked", "Too many wrong voucher codes: try again later.")
    try:
        code = normalise_code(raw_code)
    except Refused as refused:
        lockout.record_failure(LOCKOUT_KIND, *lock_keys)
        return refused
    accounts.lock(account_id)
    voucher = _locked(digest(code))
    refusal = _refusal(voucher, Account.get_by_id(account_id))
    if refusal is not None:
        lockout.record_failure(LOCKOUT_KIND, *lock_keys)
        return refusal
    now = utcnow()
    reference = f"voucher {voucher.batch} #{voucher.id}"
    payment = billing.add_payment(account_id, money(voucher.amount), reference, now)
    Voucher.update(redeemed_at=now, account=account_id, payment=payment.id).where(
        Voucher.id == voucher.id
    ).execute()
    lockout.clear(LOCKOUT_KIND, lock_keys[0])
    balance = money(Account.get_by_id(account_id).balance)
    return Redeemed(money(voucher.amount), voucher.currency, balance, payment.id)


def _locked(hashed: str) -> Voucher | None:
    query = Voucher.select().where(Voucher.code_hash == hashed)
    if database_proxy.for_update:
        query = query.for_update()
    return query.first()


def _refusal(voucher: Voucher | None, account: Account) -> Refused | None:
    """Why this voucher does not top this account up, if it does not."""
    if voucher is None:
        return Refused("unknown", "That voucher code is not valid. Check the digits.")
    if voucher.redeemed_at is not None:
        return Refused("used", "That voucher has been used already.")
    if voucher.voided_at is not None:
        return Refused("void", "That voucher is no longer valid.")
    if voucher.expires_at is not None and voucher.expires_at <= utcnow():
        return Refused("expired", "That voucher has expired.")
    if voucher.currency != account.currency:
        return Refused(
            "currency",
            f"That voucher is in {voucher.currency}; your account is kept in {account.currency}.",
        )
    return None


def void_batch(batch: str) -> int:
    """Make a batch's unredeemed vouchers unusable (lost or stolen cards); how many."""
    return (
        Voucher.update(voided_at=utcnow())
        .where(Voucher.batch == batch, Voucher.redeemed_at.is_null(), Voucher.voided_at.is_null())
        .execute()
    )


def batches() -> list[dict[str, Any]]:
    """Each batch with how many vouchers it has, and of them redeemed, voided, expired."""
    now = utcnow()
    unredeemed_expired = (Voucher.expires_at <= now) & Voucher.redeemed_at.is_null()
    rows = (
        Voucher.select(
            Voucher.batch,
            Voucher.currency,
            Voucher.amount,
            fn.MIN(Voucher.created_at),
            fn.MAX(Voucher.expires_at),
            fn.COUNT(Voucher.id),
            fn.COUNT(Voucher.redeemed_at),
            fn.COUNT(Voucher.voided_at),
            fn.SUM(Case(None, [(unredeemed_expired, 1)], 0)),
        )
        .group_by(Voucher.batch, Voucher.currency, Voucher.amount)
        .order_by(fn.MIN(Voucher.created_at))
        .tuples()
    )
    return [
        {
            "batch": batch,
            "amount": str(money(amount)),
            "currency": currency,
            "created_at": created.isoformat(sep=" ", timespec="seconds"),
            "expires_at": expires.isoformat(sep=" ", timespec="seconds") if expires else None,
            "vouchers": count,
            "redeemed": redeemed,
            "voided": voided,
            "expired": int(expired or 0),
        }
        for batch, currency, amount, created, expires, count, redeemed, voided, expired in rows
    ]


def _amount(amount: Decimal | str) -> Decimal:
    try:
        value = parse_amount(amount) if isinstance(amount, str) else Decimal(amount)
    except AmountError as exc:
        raise VoucherError(str(exc)) from None
    if not value.is_finite() or value <= 0 or value >= MONEY_LIMIT:
        raise VoucherError(f"a voucher is worth more than 0 (and less than {MONEY_LIMIT})")
    if value != money(value):
        raise VoucherError(f"{amount} has more than 4 decimal places")
    return money(value)
