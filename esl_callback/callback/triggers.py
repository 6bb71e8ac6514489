"""What a trigger means: which account, which method, which number to call back.

A trigger is a call that reached an access number or a personal DID (through FreeSWITCH or a
gateway phone), or an SMS. `identify` answers with a `Trigger` or raises `TriggerRefused` with a
reason an operator can read in the request list.
"""

from __future__ import annotations

from dataclasses import dataclass

from esl_callback import numbers
from esl_callback.models import AccessNumber, Account, CallerId, Did
from esl_callback.statements import Statement

# What switches and carriers put in the caller ID when the caller withheld it.
WITHHELD = frozenset({"", "anonymous", "unknown", "private", "restricted", "0000000000"})


@dataclass(frozen=True)
class Trigger:
    """A recognised trigger. `account` is None for PIN access (the PIN identifies it later)."""

    method: str  # "pin", "ani" or "did"
    account: Account | None
    callback_number: str
    called_number: str


# The method of a refused trigger whose number is neither an access number nor a DID.
UNKNOWN_METHOD = "unknown"


class TriggerRefused(Exception):
    """The trigger is not honoured; `reason` is a short machine-readable word, `detail` prose,
    `method` the access path that refused it (pin, ani, did, or UNKNOWN_METHOD)."""

    def __init__(
        self,
        reason: str,
        detail: str,
        account: Account | None = None,
        method: str = UNKNOWN_METHOD,
    ) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.account = account
        self.method = method


def caller_number(raw: str, rules: numbers.NumberRules, method: str = UNKNOWN_METHOD) -> str:
    """The caller's number in E.164 digits, or TriggerRefused when withheld or unusable."""
    if raw.strip().lower() in WITHHELD:
        raise TriggerRefused("withheld_caller_id", "the caller ID was withheld", method=method)
    try:
        return numbers.normalise(raw, rules, what="caller ID")
    except numbers.InvalidNumber as exc:
        raise TriggerRefused("invalid_caller_id", str(exc), method=method) from exc


def identify(called: str, caller: str, rules: numbers.NumberRules) -> Trigger:
    """Recognise a call from `caller` to `called` (both as the switch reported them)."""
    try:
        called_number = numbers.normalise(called, rules, what="called number")
    except numbers.InvalidNumber as exc:
        raise TriggerRefused("unknown_number", str(exc)) from exc

    did = _DID.object(Did, number=called_number)
    if did is not None:
        account = active(_ACCOUNT.object(Account, id=did.account_id), "did")
        target = did.callback_number or account.default_callback_number
        if not target:
            raise TriggerRefused(
                "no_callback_number",
                f"DID {called_number}: account {account.name} has no callback number",
                account,
                "did",
            )
        return Trigger("did", account, target, called_number)

    access = _ACCESS_NUMBER.object(AccessNumber, number=called_number)
    if access is None:
        raise TriggerRefused("unknown_number", f"{called_number} is no access number or DID")
    source = caller_number(caller, rules, access.method)
    if access.method == AccessNumber.PIN:
        return Trigger("pin", None, source, called_number)

    owner = _CALLER_ID.object(CallerId, number=source)
    if owner is None:
        raise TriggerRefused(
            "unknown_caller_id", f"caller ID {source} belongs to no account", method="ani"
        )
    account = active(_ACCOUNT.object(Account, id=owner.account_id), "ani")
    target = source
    if account.callback_to_default and account.default_callback_number:
        target = account.default_callback_number
    return Trigger("ani", account, target, called_number)


_DID = Statement(lambda s: Did.select().where(Did.number == s.number))
_ACCESS_NUMBER = Statement(lambda s: AccessNumber.select().where(AccessNumber.number == s.number))
_CALLER_ID = Statement(lambda s: CallerId.select().where(CallerId.number == s.number))
_ACCOUNT = Statement(lambda s: Account.select().where(Account.id == s.id))


def active(account: Account, method: str) -> Account:
    """The account, or TriggerRefused (by `method`) when it is disabled."""
    if not account.is_active:
        raise TriggerRefused(
            "account_disabled", f"account {account.name} is disabled", account, method
        )
    return account
