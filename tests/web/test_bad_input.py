"""Input the portal cannot use is answered with a 4xx and a message saying why, never a 500.

The platform's app has `testing` on: an exception in a view fails these tests instead of becoming
a 500 page.
"""

from __future__ import annotations

from flask.testing import FlaskClient
from web_helpers import User

DEEP_JSON = "[" * 100_000 + "]" * 100_000
# Digits that str.isdigit() accepts but a page number must not be: superscript, circled,
# full-width; and a number too long for int() to read at all.
NOT_ASCII_DIGITS = ["\u00b2", "\u2460", "\uff11", "9" * 5000]
# Larger than any id a database column holds (signed 64-bit).
TOO_LARGE_IDS = [2**63, 10**30]


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
                assert response.json["error"]["message"].startswith(f"{key} must be a whole")


def test_page_numbers_of_the_portals_lists_take_only_ascii_digits(
    client: FlaskClient, logged_in: str
) -> None:
    for path in ("/history", "/phonebook"):
        for key in ("page", "per_page"):
            for value in NOT_ASCII_DIGITS:
                response = client.get(path, query_string={key: value})
                assert response.status_code == 422, (path, key, value)
                assert f"{key} must be a whole number" in response.text


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
