"""Behind a reverse proxy: the login lockout counts the client's address, never a forged one."""

from __future__ import annotations

from flask.testing import FlaskClient

from esl_callback import accounts
from esl_callback.config import settings_from_mapping
from esl_callback.db import Database
from esl_callback.web import create_app
from esl_callback.web.auth import IP_FAILURE_FACTOR

PASSWORD = "correct horse battery"
PROXY = "10.0.0.1"  # the address every request arrives from when a proxy is in front


def portal_client(db: Database, trusted_proxies: int) -> FlaskClient:
    settings = settings_from_mapping(
        {
            "web": {
                "secret": "s" * 40,
                "login_max_failures": 3,
                "trusted_proxies": trusted_proxies,
            }
        },
        environ={},
    )
    accounts.add_web_user(accounts.create_account("alice"), "alice", PASSWORD)
    return create_app(settings, db, None).test_client()


def log_in(client: FlaskClient, password: str, forwarded_for: str, username: str = "alice") -> int:
    response = client.post(
        "/api/v1/auth/token",
        json={"username": username, "password": password},
        headers={"X-Forwarded-For": forwarded_for},
        environ_base={"REMOTE_ADDR": PROXY},
    )
    return response.status_code


def fail_enough_times_from(client: FlaskClient, address: str) -> None:
    """Lock the address out: each failure with another user name, so no user is locked."""
    for n in range(3 * IP_FAILURE_FACTOR):
        assert log_in(client, "guess", address, username=f"nobody{n}") == 401


def test_behind_a_trusted_proxy_each_client_address_is_locked_out_on_its_own(
    db: Database,
) -> None:
    client = portal_client(db, trusted_proxies=1)
    fail_enough_times_from(client, "198.51.100.7")
    assert log_in(client, PASSWORD, "198.51.100.7") == 429
    assert log_in(client, PASSWORD, "198.51.100.8") == 201


def test_without_a_trusted_proxy_a_forged_forwarded_address_does_not_escape_the_lockout(
    db: Database,
) -> None:
    client = portal_client(db, trusted_proxies=0)
    fail_enough_times_from(client, "198.51.100.7")
    assert log_in(client, PASSWORD, "198.51.100.99") == 429  # still the same real address
