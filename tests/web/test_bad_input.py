"""Input the portal cannot use is answered with a 4xx and a message saying why, never a 500.

The platform's app has `testing` on: an exception in a view fails these tests instead of becoming
a 500 page.
"""

from __future__ import annotations

from flask.testing import FlaskClient
from web_helpers import FRIEND, User

from esl_callback.models import PhoneBookEntry, WebUser

DEEP_JSON = "[" * 100_000 + "]" * 100_000
# Digits that str.isdigit() accepts but a page number must not be: superscript, circled,
# full-width; and a number too long for int() to read at all.
NOT_ASCII_DIGITS = ["\u00b2", "\u2460", "\uff11", "9" * 5000]
# Larger than any id a database column holds (signed 64-bit).
TOO_LARGE_IDS = [2**63, 10**30]
# Half of a UTF-16 surrogate pair, escaped alone: valid JSON, but not text any encoder takes.
LONE_SURROGATE = "\\ud800"
NOT_UNICODE = "holds text that is not valid Unicode"


def test_json_nested_too_deeply_is_refused_with_a_clear_message(
    client: FlaskClient, alice: User
) -> None:
    for path, headers in (("/api/v1/auth/token", {}), ("/api/v1/phonebook", alice.auth)):
        response = client.post(
            path, data=DEEP_JSON, content_type="application/json", headers=headers
        )
        assert response.status_code == 400, path
        assert response.json["error"]["message"] == (
            "the JSON document is nested too deeply; send a flat JSON object"
        )


def test_api_page_numbers_take_only_ascii_digits(client: FlaskClient, alice: User) -> None:
    for path in ("/api/v1/requests", "/api/v1/phonebook"):
        for key in ("page", "per_page"):
            for value in NOT_ASCII_DIGITS:
                response = client.get(path, query_string={key: value}, headers=alice.auth)
                assert response.status_code == 422, (path, key, value)
                assert response.json["error"]["field"] == key
                assert response.json["error"]["message"].startswith("Type a whole number from 1")


def test_page_numbers_of_the_portals_lists_take_only_ascii_digits(
    client: FlaskClient, logged_in: str
) -> None:
    for path in ("/history", "/phonebook"):
        for key in ("page", "per_page"):
            for value in NOT_ASCII_DIGITS:
                response = client.get(path, query_string={key: value})
                assert response.status_code == 422, (path, key, value)
                assert (
                    f" for {key}." in response.text
                    and "Type a whole number from 1" in response.text
                )


def test_ids_too_large_for_the_database_are_not_found(client: FlaskClient, alice: User) -> None:
    for big in TOO_LARGE_IDS:
        for path in (
            f"/api/v1/requests/{big}",
            f"/api/v1/requests/{big}/events",
            f"/api/v1/cdrs/{big}",
            f"/api/v1/phonebook/{big}",
            f"/api/v1/numbers/verifications/{big}",
        ):
            response = client.get(path, headers=alice.auth)
            assert response.status_code == 404, path
            assert response.json["error"]["code"] == "not_found"


def test_portal_pages_with_ids_too_large_for_the_database_are_not_found(
    client: FlaskClient, logged_in: str
) -> None:
    for big in TOO_LARGE_IDS:
        for path in (
            f"/requests/{big}",
            f"/requests/{big}/live",
            f"/phonebook/{big}/edit",
            f"/settings/numbers/{big}",
        ):
            assert client.get(path).status_code == 404, path
        response = client.post(f"/phonebook/{big}/delete", data={"csrf_token": logged_in})
        assert response.status_code == 404


def test_json_text_that_is_not_valid_unicode_is_refused_naming_the_field(
    client: FlaskClient, alice: User
) -> None:
    """A lone surrogate escape ("\\ud800") parses, then fails any database or encoder: it is
    refused where every JSON body is read, before the view sees it."""
    for path, body, headers, field in (
        (
            "/api/v1/phonebook",
            f'{{"name": "Bob {LONE_SURROGATE}", "number": "{FRIEND}"}}',
            alice.auth,
            "name",
        ),
        (
            "/api/v1/phonebook",
            f'{{"name": "Bob", "number": "{FRIEND}", "notes": ["{LONE_SURROGATE}"]}}',
            alice.auth,
            "notes",
        ),
        (
            "/api/v1/auth/token",
            f'{{"username": "{LONE_SURROGATE}", "password": "x"}}',
            {},
            "username",
        ),
    ):
        response = client.post(path, data=body, content_type="application/json", headers=headers)
        assert response.status_code == 400, (path, body)
        assert response.json["error"]["field"] == field
        assert response.json["error"]["message"].startswith(f"{field} {NOT_UNICODE}")
    key = client.post(
        "/api/v1/phonebook",
        data=f'{{"{LONE_SURROGATE}": 1, "name": "Bob", "number": "{FRIEND}"}}',
        content_type="application/json",
        headers=alice.auth,
    )
    assert key.status_code == 400
    assert key.json["error"]["message"].startswith(f"the JSON document {NOT_UNICODE}")
    assert "field" not in key.json["error"]
    assert PhoneBookEntry.select().count() == 0
    assert WebUser.get(WebUser.username == "alice").last_login_at is None


def test_form_posts_with_bytes_that_are_not_utf8_are_stored_as_text_never_a_crash(
    client: FlaskClient, logged_in: str
) -> None:
    """UTF-8 bytes of a lone surrogate (ED A0 80) in a form stay %-escapes in a URL-encoded form
    and become U+FFFD in a multipart one: text like any other."""
    encoded = client.post(
        "/phonebook",
        data=f"name=Bob%ED%A0%80&number={FRIEND}&csrf_token={logged_in}",
        content_type="application/x-www-form-urlencoded",
    )
    multipart = client.post(
        "/phonebook",
        data=(
            b'--B\r\nContent-Disposition: form-data; name="name"\r\n\r\nCarol\xed\xa0\x80\r\n'
            + f'--B\r\nContent-Disposition: form-data; name="number"\r\n\r\n4940333333\r\n'
            f'--B\r\nContent-Disposition: form-data; name="csrf_token"\r\n\r\n{logged_in}\r\n'
            "--B--\r\n".encode()
        ),
        content_type="multipart/form-data; boundary=B",
    )
    assert (encoded.status_code, multipart.status_code) == (302, 302)
    stored = sorted(entry.name for entry in PhoneBookEntry.select())
    assert stored == ["Bob%ED%A0%80", "Carol\ufffd\ufffd\ufffd"]


def test_a_method_not_allowed_answer_says_which_methods_are(
    client: FlaskClient, alice: User
) -> None:
    api = client.patch("/api/v1/phonebook", headers=alice.auth)
    assert api.status_code == 405
    assert set(api.headers["Allow"].split(", ")) == {"GET", "HEAD", "OPTIONS", "POST"}
    assert api.json["error"]["code"] == "method_not_allowed"
    page = client.put("/login")
    assert page.status_code == 405
    assert set(page.headers["Allow"].split(", ")) == {"GET", "HEAD", "OPTIONS", "POST"}
    assert page.mimetype == "text/html"
    assert "Back to the start page" in page.text  # the portal's own error page
