"""Fixtures for billing tests: funded accounts and callback requests in the `db` fixture."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import pytest

from esl_callback.callback import billing
from esl_callback.models import Account, CallbackRequest


@pytest.fixture
def account(db) -> Callable[..., Account]:
    """Make an active account funded by a payment (so that its audit balances)."""

    def make(name: str = "alice", balance: str = "10", **fields: object) -> Account:
        created = Account.create(name=name, **fields)
        if Decimal(balance):
            billing.add_payment(created, balance, "opening balance")
        return Account.get_by_id(created.id)

    return make


@pytest.fixture
def request_for(db) -> Callable[[Account], CallbackRequest]:
    """Make a callback request of an account."""

    def make(owner: Account) -> CallbackRequest:
        return CallbackRequest.create(account=owner, trigger="web", method="web")

    return make
