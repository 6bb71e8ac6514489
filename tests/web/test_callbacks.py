"""Starting and cancelling callbacks: abuse protection in front of the dialer, real calls behind.

The portal is the one the controller serves, its dialer connected to the simulator's phones
(`web_helpers.PHONES`): a callback that is accepted really rings the phones, and a refused one
rings nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import gevent
import pytest
from flask.testing import FlaskClient
from web_helpers import (
    ALICE_PHONE,
    BOB_PHONE,
    BUSY,
    FRIEND,
    PHONES,
    SILENT,
    User,
    WebPlatform,
    csrf_from,
    form_token_from,
    is_live,
    wait_until_ended,
    web_settings,
)

from esl_callback.callback import requests, status
from esl_callback.callback.dialer import Dialer
from esl_callback.db import Database
from esl_callback.models import CallbackRequest
from esl_callback.switch.router import EventRouter
from esl_callback.web import create_app

CALL = {"source": ALICE_PHONE, "destination": "+49 40 2222-222", "mode": "source_first"}
ROOMY_PHONE = "4930555555"


def call(client: FlaskClient, user: User, **changes: str):
    """Ask for a callback through the API (alice's phone to FRIEND unless changed)."""
    return client.post("/api/v1/requests", json={**CALL, **changes}, headers=user.auth)


def nothing_was_called(platform: WebPlatform) -> bool:
    """No request was stored and the switch has no call up."""
    return CallbackRequest.select().count() == 0 and platform.switch.channels() == []


def test_a_callback_is_started_with_its_numbers_normalised_and_really_called(
    client: FlaskClient, alice: User, platform: WebPlatform
) -> None:
    response = call(client, alice, mode="simultaneous")
    assert response.status_code == 201
    snap = response.json
    assert (snap["source"], snap["destination"], snap["mode"]) == (
        ALICE_PHONE,
        FRIEND,
        "simultaneous",
    )
    assert snap["live"]
    stored = CallbackRequest.get_by_id(snap["id"])
    assert (stored.trigger, stored.account_id) == ("web", alice.account.id)
    ended = wait_until_ended(snap["id"])
    assert ended["state"] == "completed"
    assert platform.switch.wait_for_hangup(ALICE_PHONE) == "NORMAL_CLEARING"
    assert platform.switch.wait_for_hangup(FRIEND) == "NORMAL_CLEARING"


def test_the_source_defaults_to_the_accounts_callback_number(
    client: FlaskClient, alice: User
) -> None:
    response = client.post(
        "/api/v1/requests", json={"destination": "040 2222222"}, headers=alice.auth
    )
    assert response.status_code == 201
    assert response.json["source"] == ALICE_PHONE
    assert response.json["destination"] == "49402222222"  # national number, country code 49
    assert response.json["mode"] == "source_first"


def test_the_hyphenated_mode_name_is_accepted(client: FlaskClient, alice: User) -> None:
    assert call(client, alice, mode="source-first").json["mode"] == "source_first"


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
        ({"destination": ALICE_PHONE}, "destination", "destination: must differ from the source"),
        (
            {"source": "abc"},
            "source",
            "source: only digits 0-9 are allowed, found 'a' in 'abc'",
        ),
        ({"mode": "both"}, "mode", "mode must be source_first or simultaneous"),
    ],
)
def test_bad_input_gets_a_clear_message_naming_the_field_and_rings_nothing(
    client: FlaskClient, alice: User, platform: WebPlatform, changes, field, message
) -> None:
    response = call(client, alice, **changes)
    assert response.status_code == 422
    assert response.json["error"] == {"code": "invalid", "message": message, "field": field}
    assert nothing_was_called(platform)


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
    client: FlaskClient, alice: User, bob: User, platform: WebPlatform
) -> None:
    response = call(client, alice, source=BOB_PHONE)
    assert response.status_code == 403
    assert response.json["error"]["message"] == (
        f"source: {BOB_PHONE} is not one of your numbers; add it under Settings first"
    )
    assert nothing_was_called(platform)


def test_a_trusted_account_may_use_any_source(
    client: FlaskClient, make_user: Callable[..., User]
) -> None:
    trusted = make_user("trusted", number="4930333333", allow_any_source=True)
    assert call(client, trusted, source=BOB_PHONE).status_code == 201


def test_the_operator_may_allow_any_source_for_everyone(
    platform_with: Callable[..., WebPlatform], alice: User, bob: User
) -> None:
    client = platform_with(callback={"source_must_be_own_number": False}).client()
    started = call(client, alice, source=BOB_PHONE, destination=BUSY)
    assert started.status_code == 201
    assert wait_until_ended(started.json["id"])["legs"][0]["number"] == BOB_PHONE


def test_a_disabled_account_cannot_place_calls(
    client: FlaskClient, make_user: Callable[..., User]
) -> None:
    disabled = make_user("dave", number="4930444444", status="disabled")
    response = call(client, disabled, source="4930444444")
    assert response.status_code == 403
    assert response.json["error"]["message"] == "account dave is disabled; calls cannot be placed"


def test_requests_per_minute_are_limited_per_account_even_once_the_calls_ended(
    platform_with: Callable[..., WebPlatform], alice: User, bob: User
) -> None:
    client = platform_with(callback={"requests_per_minute": 2, "max_concurrent_calls": 10}).client()
    for _ in range(2):
        wait_until_ended(call(client, alice, destination=BUSY).json["id"])
    refused = call(client, alice, destination=BUSY)
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "60"
    assert "at most 2 callbacks a minute" in refused.json["error"]["message"]
    assert call(client, bob, source=BOB_PHONE, destination=BUSY).status_code == 201


def test_concurrent_calls_are_limited_by_the_setting_and_the_account(
    platform_with: Callable[..., WebPlatform], alice: User, make_user: Callable[..., User]
) -> None:
    platform = platform_with(
        {**PHONES, ROOMY_PHONE: {"answer_after": 2}},
        callback={"max_concurrent_calls": 1, "requests_per_minute": 50},
    )
    client = platform.client()
    ringing = call(client, alice, destination=SILENT).json["id"]
    refused = call(client, alice, destination=SILENT)
    assert refused.status_code == 429
    assert "1 of your calls are in progress and the limit is 1" in refused.json["error"]["message"]
    roomy = make_user("roomy", number=ROOMY_PHONE, balance="1000", max_concurrent_calls=3)
    calls = [call(client, roomy, source=ROOMY_PHONE, destination=SILENT) for _ in range(4)]
    assert [response.status_code for response in calls] == [201, 201, 201, 429]
    assert all(is_live(response.json["id"]) for response in calls[:3])
    assert is_live(ringing)


def test_without_a_dialer_calls_are_unavailable_but_the_rest_works(
    web_db: Database, alice: User
) -> None:
    client = create_app(web_settings(), web_db, None).test_client()
    response = call(client, alice)
    assert response.status_code == 503
    assert "without a connection to the telephone switch" in response.json["error"]["message"]
    assert client.get("/api/v1/requests", headers=alice.auth).status_code == 200


def test_with_no_switch_connected_the_real_dialer_cannot_start_calls(
    web_db: Database, alice: User
) -> None:
    settings = web_settings()
    dialer = Dialer(web_db, settings, nodes=[], router=EventRouter())
    client = create_app(settings, web_db, dialer).test_client()
    response = call(client, alice)
    assert response.status_code == 503
    assert "no FreeSWITCH node is connected" in response.json["error"]["message"]
    assert dialer.listeners  # the portal listens to the dialer's changes


def test_the_call_page_starts_a_callback_and_shows_its_status(
    client: FlaskClient, logged_in: str
) -> None:
    form = {"source": ALICE_PHONE, "destination": "040 2222222", "csrf_token": logged_in}
    response = client.post(
        "/call", data={**form, "form_token": form_token_from(client.get("/call").text)}
    )
    assert response.status_code == 302
    request_id = CallbackRequest.get(CallbackRequest.destination == FRIEND).id
    assert response.headers["Location"] == f"/requests/{request_id}"
    page = client.get(response.headers["Location"])
    assert re.search(
        r"Getting ready to call you|We&#39;re calling you|Your phone is ringing|Calling \+49",
        page.text,
    )
    assert f'data-events="/requests/{request_id}/live"' in page.text
    assert wait_until_ended(request_id)["state"] == "completed"
    assert "Your call with +49 40 2222222 ended" in client.get(response.headers["Location"]).text


def test_the_call_page_shows_errors_next_to_the_field(client: FlaskClient, logged_in: str) -> None:
    form = {
        "destination": "12x",
        "csrf_token": logged_in,
        "form_token": form_token_from(client.get("/call").text),
    }
    response = client.post("/call", data=form)
    assert response.status_code == 422
    assert 'id="destination-error"' in response.text
    assert "only digits 0-9 are allowed" in response.text
    assert 'aria-invalid="true" aria-describedby="destination-error"' in response.text


def test_the_call_page_takes_the_destination_from_a_link(
    client: FlaskClient, logged_in: str
) -> None:
    page = client.get("/call?to=4940222222")
    assert 'name="destination" type="tel" value="4940222222"' in page.text


def test_another_accounts_request_is_not_found_and_stays_untouched(
    client: FlaskClient, alice: User, bob: User, platform: WebPlatform
) -> None:
    theirs = call(client, bob, source=BOB_PHONE, destination=SILENT).json["id"]
    for method, path in (
        ("get", f"/api/v1/requests/{theirs}"),
        ("get", f"/api/v1/requests/{theirs}/events"),
        ("post", f"/api/v1/requests/{theirs}/cancel"),
    ):
        response = getattr(client, method)(path, headers=alice.auth)
        assert response.status_code == 404
        assert response.json["error"]["message"] == f"no callback request {theirs}"
    assert is_live(theirs)
    assert platform.switch.hangup_cause(BOB_PHONE) is None


def test_another_accounts_request_page_is_not_found(
    client: FlaskClient, logged_in: str, bob: User
) -> None:
    theirs = call(client, bob, source=BOB_PHONE, destination=SILENT).json["id"]
    assert client.get(f"/requests/{theirs}").status_code == 404
    assert client.get(f"/requests/{theirs}/live").status_code == 404
    cancel = client.post(f"/requests/{theirs}/cancel", data={"csrf_token": logged_in})
    assert cancel.status_code == 404
    assert is_live(theirs)


def test_cancel_hangs_up_both_legs(client: FlaskClient, alice: User, platform: WebPlatform) -> None:
    request_id = call(client, alice, destination=SILENT).json["id"]
    platform.switch.wait_for_ringing(SILENT)
    response = client.post(f"/api/v1/requests/{request_id}/cancel", headers=alice.auth)
    assert response.status_code == 200
    assert response.json["id"] == request_id
    ended = wait_until_ended(request_id)
    assert ended["state"] == "cancelled"
    assert ended["failure_words"] == "cancelled by you"
    assert ended["failure_detail"] == "cancelled by web user alice"
    assert [leg["hangup_by"] for leg in ended["legs"]] == ["the service"] * 2
    assert platform.switch.wait_for_hangup(ALICE_PHONE) == "NORMAL_CLEARING"
    assert platform.switch.wait_for_hangup(SILENT) == "NORMAL_CLEARING"


def test_cancelling_a_connected_call_hangs_it_up_as_completed_and_billed(
    client: FlaskClient, alice: User, platform: WebPlatform
) -> None:
    request_id = call(client, alice, destination=BOB_PHONE).json["id"]
    with gevent.Timeout(10, AssertionError("the call did not connect")):
        while status.snapshot(request_id)["state"] != "bridged":
            gevent.sleep(0.05)
    response = client.post(f"/api/v1/requests/{request_id}/cancel", headers=alice.auth)
    assert response.status_code == 200
    ended = wait_until_ended(request_id)
    assert (ended["state"], ended["failure_words"]) == ("completed", None)
    assert [leg["billed"] for leg in ended["legs"]] == [True, True]
    assert platform.switch.wait_for_hangup(BOB_PHONE) == "NORMAL_CLEARING"
    assert not is_live(request_id)


def test_a_simultaneous_callback_to_a_busy_destination_says_the_destination_was_busy(
    client: FlaskClient, alice: User
) -> None:
    request_id = call(client, alice, destination=BUSY, mode="simultaneous").json["id"]
    ended = wait_until_ended(request_id)
    assert (ended["state"], ended["failure_cause"]) == ("failed", "USER_BUSY")
    assert ended["failure_detail"] == "destination: busy"


def test_an_ended_request_cannot_be_cancelled(client: FlaskClient, alice: User) -> None:
    request_id = call(client, alice, destination=BUSY).json["id"]
    assert wait_until_ended(request_id)["state"] == "failed"
    response = client.post(f"/api/v1/requests/{request_id}/cancel", headers=alice.auth)
    assert response.status_code == 409
    assert response.json["error"]["message"] == f"callback {request_id} has already ended (failed)"


def test_a_request_of_another_process_cannot_be_cancelled_here(
    client: FlaskClient, alice: User
) -> None:
    other = requests.create(trigger="web", method="web", account=alice.account, source=ALICE_PHONE)
    response = client.post(f"/api/v1/requests/{other.id}/cancel", headers=alice.auth)
    assert response.status_code == 409
    assert "not being handled by this server" in response.json["error"]["message"]


def test_the_cancel_button_posts_back_to_the_status_page_and_hangs_up(
    client: FlaskClient, logged_in: str, alice: User, platform: WebPlatform
) -> None:
    request_id = call(client, alice, destination=SILENT).json["id"]
    platform.switch.wait_for_ringing(SILENT)
    page = client.get(f"/requests/{request_id}")
    assert "Cancel the call" in page.text
    response = client.post(
        f"/requests/{request_id}/cancel", data={"csrf_token": csrf_from(page.text)}
    )
    assert response.headers["Location"] == f"/requests/{request_id}"
    assert wait_until_ended(request_id)["state"] == "cancelled"
    assert "Cancel the call" not in client.get(f"/requests/{request_id}").text
    assert platform.switch.wait_for_hangup(ALICE_PHONE) == "NORMAL_CLEARING"
    assert platform.switch.wait_for_hangup(SILENT) == "NORMAL_CLEARING"
