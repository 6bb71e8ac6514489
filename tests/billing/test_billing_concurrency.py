"""Simultaneous authorisations and hangups, on real PostgreSQL and SQLite, across greenlets
and processes: never more held than the balance, never a leg debited twice."""

from __future__ import annotations

from decimal import Decimal

import pytest
from billing_helpers import SETTINGS, rate, set_rates, storm

from esl_callback.callback import billing
from esl_callback.callback.billing import Refusal
from esl_callback.callback.rating import money
from esl_callback.db import Database
from esl_callback.models import Account, Reservation

LEG_A, DEST = "4930111", "4915123"


def live_reserved(owner: Account) -> Decimal:
    holds = Reservation.select().where(
        Reservation.account == owner, Reservation.released_at.is_null()
    )
    return sum((money(h.amount) for h in holds), money(0))


@pytest.mark.parametrize("processes", [1, 5], ids=["50-greenlets", "5-processes-x-10-greenlets"])
def test_fifty_simultaneous_authorisations_never_hold_more_than_the_balance(
    db: Database, account, request_for, processes: int
) -> None:
    set_rates(rate("49", "0.0100"), rate("4915", "0.0500"))
    owner = account(balance="1.00")
    requests = [str(request_for(owner).id) for _ in range(50)]
    fixed = [str(owner.id), LEG_A, DEST, "60"]  # one minute each: 0.06 held per call
    results = storm(db.url, "authorise", fixed, requests, processes)
    allowed = [r for r in results if r["refusal"] is None]
    assert len(results) == 50
    assert sum(Decimal(r["reserved"]) for r in allowed) == live_reserved(owner) == Decimal("0.96")
    assert len(allowed) == 16
    assert {r["refusal"] for r in results if r["refusal"]} == {Refusal.BALANCE_TOO_LOW}
    assert billing.available_balance(owner) == Decimal("0.04")


def test_fifty_simultaneous_authorisations_respect_the_concurrent_call_limit(
    db: Database, account, request_for
) -> None:
    set_rates(rate("49", "0.0100"), rate("4915", "0.0500"))
    owner = account(balance="100", max_concurrent_calls=5)
    requests = [str(request_for(owner).id) for _ in range(50)]
    results = storm(db.url, "authorise", [str(owner.id), LEG_A, DEST, "60"], requests, 5)
    refusals = sorted(str(r["refusal"]) for r in results)
    assert refusals == ["None"] * 5 + [Refusal.TOO_MANY_CALLS.value] * 45


def test_one_hangup_reported_by_many_at_once_debits_once(
    db: Database, account, request_for
) -> None:
    set_rates(rate("49", "0.0100"), rate("4915", "0.0500"))
    owner = account(balance="1.00")
    auth = billing.authorise(owner, request_for(owner), LEG_A, DEST, SETTINGS)
    billing.open_leg(auth, "b", "leg-b")
    results = storm(db.url, "close", ["leg-b"], ["4", "4", "4"], 3)
    assert sorted(r["duplicate"] for r in results) == [False] + [True] * 11
    assert {r["cost"] for r in results} == {"0.1000"}
    assert Account.get_by_id(owner.id).balance == Decimal("0.90")
    assert billing.audit(owner).balanced
