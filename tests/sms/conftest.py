"""Fixtures for SMS tests: simulator + controller + web server, on SQLite and PostgreSQL."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

# The end-to-end platform helpers live with the end-to-end tests.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "e2e"))

from platform_helpers import ANI_ACCESS, PIN_ACCESS, standard_rates
from sms_helpers import CALLER, SmsPlatform, start_sms_platform

from esl_callback import accounts
from esl_callback.callback import billing
from esl_callback.db import Database
from esl_callback.models import Account


@pytest.fixture
def sms_platform(db: Database) -> Iterator[Callable[..., SmsPlatform]]:
    """Start the platform with the given phones and options (after the test seeded its data)."""
    started: list[SmsPlatform] = []

    def start(phones: dict[str, Any] | None = None, **options: Any) -> SmsPlatform:
        running = start_sms_platform(db.url, phones or {}, **options)
        started.append(running)
        return running

    standard_rates()
    yield start
    for running in started:
        running.observer.connection.stop()
        running.service.stop(timeout=2)
        running.sim.stop()


@pytest.fixture
def alice() -> Account:
    """Alice: PIN 4711, 10.00 EUR; her mobile is her registered number and callback number."""
    account = accounts.create_account("alice", pin="4711", default_callback_number=CALLER)
    billing.add_payment(account, "10", "voucher 1")
    accounts.add_access_number(PIN_ACCESS, "pin")
    accounts.add_access_number(ANI_ACCESS, "ani")
    return Account.get_by_id(account.id)
