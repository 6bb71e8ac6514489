"""Logins, lockout, sessions, CSRF and API tokens."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient
from web_helpers import PASSWORD, User, WebPlatform, csrf_from, login, web_settings

from esl_callback.db import Database
from esl_callback.hashing import hash_password
from esl_callback.models import AuthFailure, PhoneBookEntry, WebUser
from esl_callback.web import auth, create_app

# Every API endpoint but the public ones, with a method and a path that exists.
PROTECTED_API = [
    ("delete", "/api/v1/auth/token"),
    ("post", "/api/v1/sign-in-links"),
    ("get", "/api/v1/account"),
    ("put", "/api/v1/account/default-number"),
    ("delete", "/api/v1/numbers/4930111111"),
    ("post", "/api/v1/numbers/verifications"),
    ("get", "/api/v1/numbers/verifications/1"),
    ("get", "/api/v1/payments"),
    ("get", "/api/v1/quote"),
    ("post", "/api/v1/requests"),
    ("get", "/api/v1/requests"),
    ("get", "/api/v1/requests.csv"),
    ("get", "/api/v1/requests/1"),
    ("get", "/api/v1/requests/1/events"),
    ("post", "/api/v1/requests/1/cancel"),
    ("get", "/api/v1/cdrs/1"),
    ("get", "/api/v1/phonebook"),
    ("post", "/api/v1/phonebook"),
    ("get", "/api/v1/phonebook/1"),
    ("put", "/api/v1/phonebook/1"),
    ("delete", "/api/v1/phonebook/1"),
    ("post", "/api/v1/phonebook/import"),
    ("get", "/api/v1/phonebook.csv"),
]

# Every state-changing form of the portal.
FORM_POSTS = [
    "/login",
    "/logout",
    "/call",
    "/requests/1/cancel",
    "/phonebook",
    "/phonebook/1/edit",
    "/phonebook/1/delete",
    "/phonebook/1/favourite",
    "/phonebook/import",
    "/settings/default-number",
    "/settings/numbers",
    "/settings/numbers/4930111111/remove",
    "/settings/token",
    "/settings/token/revoke",
]

SESSION_COOKIE = "esl_callback_session"

PAGES = ["/", "/call", "/call?to=4940123456", "/history", "/payments", "/phonebook", "/settings"]


def form_login(client: FlaskClient, username: str, password: str, **extra: str):
    token = csrf_from(client.get("/login").text)
    return client.post(
        "/login",
        data={"username": username, "password": password, "csrf_token": token, **extra},
        environ_base={"REMOTE_ADDR": "192.0.2.10"},
    )


def api_login(client: FlaskClient, username: str, password: str, addr: str = "192.0.2.10"):
    return client.post(
        "/api/v1/auth/token",
        json={"username": username, "password": password},
        environ_base={"REMOTE_ADDR": addr},
    )


@pytest.mark.parametrize(("method", "path"), PROTECTED_API)
def test_api_endpoints_refuse_requests_without_credentials(
    client: FlaskClient, method: str, path: str
) -> None:
    response = getattr(client, method)(path)
    assert response.status_code == 401
    assert response.json["error"]["code"] == "unauthorised"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_wrong_api_token_is_refused(client: FlaskClient, alice: User) -> None:
    response = client.get("/api/v1/account", headers={"Authorization": "Bearer not-a-token"})
    assert response.status_code == 401
    assert response.json["error"]["message"] == "invalid API token"


@pytest.mark.parametrize("path", PAGES)
def test_pages_send_strangers_to_the_login_and_back(
    client: FlaskClient, alice: User, path: str
) -> None:
    response = client.get(path)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=")
    token = csrf_from(client.get(response.headers["Location"]).text)
    next_page = client.get(response.headers["Location"]).request.args["next"]
    done = client.post(
        "/login",
        data={"username": "alice", "password": PASSWORD, "csrf_token": token, "next": next_page},
    )
    assert done.headers["Location"] == path
    assert client.get(path).status_code == 200


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example/", "javascript:1"])
def test_login_never_redirects_off_the_site(client: FlaskClient, alice: User, target: str) -> None:
    response = form_login(client, "alice", PASSWORD, next=target)
    assert response.headers["Location"] == "/"


@pytest.mark.parametrize("path", FORM_POSTS)
def test_form_posts_without_the_csrf_token_are_refused(
    client: FlaskClient, logged_in: str, path: str
) -> None:
    response = client.post(path, data={"name": "x", "number": "4940123456"})
    assert response.status_code == 403
    assert "security token" in response.text


def test_a_form_post_with_a_wrong_csrf_token_is_refused(
    client: FlaskClient, logged_in: str
) -> None:
    response = client.post(
        "/phonebook", data={"name": "x", "number": "4940123456", "csrf_token": "forged"}
    )
    assert response.status_code == 403


def test_a_csrf_token_with_non_ascii_characters_is_refused_like_any_wrong_one(
    client: FlaskClient, alice: User
) -> None:
    csrf_from(client.get("/login").text)  # a session with a token, before logging in
    login_form = {"username": "alice", "password": PASSWORD, "csrf_token": "\u00fc"}
    assert client.post("/login", data=login_form).status_code == 403
    token = login(client, alice)
    entry = {"name": "x", "number": "4940123456"}
    assert client.post("/phonebook", data={**entry, "csrf_token": "\u00fc"}).status_code == 403
    refused = client.post("/api/v1/phonebook", json=entry, headers={"X-CSRF-Token": "\u00e9"})
    assert refused.status_code == 403
    assert "security token" in refused.json["error"]["message"]
    assert client.post("/phonebook", data={**entry, "csrf_token": token}).status_code == 302


def test_the_api_with_the_session_cookie_needs_the_csrf_header(
    client: FlaskClient, logged_in: str
) -> None:
    entry = {"name": "Bob", "number": "4940123456"}
    assert client.post("/api/v1/phonebook", json=entry).status_code == 403
    allowed = client.post("/api/v1/phonebook", json=entry, headers={"X-CSRF-Token": logged_in})
    assert allowed.status_code == 201


def test_the_api_with_a_bearer_token_needs_no_csrf_token(client: FlaskClient, alice: User) -> None:
    entry = {"name": "Bob", "number": "4940123456"}
    assert client.post("/api/v1/phonebook", json=entry, headers=alice.auth).status_code == 201


def test_the_session_cookie_is_secure_http_only_and_same_site(
    client: FlaskClient, alice: User
) -> None:
    response = form_login(client, "alice", PASSWORD)
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("esl_callback_session=")
    for flag in ("Secure", "HttpOnly", "SameSite=Lax", "Expires="):
        assert flag in cookie


def test_logging_in_starts_a_new_session_and_csrf_token(client: FlaskClient, alice: User) -> None:
    before = csrf_from(client.get("/login").text)
    client.post("/login", data={"username": "alice", "password": PASSWORD, "csrf_token": before})
    after = csrf_from(client.get("/call").text)
    assert after != before


def test_a_wrong_password_is_refused_and_counted(
    client: FlaskClient, alice: User, web_db: Database
) -> None:
    response = form_login(client, "alice", "wrong password")
    assert response.status_code == 401
    assert "wrong username or password" in response.text
    keys = {f.key for f in AuthFailure.select().where(AuthFailure.kind == "login")}
    assert keys == {"user:alice", "ip:192.0.2.10"}


def test_an_unknown_user_gets_the_same_answer_as_a_wrong_password(
    client: FlaskClient, alice: User
) -> None:
    unknown = api_login(client, "mallory", PASSWORD)
    wrong = api_login(client, "alice", "not the password")
    assert unknown.status_code == wrong.status_code == 401
    assert unknown.json == wrong.json


def test_a_user_is_locked_out_after_repeated_failures_even_with_the_right_password(
    client: FlaskClient, alice: User
) -> None:
    for _ in range(3):  # web.login_max_failures in the test settings
        assert api_login(client, "alice", "guess").status_code == 401
    locked = api_login(client, "alice", PASSWORD)
    assert locked.status_code == 429
    assert locked.headers["Retry-After"] == "600"
    assert "too many failed logins" in locked.json["error"]["message"]
    page = form_login(client, "alice", PASSWORD)
    assert page.status_code == 429


def test_the_lockout_survives_a_restart_of_the_portal(
    client: FlaskClient, alice: User, web_db: Database
) -> None:
    for _ in range(3):
        api_login(client, "alice", "guess")
    restarted = create_app(web_settings(), web_db, None).test_client()
    assert api_login(restarted, "alice", PASSWORD).status_code == 429


def test_one_address_trying_many_usernames_is_rate_limited(
    client: FlaskClient, alice: User
) -> None:
    for attempt in range(15):  # 5 x login_max_failures, spread over many usernames
        api_login(client, f"user{attempt}", "guess", addr="198.51.100.7")
    assert api_login(client, "alice", PASSWORD, addr="198.51.100.7").status_code == 429
    assert api_login(client, "alice", PASSWORD, addr="198.51.100.8").status_code == 201


def test_a_successful_login_clears_the_users_failures(client: FlaskClient, alice: User) -> None:
    for _ in range(2):
        api_login(client, "alice", "guess")
    assert api_login(client, "alice", PASSWORD).status_code == 201
    for _ in range(2):
        api_login(client, "alice", "guess")
    assert api_login(client, "alice", PASSWORD).status_code == 201


def test_login_checks_the_password_off_the_event_loop(
    client: FlaskClient, alice: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads = []
    real = auth.verify_password

    def recording(stored: str, candidate: str) -> bool:
        threads.append(threading.current_thread())
        return real(stored, candidate)

    monkeypatch.setattr(auth, "verify_password", recording)
    assert api_login(client, "alice", PASSWORD).status_code == 201
    assert threads and threading.main_thread() not in threads


def test_logout_ends_the_session(client: FlaskClient, logged_in: str) -> None:
    response = client.post("/logout", data={"csrf_token": logged_in})
    assert response.headers["Location"] == "/login"
    assert client.get("/history").status_code == 302
    assert client.get("/api/v1/account").status_code == 401


def test_a_session_cookie_kept_from_before_logout_no_longer_logs_in(
    app: Flask, client: FlaskClient, logged_in: str, alice: User
) -> None:
    """Only the session logged out of ends: the user's other devices stay logged in."""
    phone = app.test_client()
    login(phone, alice)
    kept = client.get_cookie(SESSION_COOKIE)
    assert kept is not None
    client.post("/logout", data={"csrf_token": logged_in})
    replay = app.test_client()
    replay.set_cookie(SESSION_COOKIE, kept.value)
    assert replay.get("/call").headers["Location"].startswith("/login")
    assert replay.get("/api/v1/account").status_code == 401
    entry = {"name": "x", "number": "4940123456", "csrf_token": logged_in}
    assert replay.post("/phonebook", data=entry).status_code == 403
    assert PhoneBookEntry.select().count() == 0
    assert phone.get("/call").status_code == 200


def test_a_session_cookie_kept_from_before_logout_is_refused_by_another_portal_process(
    client: FlaskClient, logged_in: str, web_db: Database
) -> None:
    """`esl-callback web` and `serve` share the database, not their memory."""
    kept = client.get_cookie(SESSION_COOKIE)
    assert kept is not None
    other = create_app(web_settings(), web_db, None).test_client()
    other.set_cookie(SESSION_COOKIE, kept.value)
    assert other.get("/call").status_code == 200
    client.post("/logout", data={"csrf_token": logged_in})
    assert other.get("/call").status_code == 302


def test_a_password_change_ends_existing_sessions(
    client: FlaskClient, logged_in: str, alice: User
) -> None:
    assert client.get("/history").status_code == 200
    WebUser.update(password_hash=hash_password("a new password")).where(
        WebUser.username == "alice"
    ).execute()
    assert client.get("/history").status_code == 302


def test_an_api_token_works_until_it_is_replaced_or_revoked(
    client: FlaskClient, alice: User
) -> None:
    first = api_login(client, "alice", PASSWORD).json["token"]
    second = api_login(client, "alice", PASSWORD).json["token"]
    bearer = {"Authorization": f"Bearer {second}"}
    assert (
        client.get("/api/v1/account", headers={"Authorization": f"Bearer {first}"}).status_code
        == 401
    )
    assert client.get("/api/v1/account", headers=bearer).json["name"] == "alice"
    assert client.delete("/api/v1/auth/token", headers=bearer).status_code == 204
    assert client.get("/api/v1/account", headers=bearer).status_code == 401


def test_a_portal_session_cannot_revoke_the_app_token_and_is_told_what_to_do(
    client: FlaskClient, logged_in: str, alice: User
) -> None:
    """The endpoint is an app logging out; the session's user may hold another device's token."""
    refused = client.delete("/api/v1/auth/token", headers={"X-CSRF-Token": logged_in})
    assert refused.status_code == 403
    message = refused.json["error"]["message"]
    assert "POST /logout" in message and "Settings" in message
    assert client.get("/api/v1/account", headers=alice.auth).status_code == 200
    assert client.get("/api/v1/account").status_code == 200  # the session goes on too


def test_only_a_hash_of_the_api_token_is_stored(client: FlaskClient, alice: User) -> None:
    token = api_login(client, "alice", PASSWORD).json["token"]
    stored = WebUser.get(WebUser.username == "alice").api_token_hash
    assert stored and token not in stored


def test_the_settings_page_creates_and_revokes_a_token(client: FlaskClient, logged_in: str) -> None:
    page = client.post("/settings/token", data={"csrf_token": logged_in})
    token = page.text.split('<code id="new-token">')[1].split("</code>")[0]
    bearer = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/v1/account", headers=bearer).status_code == 200
    client.post("/settings/token/revoke", data={"csrf_token": logged_in})
    assert client.get("/api/v1/account", headers=bearer).status_code == 401


def test_the_token_endpoint_says_what_is_missing(client: FlaskClient) -> None:
    response = client.post("/api/v1/auth/token", json={"username": "alice"})
    assert response.status_code == 422
    assert response.json["error"] == {
        "code": "invalid",
        "message": "password is required",
        "field": "password",
    }
    not_json = client.post("/api/v1/auth/token", data="username=alice")
    assert not_json.status_code == 422


def test_pages_and_api_answers_carry_security_headers(client: FlaskClient, alice: User) -> None:
    for response in (client.get("/login"), client.get("/api/v1/account", headers=alice.auth)):
        assert "default-src 'self'" in response.headers["Content-Security-Policy"]
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Cache-Control"] == "no-store"


def test_a_portal_without_a_secret_still_logs_in(
    platform_with: Callable[..., WebPlatform], alice: User
) -> None:
    client = platform_with(web={"secret": ""}).client()
    assert login(client, alice)
