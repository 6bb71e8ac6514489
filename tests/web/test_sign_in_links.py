"""One-time sign-in links (POST /api/v1/sign-in-links, GET /sign-in/<token>): an app opens a
portal page already signed in, once, within a minute; only a digest of the link is stored."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlsplit

from flask import Flask
from flask.testing import FlaskClient
from web_helpers import User

from esl_callback.db import utcnow
from esl_callback.models import SpentToken
from esl_callback.web import sign_in_links


def new_link(client: FlaskClient, user: User, page: str = "history") -> str:
    """The path of a fresh link to `page` for `user`."""
    response = client.post("/api/v1/sign-in-links", json={"page": page}, headers=user.auth)
    assert response.status_code == 201, response.text
    body = response.json
    assert (body["page"], body["expires_in"]) == (page, 60)
    url = urlsplit(body["url"])
    assert (url.scheme, url.netloc) == ("http", "localhost")  # this server, as it was asked
    return url.path


def test_a_link_opens_its_page_signed_in_once(app: Flask, alice: User) -> None:
    path = new_link(app.test_client(), alice, "payments")
    assert alice.token not in path
    browser = app.test_client()
    opened = browser.get(path)
    assert (opened.status_code, opened.headers["Location"]) == (302, "/payments")
    page = browser.get("/payments")
    assert page.status_code == 200
    assert "Log out alice" in page.text
    # The link is spent: another browser (or the same one) gets the login page and a reason.
    again = app.test_client()
    reused = again.get(path)
    assert (reused.status_code, reused.headers["Location"]) == (302, "/login")
    assert "expired or was already used" in again.get("/login").text
    assert again.get("/payments").headers["Location"].startswith("/login")


def test_only_a_digest_is_stored_and_it_is_forgotten_when_used(
    client: FlaskClient, alice: User
) -> None:
    path = new_link(client, alice)
    token = path.removeprefix("/sign-in/")
    stored = [row.token for row in SpentToken.select().where(SpentToken.kind == "sign_in_link")]
    assert stored == [sign_in_links.digest(token)]
    assert token not in stored
    client.get(path)
    assert SpentToken.select().where(SpentToken.kind == "sign_in_link").count() == 0


def test_a_link_a_minute_old_signs_nobody_in(app: Flask, alice: User) -> None:
    path = new_link(app.test_client(), alice)
    SpentToken.update(expires_at=utcnow() - timedelta(seconds=1)).execute()
    browser = app.test_client()
    assert browser.get(path).headers["Location"] == "/login"
    assert browser.get("/history").headers["Location"].startswith("/login")


def test_a_changed_link_signs_nobody_in(app: Flask, alice: User, bob: User) -> None:
    path = new_link(app.test_client(), alice)
    user_id, page, secret = path.removeprefix("/sign-in/").split(".", 2)
    for forged in (
        f"/sign-in/{bob.account.id}.{page}.{secret}",  # someone else's account
        f"/sign-in/{user_id}.settings.{secret}",  # another page
        f"/sign-in/{user_id}.{page}.{secret[:-1]}",
        f"/sign-in/{user_id}.{page}",
        "/sign-in/" + "9" * 300,
    ):
        browser = app.test_client()
        assert browser.get(forged).headers["Location"] == "/login", forged
        assert browser.get("/history").headers["Location"].startswith("/login")
    # None of them spent the real link.
    assert app.test_client().get(path).headers["Location"] == "/history"


def test_a_link_is_only_for_a_known_page_and_a_signed_in_user(
    client: FlaskClient, alice: User
) -> None:
    for page in ("admin", "", None, ["history"]):
        response = client.post("/api/v1/sign-in-links", json={"page": page}, headers=alice.auth)
        assert (response.status_code, response.json["error"]["field"]) == (422, "page")
    anonymous = client.post("/api/v1/sign-in-links", json={"page": "history"})
    assert anonymous.status_code == 401
