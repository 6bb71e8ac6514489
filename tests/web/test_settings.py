"""Settings: the default callback number, and adding numbers only after proving ownership.

Ownership is proven by a real call: the platform calls the number on the simulator, and the
person at that phone (the test, through `web_helpers.Switch.key`) keys the code the portal shows.
"""

from __future__ import annotations

import re
from datetime import timedelta

from flask.testing import FlaskClient
from web_helpers import (
    BOB_PHONE,
    MISSING,
    NEW_PHONE,
    User,
    WebPlatform,
    wait_until_ended,
    web_settings,
)

from esl_callback.db import Database, utcnow
from esl_callback.models import Account, CallbackRequest, CallerId, NumberVerification
from esl_callback.web import create_app, verification

CODE_ON_PAGE = re.compile(r'<p class="code" aria-label="Code ([0-9 ]+)">(\d+)</p>')


def verify(client: FlaskClient, user: User, number: str):
    return client.post("/api/v1/numbers/verifications", json={"number": number}, headers=user.auth)


def answer_and_key(platform: WebPlatform, number: str, digits: str) -> None:
    """The person at phone `number` answers, hears the prompt and keys `digits` and #."""
    platform.switch.wait_for_prompt(number)
    platform.switch.key(number, f"{digits}#")


def nothing_was_called(platform: WebPlatform) -> bool:
    return CallbackRequest.select().count() == 0 and platform.switch.channels() == []


def own_numbers(account: Account) -> list[str]:
    return [c.number for c in CallerId.select().where(CallerId.account == account.id)]


def test_the_default_number_is_chosen_among_the_accounts_numbers(
    client: FlaskClient, alice: User, bob: User
) -> None:
    CallerId.create(account=alice.account, number="4930999999")
    changed = client.put(
        "/api/v1/account/default-number", json={"number": "030 999999"}, headers=alice.auth
    )
    assert changed.status_code == 200
    assert changed.json["default_callback_number"] == "4930999999"
    refused = client.put(
        "/api/v1/account/default-number", json={"number": "4930222222"}, headers=alice.auth
    )
    assert refused.status_code == 422
    assert "4930222222 is not one of your numbers" in refused.json["error"]["message"]
    assert Account.get_by_id(alice.account.id).default_callback_number == "4930999999"


def test_the_settings_page_writes_the_accounts_numbers_for_reading(
    client: FlaskClient, alice: User, logged_in: str
) -> None:
    CallerId.create(account=alice.account, number="4930999999")

    page = client.get("/settings").text

    assert '<span class="number">+49 30 999999</span>' in page
    assert '<option value="4930999999">+49 30 999999</option>' in page  # sent as stored
    assert ">4930999999<" not in page


def test_a_number_is_removed_but_never_the_default_one(
    client: FlaskClient, alice: User, bob: User
) -> None:
    CallerId.create(account=alice.account, number="4930999999")
    assert client.delete("/api/v1/numbers/4930999999", headers=alice.auth).status_code == 204
    default = client.delete("/api/v1/numbers/4930111111", headers=alice.auth)
    assert default.status_code == 409
    assert "default callback number" in default.json["error"]["message"]
    theirs = client.delete("/api/v1/numbers/4930222222", headers=alice.auth)
    assert theirs.status_code == 404
    assert own_numbers(bob.account) == ["4930222222"]


def test_the_number_is_added_once_its_phone_keys_the_code_shown(
    client: FlaskClient, alice: User, platform: WebPlatform
) -> None:
    started = verify(client, alice, "+49 89 1234567")
    assert started.status_code == 201
    check = started.json
    assert (check["number"], check["status"]) == (NEW_PHONE, "calling")
    assert len(check["code"]) == 6 and check["code"].isdigit()
    assert NEW_PHONE not in own_numbers(alice.account)
    answer_and_key(platform, NEW_PHONE, check["code"])
    assert wait_until_ended(check["request_id"])["state"] == "completed"
    settled = client.get(f"/api/v1/numbers/verifications/{check['id']}", headers=alice.auth).json
    assert (settled["status"], settled["code"]) == ("verified", None)
    added = CallerId.get(CallerId.number == NEW_PHONE)
    assert added.account_id == alice.account.id and added.verified_at is not None
    assert platform.switch.wait_for_hangup(NEW_PHONE) == "NORMAL_CLEARING"


def test_a_wrong_code_adds_nothing_and_says_why(
    client: FlaskClient, alice: User, platform: WebPlatform
) -> None:
    check = verify(client, alice, NEW_PHONE).json
    wrong = "".join(str((int(digit) + 1) % 10) for digit in check["code"])
    answer_and_key(platform, NEW_PHONE, wrong)
    assert wait_until_ended(check["request_id"])["failure_cause"] == "WRONG_CODE"
    settled = client.get(f"/api/v1/numbers/verifications/{check['id']}", headers=alice.auth).json
    assert (settled["status"], settled["failure"]) == ("failed", "the code keyed was wrong")
    assert NEW_PHONE not in own_numbers(alice.account)


def test_a_number_being_called_for_a_check_is_not_called_again_until_that_call_ends(
    client: FlaskClient, alice: User, platform: WebPlatform
) -> None:
    first = verify(client, alice, NEW_PHONE).json
    again = verify(client, alice, NEW_PHONE)
    assert again.status_code == 409
    assert again.json["error"] == {
        "code": "conflict",
        "message": f"{NEW_PHONE} is being called for check {first['id']}: answer that call, "
        "or start again once it has ended.",
        "field": "number",
    }
    assert CallbackRequest.select().count() == 1
    answer_and_key(platform, NEW_PHONE, "0")
    wait_until_ended(first["request_id"])
    assert verify(client, alice, NEW_PHONE).status_code == 201


def test_a_verification_call_that_cannot_reach_the_phone_says_why(
    client: FlaskClient, alice: User
) -> None:
    check = verify(client, alice, MISSING).json
    wait_until_ended(check["request_id"])
    settled = client.get(f"/api/v1/numbers/verifications/{check['id']}", headers=alice.auth).json
    assert (settled["status"], settled["failure"]) == ("failed", "number does not exist")
    assert MISSING not in own_numbers(alice.account)


def test_a_number_already_own_is_not_verified_again(
    client: FlaskClient, alice: User, platform: WebPlatform
) -> None:
    mine = verify(client, alice, alice.account.default_callback_number)
    assert mine.status_code == 409
    assert mine.json["error"]["message"] == "4930111111 is already one of your numbers."
    assert nothing_was_called(platform)


def test_probing_another_accounts_number_is_answered_as_for_a_free_one_and_counted(
    client: FlaskClient, alice: User, bob: User, platform: WebPlatform
) -> None:
    """Nothing tells whether a number is another customer's caller ID: the check starts and
    calls it as any number, and counts towards the hourly limit."""
    CallerId.create(account=bob.account, number="4930999999")
    theirs = verify(client, alice, BOB_PHONE)
    free = verify(client, alice, NEW_PHONE)
    assert theirs.status_code == free.status_code == 201
    assert theirs.json.keys() == free.json.keys()
    assert (theirs.json["status"], theirs.json["failure"]) == ("calling", None)
    assert (free.json["status"], free.json["failure"]) == ("calling", None)
    platform.switch.wait_for_prompt(BOB_PHONE)  # called and asked for the code, like any number
    assert verify(client, alice, "49891111111").status_code == 201
    fourth_theirs = verify(client, alice, "4930999999")
    fourth_free = verify(client, alice, "49892222222")
    assert fourth_theirs.status_code == fourth_free.status_code == 429
    assert fourth_theirs.json == fourth_free.json
    assert fourth_theirs.headers["Retry-After"] == "3600"
    assert sorted(own_numbers(bob.account)) == [BOB_PHONE, "4930999999"]


def test_the_code_keyed_at_another_accounts_number_adds_nothing_and_says_only_that(
    client: FlaskClient, alice: User, bob: User, platform: WebPlatform
) -> None:
    check = verify(client, alice, BOB_PHONE).json
    answer_and_key(platform, BOB_PHONE, check["code"])
    assert wait_until_ended(check["request_id"])["state"] == "completed"
    settled = client.get(f"/api/v1/numbers/verifications/{check['id']}", headers=alice.auth).json
    assert (settled["status"], settled["failure"]) == (
        "failed",
        "This number cannot be added to your account.",
    )
    assert own_numbers(bob.account) == [BOB_PHONE]
    assert BOB_PHONE not in own_numbers(alice.account)


def test_verification_calls_are_limited_per_hour(
    client: FlaskClient, alice: User, platform: WebPlatform
) -> None:
    for number in ("49891111111", "49892222222", "49893333333"):
        assert verify(client, alice, number).status_code == 201
    refused = verify(client, alice, "49894444444")
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "3600"
    assert CallbackRequest.select().where(CallbackRequest.source == "49894444444").count() == 0
    assert "loopback/49894444444-a" not in platform.switch.hangups


def test_a_verification_without_its_call_expires(
    client: FlaskClient, alice: User, web_db: Database
) -> None:

    check = verification.start(alice.account.id, "49891234567")
    NumberVerification.update(expires_at=utcnow() - timedelta(seconds=1)).where(
        NumberVerification.id == check.id
    ).execute()
    settled = client.get(f"/api/v1/numbers/verifications/{check.id}", headers=alice.auth).json
    assert (settled["status"], settled["code"]) == ("expired", None)


def test_another_accounts_verification_is_not_found(
    client: FlaskClient, alice: User, bob: User
) -> None:
    theirs = verify(client, bob, "49891234567").json["id"]
    response = client.get(f"/api/v1/numbers/verifications/{theirs}", headers=alice.auth)
    assert response.status_code == 404


def test_verification_needs_the_dialer(web_db: Database, alice: User) -> None:
    client = create_app(web_settings(), web_db, None).test_client()
    assert verify(client, alice, "49891234567").status_code == 503
    assert NumberVerification.select().count() == 0


def test_a_bad_number_to_verify_gets_a_clear_message(client: FlaskClient, alice: User) -> None:
    response = verify(client, alice, "089-CALLME")
    assert response.status_code == 422
    assert response.json["error"]["message"] == (
        "That number has letters in it: type digits only (spaces, dashes and a leading + are fine)."
    )


def test_the_settings_pages_verify_a_number_and_pick_the_default(
    client: FlaskClient, logged_in: str, platform: WebPlatform
) -> None:
    started = client.post(
        "/settings/numbers", data={"new_number": "089 1234567", "csrf_token": logged_in}
    )
    assert started.status_code == 302
    waiting = client.get(started.headers["Location"])
    shown = CODE_ON_PAGE.search(waiting.text)
    assert shown, "no code on the page"
    spoken, code = shown.groups()
    assert spoken == " ".join(code)
    assert "data-reload-on-end" in waiting.text
    answer_and_key(platform, NEW_PHONE, code)
    check = NumberVerification.get(NumberVerification.number == NEW_PHONE)
    wait_until_ended(check.request_id)
    done = client.get(started.headers["Location"])
    assert f"{NEW_PHONE} is now one of your numbers." in done.text
    chosen = client.post(
        "/settings/default-number", data={"number": NEW_PHONE, "csrf_token": logged_in}
    )
    assert chosen.headers["Location"] == "/settings"
    page = client.get("/settings")
    assert f"Calls will now ring {NEW_PHONE} by default." in page.text
    assert f'<option value="{NEW_PHONE}" selected>' in page.text


def test_the_settings_page_shows_a_refused_number_on_its_field(
    client: FlaskClient, logged_in: str
) -> None:
    response = client.post(
        "/settings/numbers", data={"new_number": "4930111111", "csrf_token": logged_in}
    )
    assert response.status_code == 409
    assert 'id="new_number-error"' in response.text
    assert "already one of your numbers" in response.text


def test_the_settings_page_removes_a_number(
    client: FlaskClient, logged_in: str, alice: User
) -> None:
    CallerId.create(account=alice.account, number="4930999999")
    removed = client.post("/settings/numbers/4930999999/remove", data={"csrf_token": logged_in})
    assert removed.headers["Location"] == "/settings"
    assert "4930999999" not in own_numbers(alice.account)
