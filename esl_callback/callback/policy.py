"""THE place that says whether a number may be dialled, for which leg, and why not.

Every number the platform dials passes here before anything is stored or originated: the
destination of every callback, leg A of every trigger (PIN, caller ID, DID, SMS, gateway, web,
CLI), both legs of a simultaneous call, and number-verification calls. The dialer checks again
at each originate, so no path can dial a number this module refuses.

The rules:

* **Prefixes** (`billing.allow_prefixes` / `deny_prefixes`): the longest matching prefix of
  either list decides (`rating.prefix_policy_allows`); they apply to every number dialled, the
  callback leg as well as the destination: a spoofed caller ID of a premium line must not be
  called back.
* **Lockouts**: a number locked out for wrong PINs (`callback.pin_lockout_*`) is not called
  back by any trigger (a call, a gateway phone's report, an SMS) until the window has passed.
* **Unauthenticated legs**: before a PIN is keyed (PIN access, an SMS "CB" that needs the PIN)
  nobody pays for leg A, so it is bounded more tightly: its number must match
  `callback.pin_callback_prefixes` (when set; else the prefixes above), at most
  `callback.max_unauthenticated_calls` such legs are live at once and
  `callback.unauthenticated_calls_per_caller_per_hour` per caller ID. The switch hangs the leg
  up after `callback.pin_deadline_seconds` without a valid PIN (`callback.allowance`).

Refusals are `Refused` exceptions with a machine-readable `reason` (stored as the request's
failure cause) and a `detail` an operator or customer can read.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from enum import StrEnum
from typing import Protocol

from peewee import fn

from esl_callback import lockout
from esl_callback.callback import requests
from esl_callback.callback.rating import prefix_policy_allows
from esl_callback.callback.requests import State
from esl_callback.db import database_proxy, utcnow
from esl_callback.models import CallbackRequest
from esl_callback.statements import Statement

# The key under which a caller ID's wrong PINs are counted (lockout, the IVR and SMS alike).
CALLER_KEY = "cid:{}"
# pg_advisory_xact_lock key serialising the admission of unauthenticated legs (any constant
# that no other lock of this database uses: "esl-cb" in ASCII).
_ADMISSION_LOCK = 0x65736C2D6362


class Purpose(StrEnum):
    """Why a number is dialled."""

    DESTINATION = "destination"  # leg B: the number the customer wants to reach
    CALL_BACK = "call_back"  # leg A of a known account, or a number-verification call
    UNAUTHENTICATED = "unauthenticated"  # leg A before the PIN: paid by nobody yet


class Reason(StrEnum):
    """Why a number is not dialled (the request's failure cause)."""

    DESTINATION_DENIED = "destination_denied"
    CALLBACK_NUMBER_DENIED = "callback_number_denied"
    LOCKED_OUT = "caller_locked_out"
    TOO_MANY_UNAUTHENTICATED = "too_many_unauthenticated_calls"
    CALLER_HOURLY_LIMIT = "caller_hourly_limit"


class Refused(Exception):
    """A number the policy does not dial; `field` names the input at fault (web orders),
    `request_id` the request stored as rejected, once it is."""

    def __init__(
        self,
        reason: Reason,
        detail: str,
        field: str | None = None,
        request_id: int | None = None,
    ) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.field = field
        self.request_id = request_id


class PrefixSettings(Protocol):
    """`billing`'s destination policy."""

    allow_prefixes: Sequence[str]
    deny_prefixes: Sequence[str]


class CallbackLimits(Protocol):
    """`callback`'s bounds on unauthenticated legs."""

    pin_callback_prefixes: Sequence[str]
    pin_lockout_failures: int
    pin_lockout_window_seconds: int
    max_unauthenticated_calls: int
    unauthenticated_calls_per_caller_per_hour: int


class Settings(Protocol):
    billing: PrefixSettings
    callback: CallbackLimits


def destination_allowed(number: str, billing: PrefixSettings) -> bool:
    """Whether the prefix policy lets `number` be dialled (any leg)."""
    return prefix_policy_allows(number, billing.allow_prefixes, billing.deny_prefixes)


def refusal(number: str, purpose: Purpose, settings: Settings) -> Refused | None:
    """Why `number` may not be dialled for `purpose` by the prefix rules; None if it may."""
    if purpose is Purpose.DESTINATION:
        if not destination_allowed(number, settings.billing):
            return Refused(
                Reason.DESTINATION_DENIED,
                f"{number} is denied by the destination policy (billing.allow_prefixes/"
                "deny_prefixes)",
                "destination",
            )
        return None
    if not destination_allowed(number, settings.billing):
        return Refused(
            Reason.CALLBACK_NUMBER_DENIED,
            f"the callback number {number} is denied by the destination policy "
            "(billing.allow_prefixes/deny_prefixes): it is never called back",
            "source",
        )
    pin_prefixes = settings.callback.pin_callback_prefixes
    outside = not any(number.startswith(prefix) for prefix in pin_prefixes)
    if purpose is Purpose.UNAUTHENTICATED and pin_prefixes and outside:
        return Refused(
            Reason.CALLBACK_NUMBER_DENIED,
            f"{number} is not called back before a PIN is keyed: it matches no prefix of "
            "callback.pin_callback_prefixes",
            "source",
        )
    return None


def check(number: str, purpose: Purpose, settings: Settings) -> None:
    """Raise Refused when `number` may not be dialled for `purpose` (prefix rules only)."""
    refused = refusal(number, purpose, settings)
    if refused is not None:
        raise refused


def check_not_locked_out(number: str, settings: Settings) -> None:
    """Raise Refused when wrong PINs from `number` locked it out: a trigger (a call, a
    gateway's report, an SMS) does not call it back until the lockout window has passed."""
    cfg = settings.callback
    if lockout.is_locked(
        "pin",
        (CALLER_KEY.format(number),),
        cfg.pin_lockout_failures,
        cfg.pin_lockout_window_seconds,
    ):
        raise Refused(
            Reason.LOCKED_OUT,
            f"caller ID {number} is locked out after {cfg.pin_lockout_failures} wrong PINs "
            f"(callback.pin_lockout_failures); it is not called back for "
            f"{cfg.pin_lockout_window_seconds} s",
            "source",
        )


def admit_unauthenticated(source: str, settings: Settings) -> None:
    """Raise Refused when an unauthenticated leg A to `source` may not start now.

    Run inside the transaction that stores the request: the admissions are serialised (an
    advisory lock on PostgreSQL; SQLite's BEGIN IMMEDIATE has one writer), so simultaneous
    triggers cannot all pass a limit that only one of them fits under.
    """
    check(source, Purpose.UNAUTHENTICATED, settings)
    cfg = settings.callback
    if database_proxy.for_update:  # PostgreSQL
        database_proxy.execute_sql("SELECT pg_advisory_xact_lock(%s)", (_ADMISSION_LOCK,))
    check_not_locked_out(source, settings)
    (live,) = _UNAUTHENTICATED_LIVE.first()
    if live >= cfg.max_unauthenticated_calls:
        raise Refused(
            Reason.TOO_MANY_UNAUTHENTICATED,
            f"{live} callbacks are waiting for a PIN, the limit is "
            f"{cfg.max_unauthenticated_calls} (callback.max_unauthenticated_calls)",
            "source",
        )
    (recent,) = _UNAUTHENTICATED_RECENT.first(
        source=source, since=utcnow() - timedelta(hours=1), rejected=State.REJECTED
    )
    if recent >= cfg.unauthenticated_calls_per_caller_per_hour:
        raise Refused(
            Reason.CALLER_HOURLY_LIMIT,
            f"{source} was called back {recent} times in the last hour without a PIN, the "
            f"limit is {cfg.unauthenticated_calls_per_caller_per_hour} "
            "(callback.unauthenticated_calls_per_caller_per_hour)",
            "source",
        )


_UNAUTHENTICATED_LIVE = Statement(
    lambda s: CallbackRequest.select(fn.COUNT(CallbackRequest.id)).where(
        CallbackRequest.account.is_null(),
        CallbackRequest.mode == "two_stage",
        CallbackRequest.state.in_(requests.LIVE),
    )
)
_UNAUTHENTICATED_RECENT = Statement(
    lambda s: CallbackRequest.select(fn.COUNT(CallbackRequest.id)).where(
        CallbackRequest.account.is_null(),
        CallbackRequest.mode == "two_stage",
        CallbackRequest.source == s.source,
        CallbackRequest.created_at >= s.since,
        CallbackRequest.state != s.rejected,
    )
)
