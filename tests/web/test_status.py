"""Live status snapshots: each leg's state in words, duration, cost; the publish/subscribe hub."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from esl_callback.callback import billing, requests, status
from esl_callback.callback.requests import State
from esl_callback.callback.status import StatusHub
from esl_callback.db import Database, utcnow
from esl_callback.models import Account, Leg

T0 = utcnow().replace(microsecond=0) - timedelta(minutes=5)


@pytest.fixture
def account(db: Database) -> Account:
    created = Account.create(name="alice")
    billing.add_payment(created, "5", "opening")
    return Account.get_by_id(created.id)


def new_request(account: Account, mode: str = "source_first"):
    return requests.create(
        trigger="web",
        method="web",
        account=account,
        mode=mode,
        source="4930111111",
        destination="4940222222",
    )


def leg(request_id: int, role: str, **fields) -> Leg:
    number = "4930111111" if role == "a" else "4940222222"
    return Leg.create(
        request=request_id,
        leg=role,
        uuid=f"{request_id}-{role}-{Leg.select().count()}",
        number=number,
        created_at=fields.pop("created_at", T0),
        **fields,
    )


def by_role(snap: dict) -> dict[str, dict]:
    return {item["role"]: item for item in snap["legs"]}


def test_a_new_request_shows_both_legs_queued(account: Account) -> None:
    snap = status.snapshot(new_request(account).id)
    assert snap["state"] == "queued" and snap["live"] and not snap["final"]
    assert [(item["role"], item["status"]) for item in snap["legs"]] == [
        ("source", "queued"),
        ("destination", "queued"),
    ]
    assert snap["cost"] is None and snap["duration_seconds"] == 0
    assert snap["balance"] == "5.0000" and snap["currency"] == "EUR"


@pytest.mark.parametrize(
    ("leg_state", "expected", "words"),
    [
        ("dialing", "calling", "calling"),
        ("ringing", "ringing", "ringing"),
        ("early_media", "early_media", "early media"),
        ("answered", "answered", "answered"),
        ("bridged", "bridged", "bridged"),
    ],
)
def test_a_live_leg_shows_what_the_dialer_last_saw(
    account: Account, leg_state: str, expected: str, words: str
) -> None:
    request = new_request(account)
    leg(request.id, "a", state=leg_state)
    source = by_role(status.snapshot(request.id))["source"]
    assert (source["status"], source["status_words"]) == (expected, words)


@pytest.mark.parametrize(
    ("cause", "expected", "summary_words"),
    [
        ("USER_BUSY", "busy", "destination 4940222222: busy"),
        ("NO_ANSWER", "no_answer", "destination 4940222222: no answer"),
        (
            "UNALLOCATED_NUMBER",
            "failed",
            "destination 4940222222: failed (number does not exist)",
        ),
    ],
)
def test_an_unanswered_leg_says_why_it_failed(
    account: Account, cause: str, expected: str, summary_words: str
) -> None:
    request = new_request(account)
    leg(request.id, "a", state="answered", answered_at=T0)
    leg(request.id, "b", state="hung_up", hangup_cause=cause, billsec=0, billed=True, cost=0)
    snap = status.snapshot(request.id)
    destination = by_role(snap)["destination"]
    assert destination["status"] == expected
    assert destination["cause"] == cause
    assert summary_words in snap["summary"]


def test_a_finished_call_has_its_duration_cost_and_who_hung_up(account: Account) -> None:
    request = new_request(account)
    leg(
        request.id,
        "a",
        state="hung_up",
        answered_at=T0,
        billsec=75,
        billed=True,
        cost=Decimal("0.10"),
        hangup_cause="NORMAL_CLEARING",
        hangup_by="recv_bye",
    )
    leg(
        request.id,
        "b",
        state="hung_up",
        answered_at=T0 + timedelta(seconds=15),
        billsec=60,
        billed=True,
        cost=Decimal("0.25"),
        hangup_cause="NORMAL_CLEARING",
        hangup_by="send_bye",
        created_at=T0 + timedelta(seconds=1),
    )
    for state in (State.CALLING_SOURCE, State.CALLING_DESTINATION, State.BRIDGED):
        requests.advance(request.id, state)
    requests.advance(request.id, State.COMPLETED)
    snap = status.snapshot(request.id)
    assert snap["state"] == "completed" and not snap["live"] and snap["final"]
    assert snap["duration_seconds"] == 60
    assert snap["cost"] == "0.3500"
    legs = by_role(snap)
    assert legs["source"]["hangup_by"] == "the source phone"
    assert legs["destination"]["hangup_by"] == "the service"
    assert "source 4930111111: hung up by the source phone" in snap["summary"]
    assert "cost 0.3500 EUR" in snap["summary"]


def test_an_answered_leg_of_a_connected_request_shows_bridged(account: Account) -> None:
    request = new_request(account)
    leg(request.id, "a", state="bridged", answered_at=T0)
    leg(request.id, "b", state="answered", answered_at=T0)  # no CHANNEL_BRIDGE for leg B
    for state in (State.CALLING_SOURCE, State.CALLING_DESTINATION):
        requests.advance(request.id, state)
    assert by_role(status.snapshot(request.id))["destination"]["status"] == "answered"
    requests.advance(request.id, State.BRIDGED)
    assert by_role(status.snapshot(request.id))["destination"]["status"] == "bridged"


def test_a_connected_call_counts_from_the_later_answer(account: Account) -> None:
    request = new_request(account, "simultaneous")
    now = utcnow()
    leg(request.id, "a", state="bridged", answered_at=now - timedelta(seconds=30))
    leg(request.id, "b", state="bridged", answered_at=now - timedelta(seconds=12))
    snap = status.snapshot(request.id)
    assert snap["bridged_at"] == status.iso(now - timedelta(seconds=12))
    assert 11 <= snap["duration_seconds"] <= 14


def test_an_ended_request_without_a_destination_leg_says_it_was_not_called(
    account: Account,
) -> None:
    request = new_request(account)
    leg(request.id, "a", hangup_cause="NO_ANSWER", billed=True, billsec=0, cost=0)
    requests.advance(request.id, State.FAILED, failure_cause="NO_ANSWER")
    snap = status.snapshot(request.id)
    assert by_role(snap)["destination"]["status"] == "not_called"
    assert snap["failure_words"] == "no answer"


def test_a_billing_refusal_is_said_in_words(account: Account) -> None:
    request = new_request(account)
    requests.advance(request.id, State.FAILED, failure_cause="balance_too_low")
    assert status.snapshot(request.id)["failure_words"] == "balance too low"


def test_there_is_no_snapshot_of_a_request_that_does_not_exist(db: Database) -> None:
    assert status.snapshot(424242) is None


def test_every_subscriber_of_a_request_hears_of_its_changes_and_only_of_them() -> None:
    hub = StatusHub()
    with hub.subscribe(7) as first, hub.subscribe(7) as second, hub.subscribe(8) as other:
        hub.publish(7)
        assert first.get_nowait() == 7 and second.get_nowait() == 7
        assert other.empty()
        assert hub.subscriber_count(7) == 2
    assert hub.subscriber_count(7) == 0
    hub.publish(7)  # nobody listens: nothing to do, nothing kept
