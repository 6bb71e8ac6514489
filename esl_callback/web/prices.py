"""Prices in a customer's words: how seconds are billed, why a call cannot be placed, and the
rates page's search (by number, by the first digits of numbers, or by country as the rate table
names it).

Run `search` through `Database.run`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from esl_callback import numbers
from esl_callback.callback import billing, policy, status
from esl_callback.models import Rate
from esl_callback.web import inputs
from esl_callback.web.paging import Page, paginate

# Why a quote refuses a call, as a sentence (else `status.cause_words`).
REFUSALS = {
    "no_rate_destination": "There is no price for calls to this number, so it cannot be called.",
    "destination_denied": "Calls to this number are not allowed.",
    "no_rate_leg_a": "There is no price for calls to your number, so we cannot call you on it.",
    "callback_number_denied": "We cannot call you back on that number.",
    "balance_too_low": "Your balance is too low for this call: top up first.",
    "too_many_calls": "You have as many calls going as you may: wait until one ends.",
    "account_disabled": "Your account is disabled, so calls cannot be placed.",
}
# The field a refusal is about, for the message next to it (else the destination).
REFUSAL_FIELDS = {"no_rate_leg_a": "source", "callback_number_denied": "source"}


def refusal_sentence(reason: str) -> str:
    words = REFUSALS.get(reason) or status.cause_words(reason)
    return words[:1].upper() + words[1:] + ("" if words.endswith(".") else ".")


def refusal_field(reason: str) -> str:
    return REFUSAL_FIELDS.get(reason, "destination")


def billing_steps(minimum: int, increment: int) -> str:
    """How a call's seconds are billed, in words that follow "billed": per second, per started
    minute, or the first 30 s, then each started 6 s."""
    if minimum <= 1 and increment == 1:
        return "per second"
    if minimum <= increment and increment == 60:
        return "per started minute"
    if minimum <= increment:
        return f"per started {increment} s"
    return f"the first {minimum} s, then each started {increment} s"


@dataclass(frozen=True)
class RateSearch:
    """The rates page's results: the rate for a number, or rates whose name or prefix match."""

    query: str
    number: str | None  # the number searched for (E.164 digits), when the query is one
    match: Rate | None  # the rate that applies to that number
    denied: bool  # the number may not be called whatever its rate (billing.deny_prefixes...)
    found: Page


def search(query: str, wanted: inputs.PageRequest, settings: Any) -> RateSearch:
    """Rates for `query`: a whole number (the rate it is charged at), the first digits of
    numbers (+49, 0049: every rate of those), or a name (Germany, mobile)."""
    query = " ".join(query.split())[:64]
    number: str | None = None
    select = Rate.select()
    if query and any(ch.isdigit() for ch in query):
        try:
            number = numbers.normalise(query, settings.numbers, allow_formatting=True)
        except numbers.InvalidNumber:
            number = None
    match = billing.find_rate(number) if number else None
    if number:
        select = select.where(Rate.prefix == (match.prefix if match else ""))
    elif query:
        digits = prefix_digits(query, settings.numbers)
        if digits:
            select = select.where(Rate.prefix.startswith(digits))
        else:
            select = select.where(Rate.description.contains(query))
    denied = bool(number) and not policy.destination_allowed(number, settings.billing)
    ordered = select.order_by(Rate.description, Rate.prefix)
    return RateSearch(query, number, match, denied, paginate(ordered, wanted))


def prefix_digits(query: str, rules: Any) -> str:
    """The first digits of international numbers a query names (+49, 0049, 49), or ""."""
    text = query.strip()
    international = text.startswith("+")
    digits = "".join(ch for ch in text if ch.isdigit())
    if not digits or any(ch.isalpha() for ch in text):
        return ""
    if not international and digits.startswith(rules.international_prefix):
        digits = digits[len(rules.international_prefix) :]
    return digits[:20]
