"""Price quotes: what a callback would cost, and the longest call the balance pays, before it is
placed.

The figures are `billing.price`, the pricing of every hold the dialer places
(`billing.authorise`), with the head starts of a callback's first hold (`allowance.head_starts`):
the longest ring of leg A (and of leg B in a simultaneous call) is paid on top of the
conversation, so the quote is what the dialer would hold at once. The call's real limit is set
when the destination answers, from the seconds the legs really rang: usually longer than quoted,
as phones seldom ring for as long as they may, and different if the balance or the rates change
meanwhile. Nothing is held or locked; the same checks as placing the call come first (account
active, the source one of the account's numbers).
Run `quote` through `Database.run`.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from esl_callback.callback import billing, policy, status
from esl_callback.callback.allowance import head_starts
from esl_callback.callback.rating import RateSnapshot
from esl_callback.models import Account, Rate
from esl_callback.web.callbacks import CallbackOrder, check_account_and_source

amount = status.amount


def describe_rate(rate: RateSnapshot | None) -> dict[str, Any] | None:
    """A leg's rate: per minute, connect fee, and how seconds are billed (minimum, increment)."""
    if rate is None:
        return None
    row = Rate.get_or_none(Rate.prefix == rate.prefix)
    return {
        "prefix": rate.prefix,
        "description": row.description if row is not None else "",
        "price_per_minute": amount(rate.price_per_minute),
        "connect_fee": amount(rate.connect_fee),
        "minimum": rate.minimum,
        "increment": rate.increment,
    }


def quote(account_id: int, order: CallbackOrder, settings: Any) -> dict[str, Any]:
    """The quote for the account's callback `order` (see the module)."""
    account = Account.get_by_id(account_id)
    check_account_and_source(account, order.source, settings)
    head_a, head_b = head_starts(order.mode, settings.callback.originate_timeout_seconds)
    priced = billing.price(
        account,
        order.source,
        order.destination,
        settings.billing,
        leg_a_head_start=head_a,
        leg_b_head_start=head_b,
        max_seconds=settings.billing.max_call_seconds,
        default_call_limit=settings.callback.max_concurrent_calls,
    )
    source_refused = policy.refusal(order.source, policy.Purpose.CALL_BACK, settings)
    refusal = source_refused.reason.value if source_refused else priced.refusal
    charged = [leg.rate for leg in priced.legs]
    return {
        "source": order.source,
        "destination": order.destination,
        "mode": order.mode,
        "allowed": refusal is None,
        "refusal": refusal,
        "refusal_words": status.cause_words(refusal) if refusal else None,
        "currency": account.currency,
        "available": amount(priced.available),
        "price_per_minute": amount(sum((r.price_per_minute for r in charged), Decimal(0))),
        "connect_fee": amount(sum((r.connect_fee for r in charged), Decimal(0))),
        "destination_rate": describe_rate(priced.rate_b),
        "source_rate": describe_rate(priced.rate_a) if priced.charge_leg_a else None,
        "max_seconds": priced.seconds if refusal is None else 0,
    }
