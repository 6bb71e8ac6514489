"""A database that cannot be reached is a 503 saying to try again, not an internal error."""

from __future__ import annotations

from flask.testing import FlaskClient
from outage import sqlite_only, write_locked
from web_helpers import User

from esl_callback.db import Database


def test_a_request_the_database_cannot_serve_is_a_503_with_a_time_to_retry(
    client: FlaskClient, alice: User, web_db: Database
) -> None:
    sqlite_only(web_db)
    entry = {"name": "Bob", "number": "+49 40 2222222"}

    with write_locked(web_db):
        response = client.post("/api/v1/phonebook", json=entry, headers=alice.auth)

    assert response.status_code == 503
    assert response.headers["Retry-After"] == "30"
    assert response.json["error"] == {
        "code": "unavailable",
        "message": "the service cannot reach its database just now: try again in a moment",
    }
    assert client.post("/api/v1/phonebook", json=entry, headers=alice.auth).status_code == 201
