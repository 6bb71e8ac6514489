"""The home page's figures: balance, whether it is low, recent calls and favourites.

Run `overview` through `Database.run`.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from esl_callback.callback import billing
from esl_callback.models import Account, PhoneBookEntry
from esl_callback.web import dial_in, history, inputs

RECENT_CALLS = 5
FAVOURITES = 8


def low_balance_threshold(account: Account, settings: Any) -> Decimal:
    """Below this balance the home page says it is low (`billing.low_balance_threshold`)."""
    return Decimal(settings.billing.low_balance_threshold)


def overview(account_id: int, settings: Any) -> dict[str, Any]:
    account = Account.get_by_id(account_id)
    available = billing.available_balance(account)
    threshold = low_balance_threshold(account, settings)
    recent = history.page(
        account_id, history.HistoryFilter(calls_only=True), inputs.PageRequest(1, RECENT_CALLS)
    )
    favourites = list(
        PhoneBookEntry.select()
        .where(PhoneBookEntry.account == account_id, PhoneBookEntry.favourite == True)  # noqa: E712
        .order_by(PhoneBookEntry.name, PhoneBookEntry.id)
        .limit(FAVOURITES)
    )
    return {
        "balance": account.balance,
        "available": available,
        "currency": account.currency,
        "low": account.balance < threshold,
        "threshold": threshold,
        "recent": recent.items,
        "favourites": favourites,
        "dial_in": dial_in.numbers_to_dial(account_id, settings),
        "has_pin": account.pin_hash is not None,
    }
