"""Live status by Server-Sent Events, driven by real calls to phones that behave as in life.

Each test places a callback through the portal; the controller's dialer calls the simulator's
virtual phones (`web_helpers.PHONES`: one answers and talks, one is busy, one never answers, ...)
and the status stream shows what the switch reported, change by change, until the request has
ended and its legs are billed. Several changes may reach a slow reader as one fresh snapshot, so
the sequences below are checked in order, not one for one.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import gevent
import pytest
from flask import Flask
from flask.testing import FlaskClient
from web_helpers import (
    ALICE_PHONE,
    BUSY,
    EARLY_MEDIA,
    FRIEND,
    MISSING,
    PHONES,
    REJECTS,
    SILENT,
    EventReader,
    User,
    WebPlatform,
    legs_seen,
    seen_in_order,
    wait_until_ended,
)

PER_SECOND = Decimal("0.01")  # 0.60 EUR a minute to German numbers, charged by the second


def call(client: FlaskClient, user: User, destination: str, mode: str = "source_first") -> int:
    response = client.post(
        "/api/v1/requests", json={"destination": destination, "mode": mode}, headers=user.auth
    )
    assert response.status_code == 201, response.json
    return response.json["id"]


def follow(client: FlaskClient, user: User, request_id: int) -> EventReader:
    stream = client.get(f"/api/v1/requests/{request_id}/events", headers=user.auth, buffered=False)
    assert stream.mimetype == "text/event-stream"
    return EventReader(stream)


def watch(client: FlaskClient, user: User, destination: str, mode: str = "source_first"):
    """Place a callback and follow it to the end: (distinct leg states seen, last snapshot)."""
    snapshots = follow(client, user, call(client, user, destination, mode)).until_end()
    return legs_seen(snapshots), snapshots[-1]


def test_a_source_first_call_goes_from_ringing_to_completed_with_its_duration_and_cost(
    client: FlaskClient, alice: User
) -> None:
    seen, last = watch(client, alice, FRIEND)
    seen_in_order(
        seen,
        "source:ringing destination:queued",
        "source:answered destination:ringing",
        "source:bridged destination:bridged",
        "source:hung_up destination:hung_up",
    )
    assert (last["state"], last["final"], last["failure_words"]) == ("completed", True, None)
    source, destination = last["legs"]
    assert destination["billsec"] >= 3  # the friend talks for 3 s
    assert last["duration_seconds"] == destination["billsec"]
    assert Decimal(last["cost"]) == PER_SECOND * (source["billsec"] + destination["billsec"])
    assert Decimal(last["balance"]) == Decimal(10) - Decimal(last["cost"])
    assert [leg["hangup_by"] for leg in last["legs"]] == ["the destination phone"] * 2
    assert f"destination {FRIEND}: hung up by the destination phone" in last["summary"]


def test_the_source_hanging_up_first_ends_the_call_for_both(
    platform_with: Callable[..., WebPlatform], alice: User
) -> None:
    phones = {
        **PHONES,
        ALICE_PHONE: {"answer_after": 2, "hangup_after": 4.5},
        FRIEND: {"answer_after": 2, "hangup_after": 30},  # would talk for half a minute
    }
    seen, last = watch(platform_with(phones).client(), alice, FRIEND)
    seen_in_order(seen, "source:bridged destination:bridged", "source:hung_up destination:hung_up")
    assert last["state"] == "completed"
    assert [leg["hangup_by"] for leg in last["legs"]] == ["the source phone"] * 2
    assert last["duration_seconds"] < 10


def test_a_simultaneous_call_rings_both_phones_at_once(client: FlaskClient, alice: User) -> None:
    seen, last = watch(client, alice, FRIEND, "simultaneous")
    seen_in_order(
        seen,
        "source:(calling|ringing) destination:(calling|ringing)",
        "source:bridged destination:bridged",
        "source:hung_up destination:hung_up",
    )
    assert "source:answered destination:queued" not in seen, "B was called before A answered"
    assert last["state"] == "completed" and last["duration_seconds"] >= 3


@pytest.mark.parametrize(
    ("destination", "status", "words"),
    [
        (BUSY, "busy", "busy"),
        (REJECTS, "busy", "rejected the call"),
        (MISSING, "failed", "number does not exist"),
    ],
)
def test_a_destination_that_cannot_be_reached_says_why_and_the_source_is_hung_up(
    client: FlaskClient, alice: User, destination: str, status: str, words: str
) -> None:
    seen, last = watch(client, alice, destination)
    seen_in_order(
        seen,
        "source:ringing destination:queued",
        f"source:answered destination:{status}",
        f"source:hung_up destination:{status}",
    )
    assert (last["state"], last["failure_words"]) == ("failed", words)
    assert last["legs"][1]["cause_words"] == words
    assert f"destination {destination}: {status}" in last["summary"]
    assert last["legs"][1]["cost"] == "0.0000"  # only the source's answered seconds are paid


def test_a_destination_that_does_not_answer_shows_no_answer(
    platform_with: Callable[..., WebPlatform], alice: User
) -> None:
    client = platform_with(callback={"originate_timeout_seconds": 5}).client()
    seen, last = watch(client, alice, SILENT)
    seen_in_order(seen, "destination:ringing", "source:hung_up destination:no_answer")
    assert (last["state"], last["failure_words"]) == ("failed", "no answer")


def test_a_source_that_does_not_answer_leaves_the_destination_uncalled(
    platform_with: Callable[..., WebPlatform], alice: User
) -> None:
    phones = {**PHONES, ALICE_PHONE: {"no_answer": True}}
    client = platform_with(phones, callback={"originate_timeout_seconds": 5}).client()
    seen, last = watch(client, alice, FRIEND)
    seen_in_order(seen, "source:ringing destination:queued", "source:no_answer")
    assert last["legs"][1]["status"] == "not_called"
    assert (last["state"], last["failure_words"], last["cost"]) == ("failed", "no answer", "0.0000")


def test_early_media_from_the_destination_is_shown_before_it_answers(
    client: FlaskClient, alice: User
) -> None:
    seen, last = watch(client, alice, EARLY_MEDIA)
    seen_in_order(
        seen,
        "source:answered destination:early_media",
        "source:bridged destination:bridged",
    )
    assert last["state"] == "completed"


def test_a_second_subscriber_sees_the_same_changes(app: Flask, alice: User) -> None:
    tabs = [app.test_client() for _ in range(2)]
    request_id = call(tabs[0], alice, FRIEND)
    readers = [follow(tab, alice, request_id) for tab in tabs]
    hub = app.extensions["esl_callback"].hub
    assert [reader.next()[0] for reader in readers] == ["status", "status"]
    assert hub.subscriber_count(request_id) == 2
    seen = [job.get() for job in [gevent.spawn(reader.until_end) for reader in readers]]
    for snapshots in seen:
        seen_in_order(legs_seen(snapshots), "source:bridged", "source:hung_up")
    assert seen[0][-1]["legs"] == seen[1][-1]["legs"]
    assert seen[0][-1]["cost"] == seen[1][-1]["cost"]
    assert hub.subscriber_count(request_id) == 0


def test_the_status_page_stream_carries_the_rendered_status_and_balance(
    client: FlaskClient, logged_in: str, alice: User
) -> None:
    request_id = call(client, alice, BUSY)
    events = EventReader(client.get(f"/requests/{request_id}/live", buffered=False))
    name, first = events.next()
    assert name == "status"
    assert first["status"]["id"] == request_id
    assert "Cancel the call" in first["html"]
    assert first["balance"] == "10.00 EUR"
    rendered = [first, *events.until_end()]
    assert any('data-status="answered"' in data["html"] for data in rendered)
    last = rendered[-1]
    assert "was busy" in last["html"] and "Cancel the call" not in last["html"]
    spent = Decimal(last["status"]["cost"])
    assert spent > 0
    assert last["balance"] == f"{Decimal(10) - spent:.2f} EUR"


def test_changes_while_the_reader_is_away_give_one_fresh_snapshot(
    client: FlaskClient, alice: User
) -> None:
    request_id = call(client, alice, BUSY)
    events = follow(client, alice, request_id)
    assert events.next()[1]["live"]
    wait_until_ended(request_id)  # the whole call happens while nobody reads the stream
    name, snap = events.next()
    assert (name, snap["state"], snap["final"]) == ("status", "failed", True)
    assert events.next() == ("end", {"id": request_id})
    events.close()
