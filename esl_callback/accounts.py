"""Accounts and what belongs to them: caller IDs, personal DIDs, access numbers, web users.

Plain functions on the models, used by the CLI and the web portal alike. Every number goes
through `numbers.normalise`; every failure raises `AccountError` with a message fit to show.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import peewee
from peewee import fn

from esl_callback import numbers, text
from esl_callback.callback.rating import (
    MONEY_LIMIT,
    MONEY_STEP,
    AmountError,
    money,
    parse_amount,
)
from esl_callback.db import database_proxy
from esl_callback.hashing import hash_password, new_key, pin_digest
from esl_callback.models import (
    AccessNumber,
    Account,
    CallbackRequest,
    CallerId,
    Did,
    Payment,
    Setting,
    WebUser,
)
from esl_callback.statements import Statement

PIN_LENGTHS = range(4, 13)
MIN_PASSWORD_LENGTH = 8
MAX_CALLS = range(1, 100_001)  # an account's concurrent-call limit
# As an account's max_concurrent_calls: no limit of its own, callback.max_concurrent_calls applies.
DEFAULT_CALL_LIMIT = "default"


class AccountError(ValueError):
    """A request about accounts that cannot be carried out; the message says why."""


def find_account(ref: str | int) -> Account:
    """The account with this name or numeric id."""
    query = Account.select()
    text = str(ref)
    account = query.where(Account.name == text).first()
    if account is None and text.isdigit():
        account = query.where(Account.id == int(text)).first()
    if account is None:
        raise AccountError(f"no account named {text!r}")
    return account


def pin_key() -> str:
    """The installation's PIN hashing key, made on first use."""
    row = _SETTING.first(key="pin_key")
    if row is not None:
        return row[0]
    setting, _ = Setting.get_or_create(key="pin_key", defaults={"value": new_key()})
    return setting.value


_SETTING = Statement(lambda s: Setting.select(Setting.value).where(Setting.key == s.key))
_ACCOUNT_BY_PIN = Statement(lambda s: Account.select().where(Account.pin_hash == s.pin_hash))


def find_account_by_pin(pin: str) -> Account | None:
    """The account whose PIN this is (active or not), or None."""
    if not numbers.is_digits(pin):
        return None
    return _ACCOUNT_BY_PIN.object(Account, pin_hash=pin_digest(pin, pin_key()))


def check_pin(pin: str) -> str:
    """A PIN is 4 to 12 ASCII digits."""
    if not numbers.is_digits(pin) or len(pin) not in PIN_LENGTHS:
        raise AccountError("PIN must be 4 to 12 digits")
    return pin


def number(raw: str, what: str) -> str:
    """Normalise a number given by an operator or user, as an AccountError when invalid.

    Numbers are stored in international form (E.164 digits). There is no country code here, so
    a number still in national form (starting with the national prefix 0) is refused: stored
    as typed it would never match the number serve sees.
    """
    try:
        digits = numbers.normalise(raw, what=what, allow_formatting=True)
    except numbers.InvalidNumber as exc:
        raise AccountError(str(exc)) from exc
    national_prefix = numbers.DEFAULT_RULES.national_prefix
    if digits.startswith(national_prefix):
        raise AccountError(
            f"{what}: {raw} is in national form (starts with {national_prefix}); give it in "
            "international form (e.g. +4930123456 or 004930123456), or pass -c CONFIG "
            "with numbers.country_code to have it converted"
        )
    return digits


def plain_text(raw: str, what: str, max_length: int, *, required: bool = True) -> str:
    """Check free text (`text.one_line`), as an AccountError when it cannot be stored."""
    try:
        return text.one_line(raw, what, max_length, required=required)
    except text.InvalidText as exc:
        raise AccountError(str(exc)) from exc


def create_account(
    name: str,
    *,
    pin: str | None = None,
    currency: str = "EUR",
    default_callback_number: str | None = None,
    **options: Any,
) -> Account:
    """Create an active account with a zero balance."""
    name = plain_text(name, "account name", 64)
    if name.isdigit():
        raise AccountError("account name must not be only digits (those are account ids)")
    fields = account_fields(
        pin=pin, currency=currency, default_callback_number=default_callback_number, **options
    )
    with database_proxy.atomic():
        taken = Account.get_or_none(fn.LOWER(Account.name) == name.lower())
        if taken is not None:  # alice and ALICE would be told apart by case alone
            raise AccountError(f"account {taken.name!r} already exists")
        account = Account.create(name=name, **fields)
        if account.default_callback_number:
            ensure_caller_id(account, account.default_callback_number)
    return account


def update_account(account: Account, **changes: Any) -> Account:
    """Change an account's settings (the same keywords as `create_account`, None = unchanged)."""
    fields = account_fields(**{k: v for k, v in changes.items() if v is not None})
    with database_proxy.atomic():
        if "currency" in fields:
            _check_currency_change(Account.get_by_id(account.id), fields["currency"])
        # Only the changed columns: a stale copy of the account must never write back its
        # balance over payments and debits made meanwhile.
        if fields:
            Account.update(fields).where(Account.id == account.id).execute()
        updated = Account.get_by_id(account.id)
        if "default_callback_number" in fields:
            ensure_caller_id(updated, updated.default_callback_number)
    return updated


def _check_currency_change(account: Account, currency: str) -> None:
    """Amounts are stored without a currency: an account with money or calls keeps its own."""
    if currency == account.currency:
        return
    has_history = (
        account.balance != 0
        or Payment.select().where(Payment.account == account.id).exists()
        or CallbackRequest.select().where(CallbackRequest.account == account.id).exists()
    )
    if has_history:
        raise AccountError(
            f"account {account.name} has a balance, payments or calls in {account.currency}: "
            f"changing its currency would relabel them as {currency}; open a new account instead"
        )


def account_fields(
    *,
    pin: str | None = None,
    currency: str | None = None,
    default_callback_number: str | None = None,
    status: str | None = None,
    callback_to_default: bool | None = None,
    charge_leg_a: bool | None = None,
    max_concurrent_calls: int | str | None = None,
    allow_any_source: bool | None = None,
    credit_limit: str | Decimal | None = None,
) -> dict[str, Any]:
    """Validate account settings and turn them into model fields (None: not given)."""
    fields: dict[str, Any] = {}
    if credit_limit is not None:
        fields["credit_limit"] = own_credit_limit(credit_limit)
    if pin is not None:
        digest = pin_digest(check_pin(pin), pin_key())
        if Account.select().where(Account.pin_hash == digest).exists():
            raise AccountError("this PIN is already in use; PINs must be unique")
        fields["pin_hash"] = digest
    if currency is not None:
        if len(currency) != 3 or not currency.isalpha():
            raise AccountError("currency must be a 3-letter ISO code such as EUR")
        fields["currency"] = currency.upper()
    if default_callback_number is not None:
        fields["default_callback_number"] = number(default_callback_number, "callback number")
    if status is not None:
        if status not in Account.STATUSES:
            raise AccountError(f"status must be one of {', '.join(Account.STATUSES)}")
        fields["status"] = status
    if max_concurrent_calls is not None:
        fields["max_concurrent_calls"] = own_call_limit(max_concurrent_calls)
    for key, value in (
        ("callback_to_default", callback_to_default),
        ("charge_leg_a", charge_leg_a),
        ("allow_any_source", allow_any_source),
    ):
        if value is not None:
            fields[key] = value
    return fields


def own_credit_limit(limit: str | Decimal) -> Decimal:
    """How far below zero the account's calls may take its balance: an amount >= 0."""
    try:
        value = parse_amount(limit) if isinstance(limit, str) else Decimal(limit)
    except AmountError as exc:
        raise AccountError(f"credit limit: {exc}") from None
    if not value.is_finite() or value < 0 or value >= MONEY_LIMIT:
        raise AccountError(f"credit limit must be 0 or more (below {MONEY_LIMIT}), not {limit}")
    if value != value.quantize(MONEY_STEP):
        raise AccountError(f"credit limit {limit} has more than 4 decimal places")
    return money(value)


def own_call_limit(limit: int | str) -> int | None:
    """An account's concurrent-call limit as stored: a number in MAX_CALLS, or None for
    DEFAULT_CALL_LIMIT (the account follows callback.max_concurrent_calls)."""
    if limit == DEFAULT_CALL_LIMIT:
        return None
    if not isinstance(limit, int) or limit not in MAX_CALLS:
        raise AccountError(
            f"max concurrent calls must be {MAX_CALLS.start} to {MAX_CALLS.stop - 1}, not "
            f"{limit} (to stop an account's calls, disable it; {DEFAULT_CALL_LIMIT!r} follows "
            "callback.max_concurrent_calls)"
        )
    return limit


def ensure_caller_id(account: Account, digits: str) -> CallerId:
    """Make `digits` one of the account's numbers (refused if another account has it)."""
    existing = CallerId.get_or_none(CallerId.number == digits)
    if existing is None:
        return CallerId.create(account=account, number=digits)
    if existing.account_id != account.id:
        raise AccountError(f"{digits} already belongs to another account")
    return existing


def add_caller_id(account: Account, raw: str) -> CallerId:
    """Register a number of the account (caller-ID callbacks, web sources, SMS)."""
    with database_proxy.atomic():
        return ensure_caller_id(account, number(raw, "caller ID"))


def remove_caller_id(raw: str) -> Account:
    """Remove a registered number; an account's default callback number cannot be removed."""
    digits = number(raw, "caller ID")
    with database_proxy.atomic():
        caller_id = CallerId.get_or_none(CallerId.number == digits)
        if caller_id is None:
            raise AccountError(f"{digits} is not a registered caller ID")
        account = caller_id.account
        if account.default_callback_number == digits:
            raise AccountError(
                f"{digits} is the default callback number of {account.name}; set another first"
            )
        caller_id.delete_instance()
    return account


def add_did(raw: str, account: Account, callback_number: str | None = None) -> Did:
    """Give an account a personal DID (calls to it call back the predefined number)."""
    digits = number(raw, "DID")
    target = number(callback_number, "callback number") if callback_number else None
    if target is None and not account.default_callback_number:
        raise AccountError(
            f"account {account.name} has no default callback number; "
            "give --callback-number or set one first"
        )
    with database_proxy.atomic():
        if AccessNumber.select().where(AccessNumber.number == digits).exists():
            raise AccountError(f"{digits} is already an access number")
        try:
            return Did.create(number=digits, account=account, callback_number=target)
        except peewee.IntegrityError as exc:
            raise AccountError(f"DID {digits} is already assigned") from exc


def remove_did(raw: str) -> None:
    """Take a personal DID away from its account."""
    digits = number(raw, "DID")
    if Did.delete().where(Did.number == digits).execute() == 0:
        raise AccountError(f"DID {digits} is not assigned")


def add_access_number(raw: str, method: str, description: str = "") -> AccessNumber:
    """Declare a shared access number and how its callers are identified (pin or ani)."""
    if method not in AccessNumber.METHODS:
        raise AccountError(f"method must be one of {', '.join(AccessNumber.METHODS)}")
    digits = number(raw, "access number")
    description = plain_text(description, "description", 128, required=False)
    with database_proxy.atomic():
        if Did.select().where(Did.number == digits).exists():
            raise AccountError(f"{digits} is already a personal DID")
        try:
            return AccessNumber.create(number=digits, method=method, description=description)
        except peewee.IntegrityError as exc:
            raise AccountError(f"access number {digits} already exists") from exc


def remove_access_number(raw: str) -> None:
    """Remove a shared access number."""
    digits = number(raw, "access number")
    if AccessNumber.delete().where(AccessNumber.number == digits).execute() == 0:
        raise AccountError(f"access number {digits} does not exist")


def add_web_user(account: Account, username: str, password: str) -> WebUser:
    """A web login for the account; the password is stored hashed."""
    username = plain_text(username, "username", 64)
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"password must be at least {MIN_PASSWORD_LENGTH} characters")
    taken = WebUser.get_or_none(fn.LOWER(WebUser.username) == username.lower())
    if taken is not None:  # a login told apart from another by case alone invites mistakes
        raise AccountError(f"user {taken.username!r} already exists")
    try:
        return WebUser.create(
            account=account, username=username, password_hash=hash_password(password)
        )
    except peewee.IntegrityError as exc:
        raise AccountError(f"user {username!r} already exists") from exc


def describe(account: Account) -> dict[str, Any]:
    """The account as plain data, for `--json` output and the API."""
    return {
        "id": account.id,
        "name": account.name,
        "status": account.status,
        "balance": str(money(account.balance)),  # 4 decimals, as the API and the CLI show it
        "currency": account.currency,
        "has_pin": bool(account.pin_hash),
        "default_callback_number": account.default_callback_number,
        "callback_to_default": account.callback_to_default,
        "charge_leg_a": account.charge_leg_a,
        "max_concurrent_calls": account.max_concurrent_calls,
        "allow_any_source": account.allow_any_source,
        "credit_limit": str(money(account.credit_limit)),
        "caller_ids": [c.number for c in account.caller_ids.order_by(CallerId.number)],
        "dids": [d.number for d in account.dids.order_by(Did.number)],
    }


def lock(account_id: int) -> None:
    """Serialise changes of one account, inside a transaction: on PostgreSQL its row is locked
    until the transaction ends (on SQLite every writer runs alone already)."""
    if database_proxy.for_update:
        Account.select(Account.id).where(Account.id == account_id).for_update().execute()
