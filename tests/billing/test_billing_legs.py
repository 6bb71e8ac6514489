"""CDRs and debits, on SQLite and PostgreSQL: each leg billed once, at the rate of its start."""

from __future__ import annotations

import dataclasses
import itertools
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from billing_helpers import SETTINGS, rate, set_rates

from esl_callback.callback import billing
from esl_callback.callback.billing import BillingError, Hangup
from esl_callback.db import database_proxy
from esl_callback.models import Account, Leg, Reservation

LEG_A = "4930111"
DEST = "4915123"
ANSWERED = datetime(2026, 11, 25, 21, 0, 0)


@pytest.fixture
def rates(db) -> None:
    set_rates(rate("49", "0.0100"), rate("4915", "0.0500", "0.0200", increment=6, minimum=30))


@pytest.fixture
def call(rates, account, request_for):
    """An authorised callback of a fresh account with both legs opened: (account, auth)."""

    names = itertools.count(1)

    def make(balance: str = "10", **fields: object) -> tuple[Account, billing.Authorisation]:
        owner = account(f"caller{next(names)}", balance=balance, **fields)
        auth = billing.authorise(owner, request_for(owner), LEG_A, DEST, SETTINGS)
        assert auth.allowed, auth.detail
        billing.open_leg(auth, "a", f"a-{auth.request_id}")
        billing.open_leg(auth, "b", f"b-{auth.request_id}")
        return owner, auth

    return make


def hangup(uuid: str, billsec: int, cause: str = "NORMAL_CLEARING") -> Hangup:
    answered = ANSWERED if billsec else None
    return Hangup(
        uuid=uuid,
        cause=cause,
        billsec=billsec,
        answered_at=answered,
        ended_at=ANSWERED + timedelta(seconds=billsec + 5),
    )


def balance(owner: Account) -> Decimal:
    return Account.get_by_id(owner.id).balance


def live_holds(owner: Account) -> int:
    return (
        Reservation.select()
        .where(Reservation.account == owner, Reservation.released_at.is_null())
        .count()
    )


@pytest.mark.parametrize(
    ("billsec_a", "billsec_b", "cost_a", "cost_b"),
    [
        (0, 0, "0", "0"),  # nobody answered
        (20, 0, "0.0100", "0"),  # B busy: A's started minute only
        (61, 31, "0.0200", "0.0500"),  # B: 0.02 connect + 36 s of 0.05/min
        (95, 90, "0.0200", "0.0950"),  # B: 0.02 + 90 s
        (3600, 3599, "0.6000", "3.0200"),
    ],
)
def test_closing_legs_debits_their_cost(
    call, billsec_a: int, billsec_b: int, cost_a: str, cost_b: str
) -> None:
    owner, auth = call()
    first = billing.close_leg(hangup(f"a-{auth.request_id}", billsec_a), SETTINGS)
    second = billing.close_leg(hangup(f"b-{auth.request_id}", billsec_b), SETTINGS)
    assert (first.cost, second.cost) == (Decimal(cost_a), Decimal(cost_b))
    assert second.balance == balance(owner) == 10 - Decimal(cost_a) - Decimal(cost_b)
    assert billing.audit(owner).balanced


def test_the_same_hangup_reported_three_times_debits_once(call) -> None:
    owner, auth = call()
    results = [billing.close_leg(hangup(f"b-{auth.request_id}", 90), SETTINGS) for _ in range(3)]
    assert [r.duplicate for r in results] == [False, True, True]
    assert {r.cost for r in results} == {Decimal("0.0950")}
    assert balance(owner) == Decimal("9.9050")
    audit = billing.audit(owner)
    assert (audit.debits, audit.difference) == (Decimal("0.0950"), 0)


def test_an_unanswered_leg_costs_nothing_but_keeps_its_cdr_and_cause(call) -> None:
    owner, auth = call()
    result = billing.close_leg(hangup(f"b-{auth.request_id}", 0, "USER_BUSY"), SETTINGS)
    leg = Leg.get(Leg.uuid == f"b-{auth.request_id}")
    assert result.cost == 0 and not result.duplicate
    assert (leg.billed, leg.cost, leg.billsec, leg.hangup_cause) == (True, 0, 0, "USER_BUSY")
    assert leg.answered_at is None and leg.ended_at == ANSWERED + timedelta(seconds=5)
    assert balance(owner) == 10


def test_a_rate_change_mid_call_does_not_apply_to_legs_already_up(call) -> None:
    _, auth = call()
    set_rates(rate("49", "1.0000"), rate("4915", "2.0000", "1.0000", increment=60, minimum=60))
    b = billing.close_leg(hangup(f"b-{auth.request_id}", 90), SETTINGS)
    a = billing.close_leg(hangup(f"a-{auth.request_id}", 95), SETTINGS)
    assert (a.cost, b.cost) == (Decimal("0.0200"), Decimal("0.0950"))
    assert (a.leg.rate_prefix, a.leg.price_per_minute) == ("49", Decimal("0.0100"))
    assert (b.leg.increment, b.leg.minimum, b.leg.connect_fee) == (6, 30, Decimal("0.0200"))
    # the next call is rated at the new prices: 1.00 + 2.00 per minute plus 1.00 connect fee
    _, later = call()
    assert (later.rate_b.price_per_minute, later.max_duration) == (Decimal("2"), 180)


def test_the_hold_is_released_when_the_last_open_leg_closes(call) -> None:
    owner, auth = call()
    billing.close_leg(hangup(f"b-{auth.request_id}", 10), SETTINGS)
    assert live_holds(owner) == 1  # leg A still up
    billing.close_leg(hangup(f"a-{auth.request_id}", 20), SETTINGS)
    assert live_holds(owner) == 0
    assert billing.available_balance(owner) == balance(owner)


def test_a_request_that_ends_without_legs_releases_its_hold(rates, account, request_for) -> None:
    owner = account()
    request = request_for(owner)
    billing.authorise(owner, request, LEG_A, None, SETTINGS)
    assert live_holds(owner) == 1
    assert billing.release_reservations(request) == 1
    assert billing.release_reservations(request) == 0
    assert live_holds(owner) == 0


def test_an_uncharged_leg_a_costs_nothing(call) -> None:
    owner, auth = call(charge_leg_a=False)
    result = billing.close_leg(hangup(f"a-{auth.request_id}", 600), SETTINGS)
    assert (result.cost, result.leg.charged, result.leg.billsec) == (0, False, 600)
    assert balance(owner) == 10


def test_a_hangup_for_a_leg_never_opened_is_ignored(call) -> None:
    owner, _ = call()
    assert billing.close_leg(hangup("someone-else", 60), SETTINGS) is None
    assert balance(owner) == 10


def test_opening_a_leg_twice_keeps_the_first_rate(call) -> None:
    owner, auth = call()
    set_rates(rate("49", "5"), rate("4915", "5"))
    again = billing.authorise(owner, auth.request_id, LEG_A, DEST, SETTINGS)
    billing.open_leg(again, "b", f"b-{auth.request_id}")
    assert Leg.get(Leg.uuid == f"b-{auth.request_id}").price_per_minute == Decimal("0.0500")


def test_a_leg_the_dialer_stored_without_a_rate_gets_the_authorised_one(call) -> None:
    _, auth = call()
    Leg.create(request=auth.request_id, leg="b", uuid="b-retry", number=DEST)
    billing.open_leg(auth, "b", "b-retry", node="fs1")
    leg = Leg.get(Leg.uuid == "b-retry")
    assert (leg.rate_prefix, leg.price_per_minute, leg.charged) == ("4915", Decimal("0.05"), True)


def test_a_leg_without_a_copied_rate_is_billed_at_the_current_rate(call) -> None:
    _, auth = call()
    Leg.create(request=auth.request_id, leg="b", uuid="b-unrated", number=DEST)
    result = billing.close_leg(hangup("b-unrated", 30), SETTINGS)
    assert result.cost == Decimal("0.0450")


def test_a_refused_authorisation_opens_no_leg(rates, account, request_for) -> None:
    owner = account(balance="0")
    refused = billing.authorise(owner, request_for(owner), LEG_A, DEST, SETTINGS)
    with pytest.raises(BillingError, match="was not authorised"):
        billing.open_leg(refused, "a", "a-x")
    leg_a_only = dataclasses.replace(refused, refusal=None, destination=None)
    with pytest.raises(BillingError, match="without destination"):
        billing.open_leg(leg_a_only, "b", "b-x")
    assert Leg.select().count() == 0


def test_inside_a_callers_transaction_an_error_undoes_the_whole_unit(
    rates, account, request_for
) -> None:
    """The call path authorises and opens leg A in one transaction: a leg that cannot be
    opened takes the hold back with it (billing joins the caller's transaction)."""
    owner = account("alice")
    request = request_for(owner)
    with pytest.raises(BillingError, match="leg must be one of"), database_proxy.atomic():
        auth = billing.authorise(owner, request, LEG_A, DEST, SETTINGS)
        assert auth.allowed and live_holds(owner) == 1
        billing.open_leg(auth, "c", "c-1")
    assert live_holds(owner) == 0
    assert Leg.select().count() == 0
