"""Callback request states: only allowed moves, each persisted, races lost cleanly."""

import pytest

from esl_callback.callback import requests
from esl_callback.callback.requests import InvalidTransition, State
from esl_callback.db import Database
from esl_callback.models import CallbackRequest


def new_request():
    return requests.create(trigger="phone", method="pin", account=None, source="4930111")


def test_a_two_stage_callback_walks_through_its_states(db: Database) -> None:
    request = new_request()
    for state in (State.CALLING_SOURCE, State.IN_IVR, State.CALLING_DESTINATION, State.BRIDGED):
        requests.advance(request.id, state)
        stored = CallbackRequest.get_by_id(request.id)
        assert (stored.state, stored.ended_at) == (state, None)
    requests.advance(request.id, State.COMPLETED)
    assert CallbackRequest.get_by_id(request.id).ended_at is not None
    assert requests.live() == []


def test_a_request_that_ended_cannot_move_again(db: Database) -> None:
    request = new_request()
    requests.advance(request.id, State.CANCELLED, failure_cause="ORIGINATOR_CANCEL")
    with pytest.raises(InvalidTransition, match="cancelled -> bridged not allowed"):
        requests.advance(request.id, State.BRIDGED)
    assert requests.finish(request.id, State.FAILED) is False
    assert requests.legs_of(request.id) == []


def test_ending_a_live_request_in_a_way_its_state_forbids_fails_it_rather_than_leave_it_live(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    request = new_request()
    for state in (State.CALLING_SOURCE, State.IN_IVR, State.CALLING_DESTINATION, State.BRIDGED):
        requests.advance(request.id, state)
    assert requests.finish(request.id, State.CANCELLED, failure_cause="USER_CANCELLED") is True
    stored = CallbackRequest.get_by_id(request.id)
    assert (stored.state, stored.failure_cause) == (State.FAILED, "CONTROLLER_ERROR")
    assert stored.failure_detail == f"request {request.id}: bridged -> cancelled not allowed"
    assert stored.ended_at is not None
    assert requests.live() == []
    assert "bridged -> cancelled not allowed; ending it as failed" in caplog.text


def test_skipping_a_step_is_refused(db: Database) -> None:
    with pytest.raises(InvalidTransition):
        requests.advance(new_request().id, State.BRIDGED)


def test_rejected_triggers_are_stored_as_ended(db: Database) -> None:
    rejected = requests.create(
        trigger="phone",
        method="did",
        account=None,
        state=State.REJECTED,
        failure_cause="unknown_number",
    )
    assert rejected.ended_at is not None
    assert [r.id for r in requests.live()] == []


def test_live_lists_only_unfinished_requests(db: Database) -> None:
    done, live = new_request(), new_request()
    requests.advance(done.id, State.FAILED, failure_cause="NO_ANSWER")
    assert [r.id for r in requests.live()] == [live.id]
