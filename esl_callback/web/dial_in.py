"""The numbers a customer dials or texts for a callback from a phone, and what to send.

Shown on the home page: the operator's access numbers (by PIN, or by the caller's own number),
the account's personal DIDs, and the SMS numbers with the SMS syntax (`esl_callback.sms`).
Run `numbers_to_dial` through `Database.run`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from esl_callback import numbers
from esl_callback.models import AccessNumber, Account, Did
from esl_callback.readable_numbers import readable

# The SMS syntax, as a customer reads it: what to send, what happens.
SMS_SYNTAX = (
    ("CB", "We call you back; you key the number to call."),
    ("CB +4930123456", "We call you back and connect you to that number (no spaces in it)."),
    ("1234 +4930123456", "The same with your PIN (here 1234) first, if your account asks for it."),
    ("BAL", "We text you your balance."),
    ("TOPUP 1234 5678 9012 34", "Adds a voucher to your balance."),
    ("HELP", "We text you this list."),
)


@dataclass(frozen=True)
class DialIn:
    number: str  # E.164 digits
    display: str
    how: str  # what happens, in a sentence


@dataclass
class NumbersToDial:
    access: list[DialIn] = field(default_factory=list)
    personal: list[DialIn] = field(default_factory=list)
    sms: list[DialIn] = field(default_factory=list)
    sms_syntax: tuple[tuple[str, str], ...] = SMS_SYNTAX

    @property
    def any(self) -> bool:
        return bool(self.access or self.personal or self.sms)


def numbers_to_dial(account_id: int, settings: Any) -> NumbersToDial:
    """What the account's customer can call or text to get a callback."""
    account = Account.get_by_id(account_id)
    found = NumbersToDial()
    for access in AccessNumber.select().order_by(AccessNumber.number):
        if access.method == AccessNumber.PIN:
            how = "Call it and hang up when it rings: we call you back and ask for your PIN."
        else:
            how = "Call it from one of your numbers and hang up: we call you back."
        found.access.append(DialIn(access.number, readable(access.number), how))
    for did in Did.select().where(Did.account == account_id).order_by(Did.number):
        rings = did.callback_number or account.default_callback_number
        how = (
            f"Your own number: call it and hang up, and we call you back on {readable(rings)}."
            if rings
            else "Your own number: call it and hang up, and we call you back."
        )
        found.personal.append(DialIn(did.number, readable(did.number), how))
    if settings.sms.enabled:
        for raw in settings.sms.numbers:
            digits = numbers.normalise(raw, settings.numbers, allow_formatting=True)
            how = "Text it from one of your numbers."
            found.sms.append(DialIn(digits, readable(digits), how))
    return found
