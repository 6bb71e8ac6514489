"""Fixtures for the portal and API tests: the platform on a real database, users.

Every test that uses the portal gets the real thing: the controller serving it, with its dialer
connected over real sockets to the FreeSWITCH simulator and its virtual phones (`web_helpers`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from web_helpers import (
    ALICE_PHONE,
    BOB_PHONE,
    PASSWORD,
    User,
    WebPlatform,
    api_token,
    german_rates,
    login,
    start_platform,
)

from esl_callback import accounts
from esl_callback.callback import billing
from esl_callback.db import Database
from esl_callback.models import Account


@pytest.fixture
def web_db(db: Database) -> Database:
    """The `db` fixture (SQLite and PostgreSQL) under the name the web tests use."""
    return db


@pytest.fixture
def platform_with(web_db: Database) -> Iterator[Callable[..., WebPlatform]]:
    """Start simulator + controller + portal; settings sections and phones may be given."""
    started: list[WebPlatform] = []

    def start_one(phones: dict[str, Any] | None = None, **sections: Any) -> WebPlatform:
        running = start_platform(web_db.url, phones, **sections)
        started.append(running)
        return running

    german_rates()
    yield start_one
    for running in started:
        running.stop()


@pytest.fixture
def platform(platform_with: Callable[..., WebPlatform]) -> WebPlatform:
    """The platform with the standard phones and settings."""
    return platform_with()


@pytest.fixture
def app(platform: WebPlatform) -> Flask:
    return platform.app


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def make_user(web_db: Database) -> Callable[..., User]:
    """An account with a web user, a balance paid in, its callback number and optionally a token."""

    def make(
        name: str = "alice",
        *,
        balance: str = "10",
        number: str | None = ALICE_PHONE,
        token: bool = True,
        **fields: Any,
    ) -> User:
        account = accounts.create_account(name, default_callback_number=number, **fields)
        if Decimal(balance):
            billing.add_payment(account, balance, f"opening balance of {name}")
        accounts.add_web_user(account, name, PASSWORD)
        user = User(account=Account.get_by_id(account.id), username=name)
        if token:
            user.token = api_token(name)
        return user

    return make


@pytest.fixture
def alice(make_user: Callable[..., User]) -> User:
    return make_user("alice")


@pytest.fixture
def bob(make_user: Callable[..., User]) -> User:
    return make_user("bob", number=BOB_PHONE)


@pytest.fixture
def logged_in(client: FlaskClient, alice: User) -> Iterator[str]:
    """`client` logged in as alice through the login form; yields the CSRF token."""
    yield login(client, alice)
