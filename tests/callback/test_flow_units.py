"""The callback flow's units of work: each is one transaction."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from esl_callback import accounts, lockout
from esl_callback.callback import billing, rating, requests
from esl_callback.callback.billing import Authorisation
from esl_callback.callback.flow import end_request, mark_legs
from esl_callback.callback.flows.two_stage import accept_pin
from esl_callback.callback.rating import RateRow, RateSnapshot
from esl_callback.callback.requests import State
from esl_callback.db import Database, utcnow
from esl_callback.models import Account, CallbackRequest, Leg, Rate, Reservation


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'units.db'}")
    database.init()
    database.peewee.connect(reuse_if_open=True)
    yield database
    database.close()


WRITES = ("BEGIN", "SAVEPOINT", "RELEASE", "INSERT", "UPDATE", "DELETE", "COMMIT")


def statements_of(
    database: Database, unit: Callable[[], object], kept: tuple[str, ...] = WRITES
) -> list[str]:
    """The first word of each statement of the `kept` kinds (by default transaction
    statements and writes) that `unit` sends to SQLite."""
    seen: list[str] = []
    database.peewee.connection().set_trace_callback(seen.append)
    try:
        unit()
    finally:
        database.peewee.connection().set_trace_callback(None)
    words = [s.split()[0] for s in seen]
    return [w for w in words if w in kept]


def bridged_request_with_a_hold() -> CallbackRequest:
    account = Account.create(name="alice")
    request = requests.create(trigger="phone", method="pin", account=account, source="4930111")
    for state in (State.CALLING_SOURCE, State.IN_IVR, State.CALLING_DESTINATION, State.BRIDGED):
        requests.advance(request.id, state)
    Reservation.create(account=account, request=request, amount="1.50")
    return request


def test_ending_a_request_releases_its_hold_and_stores_its_state_in_one_commit(
    sqlite_db: Database,
) -> None:
    request = bridged_request_with_a_hold()

    writes = statements_of(sqlite_db, lambda: end_request(request.id, State.COMPLETED, None, None))

    assert writes == ["BEGIN", "UPDATE", "UPDATE", "COMMIT"]
    assert CallbackRequest.get_by_id(request.id).state == State.COMPLETED
    assert Reservation.get(Reservation.request == request.id).released_at is not None


def test_a_request_that_already_ended_keeps_its_state_and_loses_its_hold(db: Database) -> None:
    request = bridged_request_with_a_hold()
    requests.advance(request.id, State.COMPLETED)

    end_request(request.id, State.FAILED, "CONTROLLER_RESTARTED", None)

    stored = CallbackRequest.get_by_id(request.id)
    assert (stored.state, stored.failure_cause) == (State.COMPLETED, None)
    assert Reservation.get(Reservation.request == request.id).released_at is not None


def pin_request() -> CallbackRequest:
    return requests.create(trigger="phone", method="pin", account=None, source="4930111")


def test_a_right_pin_binds_the_account_and_clears_its_failures_in_one_commit(
    sqlite_db: Database,
) -> None:
    alice = accounts.create_account("alice", pin="4711")
    request = pin_request()
    lockout.record_failure("pin", "cid:4930111", f"account:{alice.id}")

    writes = statements_of(sqlite_db, lambda: accept_pin(request.id, "4711", "cid:4930111"))

    assert writes == ["BEGIN", "DELETE", "UPDATE", "COMMIT"]
    assert CallbackRequest.get_by_id(request.id).account_id == alice.id
    assert lockout.failures("pin", "cid:4930111", 600) == 0
    assert lockout.failures("pin", f"account:{alice.id}", 600) == 0


def test_a_wrong_pin_binds_nothing_and_counts_against_the_caller(db: Database) -> None:
    accounts.create_account("alice", pin="4711")
    request = pin_request()

    assert accept_pin(request.id, "9999", "cid:4930111") is None

    assert CallbackRequest.get_by_id(request.id).account_id is None
    assert lockout.failures("pin", "cid:4930111", 600) == 1


def test_the_pin_of_a_disabled_account_counts_against_the_caller_and_the_account(
    db: Database,
) -> None:
    bob = accounts.create_account("bob", pin="4712", status="disabled")
    request = pin_request()

    assert accept_pin(request.id, "4712", "cid:4930111") is None

    assert CallbackRequest.get_by_id(request.id).account_id is None
    assert lockout.failures("pin", "cid:4930111", 600) == 1
    assert lockout.failures("pin", f"account:{bob.id}", 600) == 1


# -- billing on the call path: as few statements as the work needs ---------------------------

EVERY = (*WRITES, "SELECT")
SETTINGS = billing.DefaultBilling()


def authorised_request(
    leg_a: str = "4930111", destination: str | None = "4915123"
) -> Authorisation:
    Rate.create(prefix="49", price_per_minute="0.0100", updated_at=utcnow())
    account = Account.create(name="alice", balance="10")
    request = requests.create(trigger="phone", method="pin", account=account, source=leg_a)
    auth = billing.authorise(account, request, leg_a, destination, SETTINGS)
    assert auth.allowed, auth.detail
    return auth


def test_authorising_locks_the_requests_account_in_one_statement(sqlite_db: Database) -> None:
    auth = authorised_request()

    sent = statements_of(
        sqlite_db,
        lambda: billing.authorise(auth.account_id, auth.request_id, "4930111", "4915123", SETTINGS),
        EVERY,
    )

    # The account (joined to the request), leg A's rate, leg B's, the holds of other calls;
    # the old hold released, the new one stored.
    assert sent == ["BEGIN", "SELECT", "SELECT", "SELECT", "SELECT", "UPDATE", "INSERT", "COMMIT"]


def test_leg_a_once_opened_is_held_at_its_own_rate_and_not_looked_up_again(
    sqlite_db: Database,
) -> None:
    first = authorised_request(destination=None)
    billing.open_leg(first, "a", "a-1")
    Rate.update(price_per_minute="0.0500").where(Rate.prefix == "49").execute()  # rates change

    def authorise() -> Authorisation:
        return billing.authorise(
            first.account_id, first.request_id, "4930111", "4915123", SETTINGS,
            leg_a_rate=first.rate_a,
        )  # fmt: skip

    sent = statements_of(sqlite_db, authorise, EVERY)
    second = authorise()

    # The account, leg B's rate, the holds of other calls: no lookup of leg A's rate.
    assert sent == ["BEGIN", "SELECT", "SELECT", "SELECT", "UPDATE", "INSERT", "COMMIT"]
    assert second.rate_a == first.rate_a  # 0.0100, the rate leg A's CDR will be billed at
    assert second.rate_b is not None and second.rate_b.price_per_minute == Decimal("0.0500")
    legs = [rating.ChargedLeg(first.rate_a), rating.ChargedLeg(second.rate_b)]
    assert second.reserved == rating.total_cost(legs, second.max_duration, rating.DEFAULT_ROUNDING)


def test_a_new_leg_is_stored_with_its_rate_in_one_statement(sqlite_db: Database) -> None:
    auth = authorised_request()

    sent = statements_of(sqlite_db, lambda: billing.open_leg(auth, "b", "b-1"), EVERY)

    assert sent == ["BEGIN", "INSERT", "COMMIT"]
    assert Leg.get(Leg.uuid == "b-1").price_per_minute == Decimal("0.0100")


def test_a_leg_stored_before_the_pin_keeps_its_rate_and_takes_the_charging_in_one_statement(
    sqlite_db: Database,
) -> None:
    auth = authorised_request()
    billing.record_leg(auth.request_id, "a", "a-1", None, "4930111")  # rated at its start
    assert Leg.get(Leg.uuid == "a-1").rate_prefix == "49"
    billing.import_rates([RateRow(RateSnapshot("4930", Decimal("9"), Decimal(0), 1, 1), "", 1)])
    uncharged = dataclasses.replace(auth, charge_leg_a=False)

    sent = statements_of(sqlite_db, lambda: billing.open_leg(uncharged, "a", "a-1"), EVERY)

    assert sent == ["BEGIN", "INSERT", "COMMIT"]  # INSERT ... ON CONFLICT DO UPDATE
    leg = Leg.get(Leg.uuid == "a-1")
    assert (leg.rate_prefix, leg.charged) == ("49", False)


def test_closing_the_last_leg_bills_it_and_releases_the_hold_in_one_commit(
    sqlite_db: Database,
) -> None:
    auth = authorised_request()
    billing.open_leg(auth, "a", "a-1")
    billing.open_leg(auth, "b", "b-1")
    billing.close_leg(billing.Hangup("a-1", "NORMAL_CLEARING", 60), SETTINGS)
    assert Reservation.get(Reservation.request == auth.request_id).released_at is None

    sent = statements_of(
        sqlite_db,
        lambda: billing.close_leg(billing.Hangup("b-1", "NORMAL_CLEARING", 60), SETTINGS),
        EVERY,
    )

    # The leg, the request's account; the CDR, the debit, the hold (no open leg left).
    assert sent == ["BEGIN", "SELECT", "SELECT", "UPDATE", "UPDATE", "UPDATE", "COMMIT"]
    assert Reservation.get(Reservation.request == auth.request_id).released_at is not None
    assert Account.get_by_id(auth.account_id).balance == Decimal("9.9800")


def test_both_legs_bridged_are_marked_in_one_statement(sqlite_db: Database) -> None:
    auth = authorised_request()
    billing.open_leg(auth, "a", "a-1")
    billing.open_leg(auth, "b", "b-1")
    answered = utcnow()
    marks = [
        ("b-1", {"state": "answered", "answered_at": answered}),
        ("a-1", {"state": "bridged"}),
        ("b-1", {"state": "bridged"}),
    ]

    sent = statements_of(sqlite_db, lambda: mark_legs(marks), EVERY)

    assert sent == ["UPDATE", "UPDATE"]
    legs = {leg.uuid: leg for leg in Leg.select()}
    assert (legs["a-1"].state, legs["b-1"].state) == ("bridged", "bridged")
    assert legs["b-1"].answered_at == answered


def test_marks_of_the_same_leg_are_applied_in_their_order(sqlite_db: Database) -> None:
    auth = authorised_request()
    billing.open_leg(auth, "a", "a-1")

    mark_legs([("a-1", {"state": "ringing"}), ("a-1", {"state": "answered"})])

    assert Leg.get(Leg.uuid == "a-1").state == "answered"


def test_an_accounts_live_holds_are_found_without_reading_its_past_ones(
    sqlite_db: Database,
) -> None:
    plan = sqlite_db.peewee.execute_sql(f"EXPLAIN QUERY PLAN {billing._HELD.sql}", [1, 2])
    details = " ".join(row[3] for row in plan)

    assert "reservation_account_id_released_at (account_id=? AND released_at=?)" in details
