"""Ending a request: its hold released and its final state stored as one transaction."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from esl_callback.callback import requests
from esl_callback.callback.dialer import end_request
from esl_callback.callback.requests import State
from esl_callback.db import Database
from esl_callback.models import Account, CallbackRequest, Reservation


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'ending.db'}")
    database.init()
    database.peewee.connect(reuse_if_open=True)
    yield database
    database.close()


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
    statements: list[str] = []
    sqlite_db.peewee.connection().set_trace_callback(statements.append)
    try:
        end_request(request.id, State.COMPLETED, None, None)
    finally:
        sqlite_db.peewee.connection().set_trace_callback(None)

    writes = [s.split()[0] for s in statements if s.split()[0] in ("BEGIN", "UPDATE", "COMMIT")]
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
