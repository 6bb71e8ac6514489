"""Billing: authorise callbacks against the balance, hold money for live calls, bill each leg once.

Plain synchronous functions on the models, with no ESL in them; the controller calls them through
`Database.run`. Every function that changes money runs in one transaction that first locks the
account row (SELECT ... FOR UPDATE on PostgreSQL; on SQLite the BEGIN IMMEDIATE transaction is
already the only writer), so two callbacks authorised at the same moment never spend the same money.
The call path's functions (`authorise`, `open_leg`, `close_leg`, `release_reservations`) join a
transaction their caller has open (`transaction()`, not `atomic()`: no savepoint, which on
PostgreSQL would cost two round trips); an error in them rolls the caller's whole unit back.

The money of one callback request:

1. `authorise(...)` before each originate checks the account, the destination policy, the rates,
   the concurrent calls and the balance, and holds (a `Reservation`) what both legs can cost at
   the maximum duration it returns. A new authorisation of the same request replaces its hold.
2. `open_leg(authorisation, "a" | "b", uuid)` as a leg is originated stores its CDR row with the
   rate in force copied onto it: rate changes during the call do not apply to it.
3. `close_leg(hangup, settings)` on CHANNEL_HANGUP_COMPLETE, or on the switch's own CDR
   (callback/switch_cdr.py), whichever comes first, computes the cost from that copy,
   debits the account and marks the CDR billed in one transaction, once per leg UUID. When the
   request has no open leg left its hold is released; `release_reservations` releases it for a
   request that ends before or without legs.

The balance always equals payments minus the costs of billed legs; `audit` checks it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, NoReturn, Protocol

import peewee
from peewee import EXCLUDED, Case, chunked, fn

from esl_callback import numbers, text
from esl_callback.callback import policy, requests
from esl_callback.callback.rating import (
    MONEY_LIMIT,
    MONEY_STEP,
    AmountError,
    ChargedLeg,
    RateRow,
    RateSnapshot,
    affordable_seconds,
    money,
    parse_amount,
    rounding_mode,
    total_cost,
)
from esl_callback.db import database_proxy, utcnow
from esl_callback.models import Account, CallbackRequest, Leg, Payment, Rate, Reservation
from esl_callback.statements import Insert, ListStatement, Statement, Upsert

log = logging.getLogger(__name__)

# The cause of a leg found gone after a reconnect, closed with billsec 0 (callback/reconcile.py)
# until a report of its real hangup (the switch's CDR) bills it (`close_leg`).
LOST_CAUSE = "LOST_WHILE_DISCONNECTED"
# The longest call one authorisation allows (and holds money for), whatever the balance.
MAX_CALL_SECONDS = 4 * 3600


class BillingSettings(Protocol):
    """The `billing` section of the configuration (any object with these attributes)."""

    currency: str
    charge_leg_a: bool
    low_balance_threshold: Decimal
    warning_seconds_before_hangup: int
    rounding: str
    allow_prefixes: Sequence[str]
    deny_prefixes: Sequence[str]


@dataclass(frozen=True)
class DefaultBilling:
    """Billing settings used when no configuration is at hand."""

    currency: str = "EUR"
    charge_leg_a: bool = True
    low_balance_threshold: Decimal = Decimal("1")
    warning_seconds_before_hangup: int = 60
    rounding: str = "half_up"
    allow_prefixes: tuple[str, ...] = ()
    deny_prefixes: tuple[str, ...] = ()


class BillingError(ValueError):
    """A billing request that cannot be carried out; the message says why."""


class Refusal(StrEnum):
    """Why a callback was not authorised."""

    ACCOUNT_DISABLED = "account_disabled"
    CURRENCY_MISMATCH = "currency_mismatch"
    DESTINATION_DENIED = "destination_denied"
    NO_RATE_DESTINATION = "no_rate_destination"
    NO_RATE_LEG_A = "no_rate_leg_a"
    TOO_MANY_CALLS = "too_many_calls"
    BALANCE_TOO_LOW = "balance_too_low"


@dataclass(frozen=True)
class Authorisation:
    """The answer to `authorise`: allowed (refusal is None) or why not, and for how long."""

    request_id: int
    account_id: int
    leg_a_number: str
    destination: str | None
    refusal: Refusal | None
    detail: str
    max_duration: int  # whole seconds the bridged call may last; 0 when refused
    reserved: Decimal  # held for this request; 0 when refused
    available: Decimal  # balance minus what the account's other live calls hold
    charge_leg_a: bool
    rate_a: RateSnapshot | None
    rate_b: RateSnapshot | None
    # How long leg A may be up in all (from its answer) on this hold alone, if the destination
    # never answers; None when leg A is not charged (nothing to bound).
    leg_a_seconds: int | None = None

    @property
    def allowed(self) -> bool:
        return self.refusal is None


@dataclass(frozen=True)
class Hangup:
    """What CHANNEL_HANGUP_COMPLETE says about a leg (times are naive UTC).

    From the event: uuid = `Unique-ID`, cause = `Hangup-Cause`, billsec = `variable_billsec`,
    answered_at = `variable_answer_uepoch` (0: never answered), ended_at = `variable_end_uepoch`
    (microseconds since the epoch). hangup_by is who hung up, when the caller knows.
    """

    uuid: str
    cause: str
    billsec: int
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    hangup_by: str | None = None


@dataclass(frozen=True)
class LegBill:
    """The outcome of `close_leg`."""

    leg: Leg
    cost: Decimal  # debited from the account
    duplicate: bool  # the leg was billed before: nothing was debited this time
    balance: Decimal | None  # after the debit; None for a duplicate or a request without account
    operator_cost: Decimal = Decimal(0)  # what the leg cost at its rate that no account paid
    corrected: bool = False  # it billed a leg closed LOST_WHILE_DISCONNECTED (see close_leg)


@dataclass(frozen=True)
class Audit:
    """Payments against debits for one account; `difference` = stored - expected."""

    account_id: int
    account: str
    currency: str
    payments: Decimal
    debits: Decimal
    expected_balance: Decimal
    stored_balance: Decimal
    difference: Decimal
    reserved: Decimal  # held by live calls; not part of the balance

    @property
    def balanced(self) -> bool:
        return self.difference == 0

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            k: str(v) if isinstance(v, Decimal) else v for k, v in asdict(self).items()
        }
        data["balanced"] = self.balanced
        return data


@dataclass(frozen=True)
class RateImport:
    """What `import_rates` did."""

    created: int
    updated: int
    removed: int


# -- rates ----------------------------------------------------------------------------------


_RATE_LOOKUP = ListStatement(
    lambda s, prefixes: (
        Rate.select()
        .where(Rate.prefix.in_(prefixes))
        .order_by(fn.LENGTH(Rate.prefix).desc())
        .limit(1)
    )
)


def find_rate(number: str) -> Rate | None:
    """The rate with the longest prefix of `number` (E.164 digits), or None."""
    return _RATE_LOOKUP.object(Rate, [number[:length] for length in range(1, len(number) + 1)])


def rate_for(number: str) -> RateSnapshot | None:
    """The rate that applies to `number` now, as a snapshot."""
    rate = find_rate(number)
    return None if rate is None else snapshot(rate)


def snapshot(rate: Rate) -> RateSnapshot:
    return RateSnapshot(
        prefix=rate.prefix,
        price_per_minute=money(rate.price_per_minute),
        connect_fee=money(rate.connect_fee),
        increment=rate.increment,
        minimum=rate.minimum,
    )


def list_rates() -> list[Rate]:
    return list(Rate.select().order_by(Rate.prefix))


def describe_rate(rate: Rate) -> dict[str, Any]:
    """A rate as plain data (money as strings), for `--json` output and the API."""
    return {
        "prefix": rate.prefix,
        "description": rate.description,
        "price_per_minute": str(money(rate.price_per_minute)),
        "connect_fee": str(money(rate.connect_fee)),
        "increment": rate.increment,
        "minimum": rate.minimum,
        "updated_at": rate.updated_at.isoformat(sep=" ", timespec="seconds"),
    }


def import_rates(rows: Sequence[RateRow], *, replace: bool = False) -> RateImport:
    """Store rates in one transaction: new prefixes are added, known ones overwritten.

    With `replace`, prefixes not in `rows` are removed as well; replacing the table with no rows
    is refused (every call would be refused). Calls already up keep the rate copied onto their
    legs.
    """
    if replace and not rows:
        raise BillingError(
            "no rates to import: replacing the rate table with none would remove every rate "
            "and refuse every call; nothing changed"
        )
    now = utcnow()
    incoming = [row.rate.prefix for row in rows]
    with database_proxy.atomic():
        known = {prefix for (prefix,) in Rate.select(Rate.prefix).tuples()}
        removed = len(known - set(incoming)) if replace else 0
        if replace:
            Rate.delete().execute()
        else:
            for batch in chunked(incoming, 500):
                Rate.delete().where(Rate.prefix.in_(batch)).execute()
        records = [
            {
                "prefix": row.rate.prefix,
                "description": row.description,
                "price_per_minute": row.rate.price_per_minute,
                "connect_fee": row.rate.connect_fee,
                "increment": row.rate.increment,
                "minimum": row.rate.minimum,
                "updated_at": now,
            }
            for row in rows
        ]
        for batch in chunked(records, 500):
            Rate.insert_many(batch).execute()
    updated = len(known & set(incoming))
    return RateImport(created=len(incoming) - updated, updated=updated, removed=removed)


# -- authorisation and reservations ---------------------------------------------------------


def charges_leg_a(account: Account, settings: BillingSettings) -> bool:
    """Whether leg A (the call to the callback number) is charged for this account."""
    return bool(settings.charge_leg_a) if account.charge_leg_a is None else account.charge_leg_a


def call_limit(account: Account, default_limit: int | None) -> int | None:
    """How many calls the account may have live at once: its own limit, else the default
    (`callback.max_concurrent_calls`); None for no limit."""
    own = account.max_concurrent_calls
    return default_limit if own is None else own


def calls_at_limit(account: Account, default_limit: int | None) -> tuple[int, int] | None:
    """(live requests, limit) when the account already has as many callbacks live as it may
    (`call_limit`), else None: the check before a new one is stored (web, SMS), so that it is
    refused up front; `authorise` checks again when the call is placed."""
    limit = call_limit(account, default_limit)
    if limit is None:
        return None
    live = requests.live_count(account.id)
    return (live, limit) if live >= limit else None


def held_for_live_calls(
    account_id: int, excluding_request: int | None = None
) -> tuple[Decimal, int]:
    """What the account's live reservations hold (but `excluding_request`'s), and how many."""
    # Request ids start at 1: excluding 0 excludes nothing.
    count, total = _HELD.first(account=account_id, excluding=excluding_request or 0)
    return _sum(total), count


_HELD = Statement(
    lambda s: Reservation.select(fn.COUNT(Reservation.id), fn.SUM(Reservation.amount)).where(
        Reservation.account == s.account,
        Reservation.released_at.is_null(),
        Reservation.request != s.excluding,
    )
)


def balance_of(account_id: int) -> tuple[Decimal, str]:
    """The account's stored balance and its currency."""
    row = _BALANCE.first(id=account_id)
    if row is None:
        raise BillingError(f"no account with id {account_id}")
    return money(row[0]), row[1]


_BALANCE = Statement(
    lambda s: Account.select(Account.balance, Account.currency).where(Account.id == s.id)
)


def available_balance(account: Account | int) -> Decimal:
    """What a new call may spend: the balance down to the account's floor (its credit limit
    below zero), minus what the account's live calls hold."""
    account_id = _id(account)
    held, _ = held_for_live_calls(account_id)
    return spendable(Account.get_by_id(account_id)) - held


def spendable(account: Account) -> Decimal:
    """The balance down to the account's floor: what calls may still spend, before holds."""
    return money(account.balance) - account.floor


@dataclass(frozen=True)
class Price:
    """What a call would be allowed now (`price`): why not, or for how long and at what rates."""

    refusal: Refusal | None
    detail: str
    seconds: int  # the longest bridged call `available` pays; 0 when refused
    legs: list[ChargedLeg]  # the legs charged, with their head starts
    available: Decimal  # balance down to the floor, minus what other live calls hold
    charge_leg_a: bool
    rate_a: RateSnapshot | None
    rate_b: RateSnapshot | None


def price(
    account: Account,
    leg_a_number: str,
    destination: str | None,
    settings: BillingSettings,
    *,
    leg_a_head_start: int = 0,
    leg_a_rate: RateSnapshot | None = None,
    leg_b_head_start: int = 0,
    leg_b_rate: RateSnapshot | None = None,
    max_seconds: int = MAX_CALL_SECONDS,
    default_call_limit: int | None = None,
    excluding_request: int | None = None,
) -> Price:
    """The pricing of `authorise` (see it for the arguments), holding nothing and locking nothing.

    `authorise` runs it on the locked account and holds what it allows; a price quote shown
    before a call is placed runs it alone. `excluding_request`: a request whose own hold does
    not count against the balance (the one being authorised again).
    """
    rounding = rounding_mode(settings.rounding)
    charge_a = charges_leg_a(account, settings)
    rate_a = leg_a_rate or rate_for(leg_a_number)
    rate_b = leg_b_rate or (rate_for(destination) if destination is not None else None)
    held, live_calls = held_for_live_calls(account.id, excluding_request)
    available = spendable(account) - held
    refusal, detail = _refusal(
        account,
        leg_a_number,
        destination,
        settings,
        charge_a,
        rate_a,
        rate_b,
        live_calls,
        call_limit(account, default_call_limit),
    )
    legs = [ChargedLeg(rate_a, leg_a_head_start)] if charge_a and rate_a else []
    if rate_b is not None:
        legs.append(ChargedLeg(rate_b, leg_b_head_start))
    seconds = affordable_seconds(available, legs, rounding, max_seconds) if refusal is None else 0
    if refusal is None and seconds == 0:
        refusal = Refusal.BALANCE_TOO_LOW
        detail = (
            f"{available} {account.currency} available ({held} held by {live_calls} other "
            "live calls) does not pay the first second"
        )
    return Price(refusal, detail, seconds, legs, available, charge_a, rate_a, rate_b)


def authorise(
    account: Account | int,
    request: CallbackRequest | int,
    leg_a_number: str,
    destination: str | None,
    settings: BillingSettings,
    *,
    leg_a_head_start: int = 0,
    leg_a_rate: RateSnapshot | None = None,
    leg_b_head_start: int = 0,
    leg_b_rate: RateSnapshot | None = None,
    max_seconds: int = MAX_CALL_SECONDS,
    default_call_limit: int | None = None,
) -> Authorisation:
    """May `request` call `leg_a_number` and `destination` (E.164 digits), and for how long?

    Allowed: the money both legs cost at the returned maximum duration is held for the request
    (replacing a hold it had) until `close_leg` closes its last leg or `release_reservations`.
    Refused: nothing changes (a hold the request already had stays, e.g. for a leg A in the IVR
    while the caller tries another destination).

    `destination` None authorises leg A alone (before the IVR has collected the destination).
    `leg_a_head_start` is how long leg A is up before the bridged call starts (its IVR time and
    leg B's ring time), charged on top of the returned duration; `leg_b_head_start` the same
    for leg B (in a simultaneous call, or when B has answered). A rate for leg A is needed only
    when leg A is charged (the account's `charge_leg_a`, or the global setting when None).
    `leg_a_rate` / `leg_b_rate` are the rates the legs were opened with (`open_leg`), if they
    were: the hold is then computed at the rates their CDRs will be billed at. The money
    available is the balance down to the account's floor (`Account.credit_limit` below zero)
    minus the holds of its other live calls.
    `default_call_limit` is how many calls an account without a limit of its own may have live
    at once (`callback.max_concurrent_calls`), whatever triggered them (web, phone, SMS).
    """
    for what, digits in (("leg A number", leg_a_number), ("destination", destination)):
        if digits is not None and not numbers.is_digits(digits):
            raise numbers.InvalidNumber(f"{what}: expected E.164 digits, got {digits!r}")
    rounding = rounding_mode(settings.rounding)
    request_id = _id(request)
    with database_proxy.transaction():
        locked = _locked_account_of(request_id)
        if locked is None or locked.id != _id(account):
            _refuse_foreign_request(request_id, _id(account))
        priced = price(
            locked,
            leg_a_number,
            destination,
            settings,
            leg_a_head_start=leg_a_head_start,
            leg_a_rate=leg_a_rate,
            leg_b_head_start=leg_b_head_start,
            leg_b_rate=leg_b_rate,
            max_seconds=max_seconds,
            default_call_limit=default_call_limit,
            excluding_request=request_id,
        )
        refusal, detail, seconds, legs = priced.refusal, priced.detail, priced.seconds, priced.legs
        charge_a, rate_a, rate_b = priced.charge_leg_a, priced.rate_a, priced.rate_b
        available = priced.available
        reserved = total_cost(legs, seconds, rounding) if refusal is None else money(0)
        leg_a_seconds = None
        if refusal is None and charge_a and rate_a is not None:
            leg_a_seconds = affordable_seconds(
                reserved, [ChargedLeg(rate_a)], rounding, MAX_CALL_SECONDS
            )
        if refusal is None:
            _release(request_id)
            _INSERT_RESERVATION.create(account=locked.id, request=request_id, amount=reserved)
            detail = f"{seconds} s, holding {reserved} {locked.currency}"
    result = Authorisation(
        request_id=request_id,
        account_id=locked.id,
        leg_a_number=leg_a_number,
        destination=destination,
        refusal=refusal,
        detail=detail,
        max_duration=seconds,
        reserved=reserved,
        available=available,
        charge_leg_a=charge_a,
        rate_a=rate_a,
        rate_b=rate_b,
        leg_a_seconds=leg_a_seconds,
    )
    log.log(
        logging.DEBUG if result.allowed else logging.INFO,  # refusals are what an operator reads
        "request %s: %s -> %s %s: %s",
        request_id,
        leg_a_number,
        destination or "?",
        "authorised" if result.allowed else f"refused ({refusal})",
        detail,
    )
    return result


def _refusal(
    account: Account,
    leg_a_number: str,
    destination: str | None,
    settings: BillingSettings,
    charge_a: bool,
    rate_a: RateSnapshot | None,
    rate_b: RateSnapshot | None,
    live_calls: int,
    limit: int | None,
) -> tuple[Refusal | None, str]:
    """The first reason (in the order of `Refusal`) not to place the call, if any (`limit`:
    how many other calls the account may have live, None for no limit)."""
    if not account.is_active:
        return Refusal.ACCOUNT_DISABLED, f"account {account.name} is {account.status}"
    if account.currency != settings.currency:
        return Refusal.CURRENCY_MISMATCH, (
            f"account {account.name} is kept in {account.currency} but the rates are in "
            f"{settings.currency} (billing.currency): set the account's currency or the "
            "configuration's"
        )
    if destination is not None:
        if not policy.destination_allowed(destination, settings):
            return Refusal.DESTINATION_DENIED, f"{destination} is denied by the prefix policy"
        if rate_b is None:
            return Refusal.NO_RATE_DESTINATION, f"no rate for {destination}"
    if charge_a and rate_a is None:
        return Refusal.NO_RATE_LEG_A, f"no rate for {leg_a_number}"
    if limit is not None and live_calls >= limit:
        return Refusal.TOO_MANY_CALLS, f"{live_calls} live calls, the limit is {limit}"
    return None, ""


def release_reservations(request: CallbackRequest | int) -> int:
    """Release what a request holds (when it ends); returns how many holds were released."""
    with database_proxy.transaction():
        return _release(_id(request))


def _release(request_id: int) -> int:
    return _RELEASE.execute(request=request_id, released_at=utcnow()).rowcount


_INSERT_RESERVATION = Insert(Reservation)
_RELEASE = Statement(
    lambda s: Reservation.update(released_at=s(Reservation.released_at)).where(
        Reservation.request == s.request, Reservation.released_at.is_null()
    )
)


# -- legs and their CDRs --------------------------------------------------------------------


def open_leg(authorisation: Authorisation, leg: str, uuid: str, node: str | None = None) -> None:
    """Store the CDR row of a leg being originated, with the authorised rate copied onto it.

    Idempotent by UUID: a leg stored before (by a replay, or by `record_leg` before the PIN
    said who pays) keeps the rate it has and takes the authorisation's charging, unless it is
    billed. One statement.
    """
    if not authorisation.allowed:
        raise BillingError(f"request {authorisation.request_id} was not authorised")
    if leg not in Leg.LEGS:
        raise BillingError(f"leg must be one of {', '.join(Leg.LEGS)}, not {leg!r}")
    number = authorisation.leg_a_number if leg == "a" else authorisation.destination
    if number is None:
        raise BillingError(f"request {authorisation.request_id}: authorised without destination")
    rate = authorisation.rate_a if leg == "a" else authorisation.rate_b
    fields = {"charged": authorisation.charge_leg_a if leg == "a" else True, **_rate_fields(rate)}
    with database_proxy.transaction():
        _OPEN_LEG.store(
            request=authorisation.request_id, leg=leg, uuid=uuid, node=node, number=number, **fields
        )


def record_leg(request_id: int, leg: str, uuid: str, node: str | None, number: str) -> Leg:
    """Store the CDR row of a leg originated before anyone is known to pay for it (leg A of a
    PIN callback), with the rate of its number now: what it costs the operator if nobody
    does (`close_leg`), what it costs the account whose PIN comes (`open_leg`)."""
    return _INSERT_LEG.create(
        request=request_id,
        leg=leg,
        uuid=uuid,
        node=node,
        number=number,
        **_rate_fields(rate_for(number)),
    )


_INSERT_LEG = Insert(Leg)
_LEG_BY_UUID_LOCKED = Statement(lambda s: _for_update(Leg.select().where(Leg.uuid == s.uuid)))
_RATE_COLUMNS = (
    Leg.charged,
    Leg.rate_prefix,
    Leg.price_per_minute,
    Leg.connect_fee,
    Leg.increment,
    Leg.minimum,
)
# A new leg is stored with its rate; one stored before (and not billed) keeps the rate it has
# (or gets this one, having none) and takes this charging.
_OPEN_LEG = Upsert(
    Leg,
    lambda query: query.on_conflict(
        conflict_target=[Leg.uuid],
        update={
            Leg.charged: EXCLUDED.charged,
            **{
                column: Case(
                    None, [(Leg.rate_prefix.is_null(), EXCLUDED[column.column_name])], column
                )
                for column in _RATE_COLUMNS
                if column is not Leg.charged
            },
        },
        where=Leg.billed == False,  # noqa: E712
    ),
)


def close_leg(hangup: Hangup, settings: BillingSettings) -> LegBill | None:
    """Close a leg's CDR from its hangup and debit its cost, once per leg UUID.

    The cost comes from the rate copied onto the leg at its start; a leg that never answered
    (billsec 0) costs 0 but its CDR keeps the times and the cause. What the leg costs at its
    rate and no account pays is its `operator_cost`: a leg before the PIN (its request has no
    account), a leg the account is not charged for, and whatever a debit would have taken below
    the account's floor (the debit stops there: no account ends below it). The debit, the CDR
    and (for the request's last open leg) the release of its hold are one transaction, on the
    leg's locked row: whichever of the hangup event, the reconciler and the switch's CDR
    (callback/switch_cdr.py) reports it first, the others see what it did.

    A leg the reconciler closed as LOST_WHILE_DISCONNECTED (it ended while no controller
    listened; billed nothing) is billed by the first real report of its hangup that comes
    later, usually the switch's CDR; its cause is then no longer LOST_WHILE_DISCONNECTED, so
    this happens once. Any other hangup reported again returns the first result with
    `duplicate` set (it only fills in who hung up, when the first report could not tell); an
    unknown UUID returns None.
    """
    with database_proxy.transaction():
        leg = _LEG_BY_UUID_LOCKED.object(Leg, uuid=hangup.uuid)
        if leg is None:
            log.warning(
                "leg %s: hangup %s for a leg we never opened; ignored", hangup.uuid, hangup.cause
            )
            return None
        lost = leg.hangup_cause == LOST_CAUSE and hangup.cause != LOST_CAUSE
        if leg.billed and not lost:
            return _duplicate(leg, hangup)
        return _bill(leg, hangup, settings)


def _duplicate(leg: Leg, hangup: Hangup) -> LegBill:
    """A leg billed before: nothing is debited; who hung up is filled in if it was unknown."""
    log.info("leg %s: hangup reported again; already billed %s", leg.uuid, leg.cost)
    if hangup.hangup_by and not leg.hangup_by:
        _SET_HANGUP_BY.execute(id=leg.id, hangup_by=hangup.hangup_by)
        leg.hangup_by = hangup.hangup_by
    return LegBill(leg=leg, cost=money(leg.cost or 0), duplicate=True, balance=None)


def _bill(leg: Leg, hangup: Hangup, settings: BillingSettings) -> LegBill:
    """Close the locked `leg` from `hangup` and debit its cost (see `close_leg`). A leg closed
    as lost before cost nothing (billsec 0), so its new cost is all there is to debit."""
    correcting = leg.billed
    account = _locked_account_of(leg.request_id)
    rounding = rounding_mode(settings.rounding)
    full = _leg_cost(leg, hangup.billsec, rounding, expected=account is not None)
    cost = money(0)
    if account is not None and leg.charged:
        cost = min(full, max(spendable(account), money(0)))
    operator_cost = full - cost
    now = utcnow()
    closed = {
        "answered_at": hangup.answered_at or leg.answered_at,
        "ended_at": hangup.ended_at or leg.ended_at or now,
        "billsec": max(hangup.billsec, 0),
        "hangup_cause": hangup.cause,
        "hangup_by": hangup.hangup_by or leg.hangup_by,
        "cost": cost,
        "operator_cost": operator_cost,
        "billed": True,
        "billed_at": now,
    }
    _CLOSE_LEG.execute(id=leg.id, **closed)
    for name, value in closed.items():
        setattr(leg, name, value)
    leg._dirty.clear()
    balance = None
    if account is not None:
        balance = money(account.balance) - cost
        if cost:
            _SET_BALANCE.execute(id=account.id, balance=balance)
    _RELEASE_WHEN_SETTLED.execute(request=leg.request_id, released_at=now)
    level = (
        logging.WARNING if operator_cost and account is not None and leg.charged else logging.INFO
    )
    log.log(
        level,
        "leg %s (%s %s): %s%s, billsec %s, cost %s%s",
        leg.uuid,
        leg.leg,
        leg.number,
        hangup.cause,
        f" (was {LOST_CAUSE}: billed from the switch's CDR)" if correcting else "",
        hangup.billsec,
        cost,
        f", operator cost {operator_cost}" if operator_cost else "",
    )
    return LegBill(
        leg=leg,
        cost=cost,
        duplicate=False,
        balance=balance,
        operator_cost=operator_cost,
        corrected=correcting,
    )


_CLOSE_COLUMNS = (
    Leg.answered_at,
    Leg.ended_at,
    Leg.billsec,
    Leg.hangup_cause,
    Leg.hangup_by,
    Leg.cost,
    Leg.operator_cost,
    Leg.billed,
    Leg.billed_at,
)
_CLOSE_LEG = Statement(
    lambda s: Leg.update({column: s(column) for column in _CLOSE_COLUMNS}).where(Leg.id == s.id)
)
_SET_HANGUP_BY = Statement(lambda s: Leg.update(hangup_by=s(Leg.hangup_by)).where(Leg.id == s.id))
_SET_BALANCE = Statement(
    lambda s: Account.update(balance=s(Account.balance)).where(Account.id == s.id)
)
# The request's hold is released with its last open leg.
_RELEASE_WHEN_SETTLED = Statement(
    lambda s: Reservation.update(released_at=s(Reservation.released_at)).where(
        Reservation.request == s.request,
        Reservation.released_at.is_null(),
        ~fn.EXISTS(Leg.select(Leg.id).where(Leg.request == s.request, Leg.billed == False)),  # noqa: E712
    )
)


def _leg_cost(leg: Leg, billsec: int, rounding: str, *, expected: bool = True) -> Decimal:
    """What `billsec` seconds of the leg cost at the rate copied onto it at its start (else
    today's rate, with a warning when a rate was `expected`: a leg of a known account)."""
    if billsec <= 0:
        return money(0)
    if leg.price_per_minute is None:
        rate = rate_for(leg.number)
        if rate is None:
            log.log(
                logging.ERROR if expected else logging.WARNING,
                "leg %s: no rate at its start nor now for %s; its cost is unknown",
                leg.uuid,
                leg.number,
            )
            return money(0)
        if expected:
            log.warning(
                "leg %s: no rate copied at its start; billed at today's %s", leg.uuid, rate.prefix
            )
    else:
        rate = RateSnapshot(
            prefix=leg.rate_prefix or "",
            price_per_minute=money(leg.price_per_minute),
            connect_fee=money(leg.connect_fee or 0),
            increment=leg.increment,
            minimum=leg.minimum,
        )
    return rate.cost(billsec, rounding)


def _rate_fields(rate: RateSnapshot | None) -> dict[str, Any]:
    """The rate columns of a leg (all None for a leg without a rate)."""
    if rate is None:
        return dict.fromkeys(
            ("rate_prefix", "price_per_minute", "connect_fee", "increment", "minimum")
        )
    return {
        "rate_prefix": rate.prefix,
        "price_per_minute": rate.price_per_minute,
        "connect_fee": rate.connect_fee,
        "increment": rate.increment,
        "minimum": rate.minimum,
    }


# -- payments and audit ---------------------------------------------------------------------


def add_payment(
    account: Account | int,
    amount: Decimal | int | str,
    reference: str,
    at: datetime | None = None,
    *,
    allow_negative: bool = False,
    allow_duplicate_reference: bool = False,
) -> Payment:
    """Credit the account (a negative amount corrects one) and record the payment, atomically.

    Refused, changing nothing: a reference the account already has a payment with (a retried
    command must not credit twice) unless `allow_duplicate_reference`, and a correction that
    takes the balance below zero unless `allow_negative`.
    """
    value = _amount(amount)
    try:
        reference = text.one_line(reference, "a payment's reference", 128)
    except text.InvalidText as exc:
        raise BillingError(str(exc)) from exc
    with database_proxy.atomic():
        locked = _locked_account(_id(account))
        if not allow_duplicate_reference:
            earlier = (
                Payment.select()
                .where(Payment.account == locked.id, Payment.reference == reference)
                .order_by(Payment.id)
                .first()
            )
            if earlier is not None:
                raise BillingError(
                    f"account {locked.name} already has payment {earlier.id} with reference "
                    f"{reference!r} ({money(earlier.amount)} {locked.currency} on "
                    f"{earlier.created_at:%Y-%m-%d %H:%M}); nothing credited. If this is "
                    "another payment, give it its own reference (or --allow-duplicate-reference)"
                )
        balance = money(locked.balance) + value
        if abs(balance) >= MONEY_LIMIT:
            raise BillingError(f"the balance would be {balance}, beyond what can be stored")
        if value < 0 and balance < 0 and not allow_negative:
            raise BillingError(
                f"the correction would take the balance of {locked.name} to {balance} "
                f"{locked.currency}; nothing changed. Pass --allow-negative to book it anyway"
            )
        payment = Payment.create(
            account=locked.id, amount=value, reference=reference, created_at=at or utcnow()
        )
        Account.update(balance=balance).where(Account.id == locked.id).execute()
    log.info("account %s: payment %s (%s), balance %s", locked.name, value, reference, balance)
    return payment


def payments_of(account: Account | int) -> list[Payment]:
    """The account's payments, newest first."""
    return list(
        Payment.select()
        .where(Payment.account == _id(account))
        .order_by(Payment.created_at.desc(), Payment.id.desc())
    )


def audit(account: Account | int) -> Audit:
    """Payments and debits (billed legs) of the account against its stored balance."""
    with database_proxy.atomic():
        locked = _locked_account(_id(account))
        paid = _sum(
            Payment.select(fn.SUM(Payment.amount)).where(Payment.account == locked.id).scalar()
        )
        debited = _sum(
            Leg.select(fn.SUM(Leg.cost))
            .join(CallbackRequest)
            .where(CallbackRequest.account == locked.id, Leg.billed == True)  # noqa: E712
            .scalar()
        )
        held, _ = held_for_live_calls(locked.id)
    expected = paid - debited
    stored = money(locked.balance)
    return Audit(
        account_id=locked.id,
        account=locked.name,
        currency=locked.currency,
        payments=paid,
        debits=debited,
        expected_balance=expected,
        stored_balance=stored,
        difference=stored - expected,
        reserved=held,
    )


# -- low balance ----------------------------------------------------------------------------


def is_low_balance(balance: Decimal, settings: BillingSettings) -> bool:
    """Whether to announce a low balance (below `low_balance_threshold`; 0 disables)."""
    threshold = Decimal(str(settings.low_balance_threshold))
    return threshold > 0 and balance < threshold


def warning_offset(max_duration: int, settings: BillingSettings) -> int | None:
    """Seconds into the call at which to warn of the scheduled hangup (None: no warning).

    `warning_seconds_before_hangup` before the end; at once when the call is shorter than that.
    """
    before = settings.warning_seconds_before_hangup
    if before <= 0 or max_duration <= 0:
        return None
    return max(max_duration - before, 0)


# -- helpers --------------------------------------------------------------------------------


def _id(obj: peewee.Model | int) -> int:
    return obj.id if isinstance(obj, peewee.Model) else int(obj)


def _for_update(query: peewee.Select, of: type[peewee.Model] | None = None) -> peewee.Select:
    """Lock the selected rows (of the `of` table only, in a join) on PostgreSQL; SQLite's
    BEGIN IMMEDIATE already excludes writers."""
    return query.for_update(of=of) if database_proxy.for_update else query


def _account_of(request_id: int) -> int | None:
    """The id of the account a request bills to."""
    row = _ACCOUNT_OF.first(id=request_id)
    if row is None:
        raise BillingError(f"no callback request with id {request_id}")
    return row[0]


def _locked_account(account_id: int) -> Account:
    account = _LOCKED_ACCOUNT.object(Account, id=account_id)
    if account is None:
        raise BillingError(f"no account with id {account_id}")
    return account


def _locked_account_of(request_id: int) -> Account | None:
    """The account a request bills to, locked; None when the request has none (or is unknown)."""
    return _LOCKED_ACCOUNT_OF.object(Account, request=request_id)


def _refuse_foreign_request(request_id: int, account_id: int) -> NoReturn:
    """Raise the error for a request that does not bill to `account_id`."""
    account = _locked_account(account_id)  # no such account
    _account_of(request_id)  # no such request
    raise BillingError(f"request {request_id} does not belong to account {account.name}")


_ACCOUNT_OF = Statement(
    lambda s: CallbackRequest.select(CallbackRequest.account).where(CallbackRequest.id == s.id)
)
_LOCKED_ACCOUNT = Statement(lambda s: _for_update(Account.select().where(Account.id == s.id)))
_LOCKED_ACCOUNT_OF = Statement(
    lambda s: _for_update(
        Account.select()
        .join(CallbackRequest, on=CallbackRequest.account == Account.id)
        .where(CallbackRequest.id == s.request),
        of=Account,
    )
)


def _sum(value: object) -> Decimal:
    """A SUM() result as money (None for no rows; SQLite sums DECIMAL columns as floats)."""
    return money(Decimal(str(value)) if value is not None else 0)


def _amount(amount: Decimal | int | str) -> Decimal:
    """A payment amount: a Decimal or int as it is, text only as a plain decimal."""
    if isinstance(amount, float):
        raise BillingError("give amounts as Decimal or text, never float")
    try:
        value = parse_amount(amount, signed=True) if isinstance(amount, str) else Decimal(amount)
    except AmountError as exc:
        raise BillingError(str(exc)) from None
    except ArithmeticError:
        raise BillingError(f"{amount!r} is not an amount") from None
    if not value.is_finite() or value == 0 or abs(value) >= MONEY_LIMIT:
        raise BillingError(f"{amount!r}: the amount must be non-zero and below {MONEY_LIMIT}")
    if value != value.quantize(MONEY_STEP):
        raise BillingError(f"{amount!r} has more than 4 decimal places")
    return money(value)
