"""Fixtures for the portal and API tests: the Flask app on a real database, users, a dialer."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from web_helpers import PASSWORD, RecordingDialer, User, api_token, login, web_settings

from esl_callback import accounts
from esl_callback.callback import billing
from esl_callback.config import Settings
from esl_callback.db import Database
from esl_callback.models import Account
from esl_callback.web import create_app


@pytest.fixture
def web_db(db: Database) -> Database:
    """The `db` fixture (SQLite and PostgreSQL) under the name the web tests use."""
    return db


@pytest.fixture
def dialer(web_db: Database) -> RecordingDialer:
    return RecordingDialer(web_db)


@pytest.fixture
def settings() -> Settings:
    return web_settings()


@pytest.fixture
def app(web_db: Database, settings: Settings, dialer: RecordingDialer) -> Flask:
    app = create_app(settings, web_db, dialer)
    app.testing = True
    return app


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
        number: str | None = "4930111111",
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
    return make_user("bob", number="4930222222")


@pytest.fixture
def logged_in(client: FlaskClient, alice: User) -> Iterator[str]:
    """`client` logged in as alice through the login form; yields the CSRF token."""
    yield login(client, alice)
