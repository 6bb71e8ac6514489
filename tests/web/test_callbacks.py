"""Starting, watching and cancelling callbacks: abuse protection, live status by SSE."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient
from web_helpers import EventReader, RecordingDialer, User, csrf_from, web_settings

from esl_callback.callback import requests
from esl_callback.callback.dialer import Dialer
from esl_callback.callback.requests import State
from esl_callback.db import Database, utcnow
from esl_callback.models import CallbackRequest, Leg
from esl_callback.switch.router import EventRouter
from esl_callback.web import create_app

CALL = {"source": "4930111111", "destination": "+49 40 2222-222", "mode": "source_first"}


def start(client: FlaskClient, user: User, **changes: str):
    return client.post("/api/v1/requests", json={**CALL, **changes}, headers=user.auth)


def test_a_callback_is_started_with_its_numbers_normalised(
    client: FlaskClient, alice: User, dialer: RecordingDialer
) -> None:
    response = start(client, alice, mode="simultaneous")
    assert response.status_code == 201
    snap = response.json
    assert (snap["source"], snap["destination"], snap["mode"]) == (
        "4930111111",
        "49402222222",
        "simultaneous",
    )
    assert snap["state"] == "queued" and snap["live"]
    assert dialer.started == [snap["id"]]
    stored = CallbackRequest.get_by_id(snap["id"])
    assert (stored.trigger, stored.account_id) == ("web", alice.account.id)


def test_the_source_defaults_to_the_accounts_callback_number(
    client: FlaskClient, alice: User
) -> None:
    response = client.post(
        "/api/v1/requests", json={"destination": "040 2222222"}, headers=alice.auth
    )
    assert response.status_code == 201
    assert response.json["source"] == "4930111111"
    assert response.json["destination"] == "49402222222"  # national number, country code 49
    assert response.json["mode"] == "source_first"


def test_the_hyphenated_mode_name_is_accepted(client: FlaskClient, alice: User) -> None:
    assert start(client, alice, mode="source-first").json["mode"] == "source_first"


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        (
            {"destination": "030 12x4567"},
            "destination",
            "destination: only digits 0-9 are allowed, found 'x' in '030 12x4567'",
        ),
        ({"destination": ""}, "destination", "destination: enter a phone number"),
        ({"destination": "12"}, "destination", "destination: 12 is too short (at least 7 digits)"),
        (
            {"destination": "+4930123456789012"},
            "destination",
            "destination: 4930123456789012 is too long (at most 15 digits)",
        ),
        ({"destination": "4930111111"}, "destination", "destination: must differ from the source"),
        (
            {"source": "abc"},
            "source",
            "source: only digits 0-9 are allowed, found 'a' in 'abc'",
        ),
        ({"mode": "both"}, "mode", "mode must be source_first or simultaneous"),
    ],
)
def test_bad_input_gets_a_clear_message_naming_the_field(
    client: FlaskClient, alice: User, dialer: RecordingDialer, changes, field, message
) -> None:
    response = start(client, alice, **changes)
    assert response.status_code == 422
    assert response.json["error"] == {"code": "invalid", "message": message, "field": field}
    assert dialer.started == []


def test_a_body_that_is_not_a_json_object_is_refused(client: FlaskClient, alice: User) -> None:
    response = client.post("/api/v1/requests", json=["4940222222"], headers=alice.auth)
    assert response.status_code == 422
    assert "JSON object" in response.json["error"]["message"]


def test_an_account_without_a_default_number_must_name_the_source(
    client: FlaskClient, make_user: Callable[..., User]
) -> None:
    carol = make_user("carol", number=None)
    response = client.post(
        "/api/v1/requests", json={"destination": "4940222222"}, headers=carol.auth
    )
    assert response.status_code == 422
    assert response.json["error"]["field"] == "source"


def test_the_source_must_be_one_of_the_accounts_numbers(
    client: FlaskClient, alice: User, bob: User, dialer: RecordingDialer
) -> None:
    response = start(client, alice, source="4930222222")  # bob's number
    assert response.status_code == 403
    assert response.json["error"]["message"] == (
        "source: 4930222222 is not one of your numbers; add it under Settings first"
    )
    assert dialer.started == []


def test_a_trusted_account_may_use_any_source(
    client: FlaskClient, make_user: Callable[..., User]
) -> None:
    trusted = make_user("trusted", number="4930333333", allow_any_source=True)
    assert start(client, trusted, source="4989777777").status_code == 201


def test_the_operator_may_allow_any_source_for_everyone(
    web_db: Database, alice: User, dialer: RecordingDialer
) -> None:
    settings = web_settings(callback={"source_must_be_own_number": False})
    client = create_app(settings, web_db, dialer).test_client()
    assert start(client, alice, source="4989777777").status_code == 201


def test_a_disabled_account_cannot_place_calls(
    client: FlaskClient, make_user: Callable[..., User]
) -> None:
    disabled = make_user("dave", number="4930444444", status="disabled")
    response = start(client, disabled, source="4930444444")
    assert response.status_code == 403
    assert response.json["error"]["message"] == "account dave is disabled; calls cannot be placed"


def test_requests_per_minute_are_limited_per_account(
    web_db: Database, alice: User, bob: User, dialer: RecordingDialer
) -> None:
    settings = web_settings(callback={"requests_per_minute": 2, "max_concurrent_calls": 10})
    client = create_app(settings, web_db, dialer).test_client()
    for _ in range(2):
        request_id = start(client, alice).json["id"]
        requests.finish(request_id, State.FAILED)
    refused = start(client, alice)
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "60"
    assert "at most 2 callbacks a minute" in refused.json["error"]["message"]
    assert start(client, bob, source="4930222222").status_code == 201


def test_concurrent_calls_are_limited_by_the_setting_and_the_account(
    web_db: Database, alice: User, make_user: Callable[..., User], dialer: RecordingDialer
) -> None:
    settings = web_settings(callback={"max_concurrent_calls": 1, "requests_per_minute": 50})
    client = create_app(settings, web_db, dialer).test_client()
    assert start(client, alice).status_code == 201
    refused = start(client, alice)
    assert refused.status_code == 429
    assert "1 of your calls are in progress and the limit is 1" in refused.json["error"]["message"]
    roomy = make_user("roomy", number="4930555555", max_concurrent_calls=3)
    for _ in range(3):
        assert start(client, roomy, source="4930555555").status_code == 201
    assert start(client, roomy, source="4930555555").status_code == 429


def test_without_a_dialer_calls_are_unavailable_but_the_rest_works(
    web_db: Database, alice: User
) -> None:
    client = create_app(web_settings(), web_db, None).test_client()
    response = start(client, alice)
    assert response.status_code == 503
    assert "without a connection to the telephone switch" in response.json["error"]["message"]
    assert client.get("/api/v1/requests", headers=alice.auth).status_code == 200


def test_with_no_switch_connected_the_real_dialer_cannot_start_calls(
    web_db: Database, alice: User
) -> None:
    settings = web_settings()
    dialer = Dialer(web_db, settings, nodes=[], router=EventRouter())
    client = create_app(settings, web_db, dialer).test_client()
    response = start(client, alice)
    assert response.status_code == 503
    assert "no FreeSWITCH node is connected" in response.json["error"]["message"]
    assert dialer.listeners  # the portal listens to the dialer's changes


def test_the_call_page_starts_a_callback_and_shows_its_status(
    client: FlaskClient, logged_in: str, dialer: RecordingDialer
) -> None:
    response = client.post(
        "/call",
        data={"source": "4930111111", "destination": "040 2222222", "csrf_token": logged_in},
    )
    assert response.status_code == 302
    request_id = dialer.started[0]
    assert response.headers["Location"] == f"/requests/{request_id}"
    page = client.get(response.headers["Location"])
    assert "Waiting to call" in page.text
    assert f'data-events="/requests/{request_id}/live"' in page.text


def test_the_call_page_shows_errors_next_to_the_field(client: FlaskClient, logged_in: str) -> None:
    response = client.post("/call", data={"destination": "12x", "csrf_token": logged_in})
    assert response.status_code == 422
    assert 'id="destination-error"' in response.text
    assert "only digits 0-9 are allowed" in response.text
    assert 'aria-invalid="true" aria-describedby="destination-error"' in response.text


def test_the_call_page_takes_the_destination_from_a_link(
    client: FlaskClient, logged_in: str
) -> None:
    page = client.get("/call?to=4940222222")
    assert 'name="destination" type="tel" value="4940222222"' in page.text


def test_another_accounts_request_is_not_found(
    client: FlaskClient, alice: User, bob: User, dialer: RecordingDialer
) -> None:
    theirs = start(client, bob, source="4930222222").json["id"]
    for method, path in (
        ("get", f"/api/v1/requests/{theirs}"),
        ("get", f"/api/v1/requests/{theirs}/events"),
        ("post", f"/api/v1/requests/{theirs}/cancel"),
    ):
        response = getattr(client, method)(path, headers=alice.auth)
        assert response.status_code == 404
        assert response.json["error"]["message"] == f"no callback request {theirs}"
    assert dialer.cancelled == []


def test_another_accounts_request_page_is_not_found(
    client: FlaskClient, logged_in: str, bob: User
) -> None:
    theirs = start(client, bob, source="4930222222").json["id"]
    assert client.get(f"/requests/{theirs}").status_code == 404
    assert client.get(f"/requests/{theirs}/live").status_code == 404
    cancel = client.post(f"/requests/{theirs}/cancel", data={"csrf_token": logged_in})
    assert cancel.status_code == 404


def test_cancel_asks_the_dialer_to_hang_up(
    client: FlaskClient, alice: User, dialer: RecordingDialer
) -> None:
    request_id = start(client, alice).json["id"]
    response = client.post(f"/api/v1/requests/{request_id}/cancel", headers=alice.auth)
    assert response.status_code == 200
    assert response.json["state"] == "cancelled"
    assert response.json["failure_words"] == "cancelled by you"
    assert dialer.cancelled == [(request_id, "cancelled by web user alice")]


def test_an_ended_request_cannot_be_cancelled(
    client: FlaskClient, alice: User, dialer: RecordingDialer
) -> None:
    request_id = start(client, alice).json["id"]
    requests.finish(request_id, State.FAILED, failure_cause="NO_ANSWER")
    response = client.post(f"/api/v1/requests/{request_id}/cancel", headers=alice.auth)
    assert response.status_code == 409
    assert dialer.cancelled == []


def test_a_request_of_another_process_cannot_be_cancelled_here(
    client: FlaskClient, alice: User
) -> None:
    other = requests.create(trigger="web", method="web", account=alice.account, source="4930111111")
    response = client.post(f"/api/v1/requests/{other.id}/cancel", headers=alice.auth)
    assert response.status_code == 409
    assert "not being handled by this server" in response.json["error"]["message"]


def test_the_cancel_button_posts_back_to_the_status_page(
    client: FlaskClient, logged_in: str, alice: User, dialer: RecordingDialer
) -> None:
    request_id = start(client, alice).json["id"]
    page = client.get(f"/requests/{request_id}")
    assert "Cancel the call" in page.text
    response = client.post(
        f"/requests/{request_id}/cancel", data={"csrf_token": csrf_from(page.text)}
    )
    assert response.headers["Location"] == f"/requests/{request_id}"
    assert dialer.cancelled[0][0] == request_id
    assert "Cancel the call" not in client.get(f"/requests/{request_id}").text


# -- live status ----------------------------------------------------------------------------


def play_switch(request_id: int, dialer: RecordingDialer, step: str) -> None:
    """Do to the database what the dialer does at `step`, then notify its listeners."""
    now = utcnow()
    if step == "calling source":
        requests.advance(request_id, State.CALLING_SOURCE)
        Leg.create(request=request_id, leg="a", uuid=f"{request_id}-a", number="4930111111")
    elif step == "source ringing":
        Leg.update(state="ringing").where(Leg.uuid == f"{request_id}-a").execute()
    elif step == "source answered":
        Leg.update(state="answered", answered_at=now).where(Leg.uuid == f"{request_id}-a").execute()
        requests.advance(request_id, State.CALLING_DESTINATION)
        Leg.create(request=request_id, leg="b", uuid=f"{request_id}-b", number="49402222222")
    elif step == "destination busy":
        Leg.update(
            state="hung_up", hangup_cause="USER_BUSY", billsec=0, billed=True, cost=0, ended_at=now
        ).where(Leg.uuid == f"{request_id}-b").execute()
    elif step == "finished":
        Leg.update(
            state="hung_up", hangup_cause="NORMAL_CLEARING", billsec=5, billed=True, cost="0.05"
        ).where(Leg.uuid == f"{request_id}-a").execute()
        requests.finish(request_id, State.FAILED, failure_cause="USER_BUSY")
    dialer.notify(request_id)


def test_the_event_stream_pushes_each_change_until_the_request_ends(
    client: FlaskClient, alice: User, dialer: RecordingDialer
) -> None:
    request_id = start(client, alice).json["id"]
    stream = client.get(f"/api/v1/requests/{request_id}/events", headers=alice.auth, buffered=False)
    assert stream.mimetype == "text/event-stream"
    events = EventReader(stream)
    name, snap = events.next()
    assert (name, snap["state"]) == ("status", "queued")
    seen = []
    for step in ("calling source", "source ringing", "source answered", "destination busy"):
        play_switch(request_id, dialer, step)
        _, snap = events.next()
        seen.append([(leg["role"], leg["status"]) for leg in snap["legs"]])
    assert seen == [
        [("source", "calling"), ("destination", "queued")],
        [("source", "ringing"), ("destination", "queued")],
        [("source", "answered"), ("destination", "calling")],
        [("source", "answered"), ("destination", "busy")],
    ]
    play_switch(request_id, dialer, "finished")
    _, snap = events.next()
    assert snap["state"] == "failed" and snap["final"]
    assert snap["cost"] == "0.0500" and snap["balance"] == "10.0000"
    assert events.next() == ("end", {"id": request_id})
    events.close()


def test_two_tabs_on_the_same_request_see_the_same(
    app: Flask, alice: User, dialer: RecordingDialer
) -> None:
    tabs = [app.test_client() for _ in range(2)]
    request_id = start(tabs[0], alice).json["id"]
    readers = [
        EventReader(
            tab.get(f"/api/v1/requests/{request_id}/events", headers=alice.auth, buffered=False)
        )
        for tab in tabs
    ]
    firsts = [reader.next()[1]["state"] for reader in readers]
    assert firsts == ["queued", "queued"]
    assert app.extensions["esl_callback"].hub.subscriber_count(request_id) == 2
    play_switch(request_id, dialer, "calling source")
    after = [reader.next()[1] for reader in readers]
    assert [s["legs"][0]["status"] for s in after] == ["calling", "calling"]
    assert after[0]["legs"] == after[1]["legs"]
    for reader in readers:
        reader.close()
    assert app.extensions["esl_callback"].hub.subscriber_count(request_id) == 0


def test_the_status_page_stream_carries_the_rendered_status_and_balance(
    client: FlaskClient, logged_in: str, alice: User, dialer: RecordingDialer
) -> None:
    request_id = start(client, alice).json["id"]
    events = EventReader(client.get(f"/requests/{request_id}/live", buffered=False))
    name, data = events.next()
    assert name == "status"
    assert data["status"]["id"] == request_id
    assert "Waiting to call" in data["html"] and "Cancel the call" in data["html"]
    assert data["balance"] == "10.00 EUR"
    play_switch(request_id, dialer, "calling source")
    assert 'data-status="calling"' in events.next()[1]["html"]
    events.close()


def test_several_changes_at_once_give_one_fresh_snapshot(
    client: FlaskClient, alice: User, dialer: RecordingDialer
) -> None:
    request_id = start(client, alice).json["id"]
    events = EventReader(
        client.get(f"/api/v1/requests/{request_id}/events", headers=alice.auth, buffered=False)
    )
    events.next()
    play_switch(request_id, dialer, "calling source")
    play_switch(request_id, dialer, "source ringing")
    _, snap = events.next()
    assert snap["legs"][0]["status"] == "ringing"
    events.close()
