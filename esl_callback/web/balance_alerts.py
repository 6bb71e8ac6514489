"""The low-balance alert a customer sets in Settings: the amount, and e-mail or SMS
(`esl_callback.alerts` sends it when a call takes the balance below the amount).

Run `describe` and `store` through `Database.run`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from esl_callback import alerts
from esl_callback.config import EMAIL_ADDRESS
from esl_callback.models import Account
from esl_callback.web.errors import Invalid
from esl_callback.web.formats import amount, minor_units

LARGEST = Decimal(100_000)
_EMAIL = re.compile(EMAIL_ADDRESS)


@dataclass(frozen=True)
class AlertChoice:
    """What the form asks for: no alert (threshold None), or an amount and a way."""

    threshold: Decimal | None = None
    channel: str | None = None
    email: str | None = None


def read(form: Any, currency: str, offered: tuple[str, ...], has_number: bool) -> AlertChoice:
    """The choice in the Settings form (fields alert_below, alert_by, alert_email); Invalid,
    in a sentence and on its field, for what cannot be kept."""
    raw = " ".join(str(form.get("alert_below") or "").split())
    if not raw:
        return AlertChoice()
    threshold = read_amount(raw, currency)
    channel = form.get("alert_by") or ""
    if channel not in offered:
        raise Invalid("Choose how we should tell you: by e-mail or by SMS.", field="alert_by")
    if channel == alerts.SMS:
        if not has_number:
            raise Invalid(
                "Add a number of yours first: the SMS goes to your default callback number.",
                field="alert_by",
            )
        return AlertChoice(threshold, channel)
    address = str(form.get("alert_email") or "").strip()
    if not address:
        raise Invalid("Type the e-mail address the alert should go to.", field="alert_email")
    if len(address) > alerts.MAX_EMAIL or not _EMAIL.fullmatch(address):
        raise Invalid(
            "That does not look like an e-mail address: it needs a name, an @ and a domain, "
            "such as you@example.com.",
            field="alert_email",
        )
    return AlertChoice(threshold, channel, address)


def read_amount(raw: str, currency: str) -> Decimal:
    """An amount of money typed as 5, 2.50 or 2,50, more than 0, in the currency's decimals."""
    try:
        value = (
            Decimal(raw.replace(",", ".")) if re.fullmatch(r"[0-9]+([.,][0-9]+)?", raw) else None
        )
    except InvalidOperation:
        value = None
    if value is None:
        raise Invalid("Write the amount as a number, such as 5 or 2.50.", field="alert_below")
    places = minor_units(currency)
    if value <= 0 or value > LARGEST:
        raise Invalid(
            f"The amount must be more than 0 and at most {amount(LARGEST, currency)}.",
            field="alert_below",
        )
    if -value.as_tuple().exponent > places:
        decimals = f"{places} decimal{'s' if places != 1 else ''}" if places else "no decimals"
        raise Invalid(f"Amounts in {currency} have {decimals}.", field="alert_below")
    return value


def store(account_id: int, choice: AlertChoice) -> None:
    Account.update(
        low_balance_alert=choice.threshold,
        low_balance_alert_by=choice.channel,
        alert_email=choice.email,
    ).where(Account.id == account_id).execute()


def describe(account_id: int, settings: Any) -> dict[str, Any]:
    """The account's alert as the Settings form shows it, with the ways this installation
    offers (`alerts.channels_offered`)."""
    account = Account.get_by_id(account_id)
    return {
        "threshold": account.low_balance_alert,
        "channel": account.low_balance_alert_by,
        "email": account.alert_email or "",
        "alerted_at": account.low_balance_alerted_at,
        "offered": alerts.channels_offered(settings),
        "number": account.default_callback_number,
        "currency": account.currency,
        "balance": account.balance,
    }
