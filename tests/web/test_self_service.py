"""Self-service in Settings: the password (with the current one), a new PIN (with the password),
logging out other sessions, and API tokens listed with their last use and revoked one by one; on
SQLite and PostgreSQL, against the portal the controller serves."""

from __future__ import annotations

import logging
import re
from datetime import timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from web_helpers import PASSWORD, User, login

from esl_callback import accounts
from esl_callback.db import utcnow
from esl_callback.models import Account, ApiToken
from esl_callback.web import auth

NEW_PASSWORD = "a brand new passphrase"
PIN_ON_PAGE = re.compile(r'<code id="new-pin" class="secret">(\d+)</code>')


def second_browser(app: Flask, user: User) -> FlaskClient:
    other = app.test_client()
    login(other, user)
    return other


def logged_out(client: FlaskClient) -> bool:
    page = client.get("/settings")
    return page.status_code == 302 and "/login" in page.headers["Location"]


def test_a_wrong_current_password_changes_nothing_and_is_said_at_the_field(
    client: FlaskClient, alice: User, logged_in: str
) -> None:
    page = client.post(
        "/settings/password",
        data={
            "csrf_token": logged_in,
            "current_password": "not it",
            "new_password": NEW_PASSWORD,
            "new_password_again": NEW_PASSWORD,
        },
    )

    assert page.status_code == 422
    assert 'id="current_password-error">That is not your current password.' in page.text
    field = re.search(r'<input id="current_password"[^>]*>', page.text).group(0)
    assert 'aria-invalid="true"' in field and "autofocus" in field
    assert 'class="error-summary"' in page.text and 'href="#current_password"' in page.text
    assert auth.check_password(auth._password_hash(alice_user_id(alice)), PASSWORD)


def alice_user_id(alice: User) -> int:
    return Account.get_by_id(alice.account.id).users.get().id


def test_a_new_password_typed_twice_differently_is_refused_at_the_second_field(
    client: FlaskClient, logged_in: str
) -> None:
    page = client.post(
        "/settings/password",
        data={
            "csrf_token": logged_in,
            "current_password": PASSWORD,
            "new_password": NEW_PASSWORD,
            "new_password_again": NEW_PASSWORD + "!",
        },
    )

    assert page.status_code == 422
    assert 'id="new_password_again-error">The two new passwords are not the same' in page.text


def test_changing_the_password_ends_the_other_sessions_and_keeps_this_one(
    app: Flask, client: FlaskClient, alice: User, logged_in: str
) -> None:
    other = second_browser(app, alice)

    done = client.post(
        "/settings/password",
        data={
            "csrf_token": logged_in,
            "current_password": PASSWORD,
            "new_password": NEW_PASSWORD,
            "new_password_again": NEW_PASSWORD,
        },
        follow_redirects=True,
    )

    assert done.status_code == 200 and "Your password has been changed." in done.text
    assert logged_out(other)
    assert client.get("/settings").status_code == 200
    alice.password = NEW_PASSWORD
    login(app.test_client(), alice)  # the new password logs in


def test_wrong_current_passwords_count_towards_the_login_lockout(
    client: FlaskClient, alice: User, logged_in: str
) -> None:
    tries = [
        client.post(
            "/settings/pin", data={"csrf_token": logged_in, "pin_password": f"wrong {n}"}
        ).status_code
        for n in range(4)
    ]

    assert tries == [422] * 3 + [429]  # web.login_max_failures in the test settings
    locked = client.post("/settings/pin", data={"csrf_token": logged_in, "pin_password": PASSWORD})
    assert locked.status_code == 429 and "Too many wrong passwords" in locked.text


def test_a_new_pin_is_shown_once_with_the_password_and_only_its_digest_is_kept(
    client: FlaskClient, alice: User, logged_in: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    accounts.update_account(alice.account, pin="4321")
    before = client.get("/settings").text
    assert "Your account has a PIN." in before and "Make a new PIN" in before

    page = client.post("/settings/pin", data={"csrf_token": logged_in, "pin_password": PASSWORD})

    pin = PIN_ON_PAGE.search(page.text).group(1)
    assert len(pin) == 8
    assert accounts.find_account_by_pin(pin).id == alice.account.id
    assert accounts.find_account_by_pin("4321") is None  # the old one no longer works
    assert pin not in (Account.get_by_id(alice.account.id).pin_hash or "")
    assert pin not in client.get("/settings").text  # shown only once
    assert pin not in caplog.text


def test_no_pin_without_the_password(client: FlaskClient, alice: User, logged_in: str) -> None:
    page = client.post("/settings/pin", data={"csrf_token": logged_in, "pin_password": ""})

    assert page.status_code == 422
    assert 'id="pin_password-error">That is not your current password.' in page.text
    assert not PIN_ON_PAGE.search(page.text)
    assert Account.get_by_id(alice.account.id).pin_hash is None


def test_logging_out_other_sessions_keeps_only_this_one(
    app: Flask, client: FlaskClient, alice: User, logged_in: str
) -> None:
    other, third = second_browser(app, alice), second_browser(app, alice)

    done = client.post(
        "/settings/sessions/end-others", data={"csrf_token": logged_in}, follow_redirects=True
    )

    assert "You have been logged out everywhere else" in done.text
    assert logged_out(other) and logged_out(third)
    assert client.get("/settings").status_code == 200
    assert client.get("/api/v1/account", headers=alice.auth).status_code == 200  # apps go on


def test_each_app_has_its_own_token_listed_with_its_last_use_and_revoked_alone(
    client: FlaskClient, alice: User, logged_in: str
) -> None:
    def token_for(label: str) -> dict[str, str]:
        made = client.post(
            "/api/v1/auth/token", json={"username": "alice", "password": PASSWORD, "label": label}
        )
        return {"Authorization": f"Bearer {made.json['token']}"}

    desktop, phone = token_for("Desktop"), token_for("Phone")
    listed = client.get("/settings").text
    assert "<td>Desktop</td>" in listed and "<td>Phone</td>" in listed
    assert listed.count("<td>never</td>") == 3  # and the fixture's token

    assert client.get("/api/v1/account", headers=desktop).status_code == 200
    first_use = ApiToken.get(ApiToken.label == "Desktop").last_used_at
    assert first_use is not None
    assert client.get("/api/v1/account", headers=desktop).status_code == 200
    assert ApiToken.get(ApiToken.label == "Desktop").last_used_at == first_use  # < 1 minute
    ApiToken.update(last_used_at=utcnow() - timedelta(minutes=2)).where(
        ApiToken.label == "Desktop"
    ).execute()
    client.get("/api/v1/account", headers=desktop)
    assert ApiToken.get(ApiToken.label == "Desktop").last_used_at > first_use

    revoked = ApiToken.get(ApiToken.label == "Phone")
    client.post(f"/settings/token/{revoked.id}/revoke", data={"csrf_token": logged_in})
    assert client.get("/api/v1/account", headers=phone).status_code == 401
    assert client.get("/api/v1/account", headers=desktop).status_code == 200
    assert "<td>Phone</td>" not in client.get("/settings").text


def test_another_users_token_cannot_be_revoked(
    client: FlaskClient, alice: User, bob: User, logged_in: str
) -> None:
    theirs = ApiToken.select().join(auth.WebUser).where(auth.WebUser.username == "bob").get()

    refused = client.post(f"/settings/token/{theirs.id}/revoke", data={"csrf_token": logged_in})

    assert refused.status_code == 404
    assert client.get("/api/v1/account", headers=bob.auth).status_code == 200


def test_sessions_from_before_session_keys_keep_their_fingerprint() -> None:
    """A user who never logged out other sessions has no session key: sessions started before
    migration 8 stay logged in; a session key changes the fingerprint."""
    hashed = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA"

    assert auth.fingerprint(hashed, None) == auth.fingerprint(hashed)
    assert auth.fingerprint(hashed, "a key") != auth.fingerprint(hashed)
