"""The callback flow's units of work: each is one transaction."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from esl_callback import accounts, lockout
from esl_callback.callback import requests
from esl_callback.callback.dialer import accept_pin, end_request
from esl_callback.callback.requests import State
from esl_callback.db import Database
from esl_callback.models import Account, CallbackRequest, Reservation


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'units.db'}")
    database.init()
    database.peewee.connect(reuse_if_open=True)
    yield database
    database.close()


def statements_of(database: Database, unit: Callable[[], object]) -> list[str]:
    """The first word of each transaction statement and write that `unit` sends to SQLite."""
    seen: list[str] = []
    database.peewee.connection().set_trace_callback(seen.append)
    try:
        unit()
    finally:
        database.peewee.connection().set_trace_callback(None)
    words = [s.split()[0] for s in seen]
    kept = ("BEGIN", "SAVEPOINT", "RELEASE", "INSERT", "UPDATE", "DELETE", "COMMIT")
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

    assert writes == ["BEGIN", "DELETE", "DELETE", "UPDATE", "COMMIT"]
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
