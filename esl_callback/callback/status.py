"""Live status of a callback request: a plain-data snapshot, and who wants to hear of changes.

`snapshot(request_id)` reads the request and its legs (CDRs) and says, in words a user reads,
where each leg stands: queued, calling, ringing, early media, answered, bridged, busy, no answer,
failed (with the cause in words), cancelled or stopped (never answered) or hung up (and by
whom), with the bridged duration and the cost; and the whole call in one sentence (`headline`,
see `callback.headline`), naming the other party from the account's phone book.

`StatusHub` is a small in-process publish/subscribe: the dialer's listeners call `publish` with a
request id whenever the request or one of its legs changes; each subscriber (one per open status
stream, e.g. two browser tabs on the same request) gets the id in its own queue and reads a fresh
snapshot. Publishing never blocks and never touches the database.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal
from typing import Any

from gevent.queue import Queue

from esl_callback import contact_names
from esl_callback.callback import causes, headline
from esl_callback.callback.rating import money
from esl_callback.callback.requests import TERMINAL, State
from esl_callback.db import utcnow
from esl_callback.models import Account, CallbackRequest, Leg
from esl_callback.readable_numbers import readable

ROLES = {"a": "source", "b": "destination"}

REQUEST_WORDS = {
    State.QUEUED: "waiting to call",
    State.CALLING_SOURCE: "calling the source",
    State.IN_IVR: "source answered",
    State.CALLING_DESTINATION: "calling the destination",
    State.BRIDGED: "connected",
    State.COMPLETED: "completed",
    State.FAILED: "failed",
    State.CANCELLED: "cancelled",
    State.REJECTED: "rejected",
}

LEG_WORDS = {
    "queued": "queued",
    "not_called": "not called",
    "calling": "calling",
    "ringing": "ringing",
    "early_media": "early media",
    "answered": "answered",
    "bridged": "bridged",
    "busy": "busy",
    "no_answer": "no answer",
    "failed": "failed",
    "hung_up": "hung up",
    "cancelled": "cancelled",
    "stopped": "stopped before it was answered",
}

# The dialer's Leg.state while a leg is up, as the status names it.
_LIVE_LEG_STATES = {
    "dialing": "calling",
    "ringing": "ringing",
    "early_media": "early_media",
    "answered": "answered",
    "bridged": "bridged",
}

# Causes that mean "failed" to a user, even when the dialer ended the request otherwise.
_REQUEST_CAUSE_WORDS = {
    "USER_CANCELLED": "cancelled by you",
    "CALLER_HUNG_UP": "the source hung up",
    "NO_SWITCH": "no telephone switch is connected",
    "CONTROLLER_ERROR": "internal error",
    "CONTROLLER_RESTARTED": "interrupted by a restart",
    "SERVICE_STOPPING": "interrupted: the service was stopping",
    "SWITCH_LOST": "interrupted: the telephone switch was lost",
    "DATABASE_UNREACHABLE": "interrupted: the service could not reach its database",
    "BRIDGE_FAILED": "the two calls could not be connected",
    "WRONG_CODE": "the code keyed was wrong",
    "account_disabled": "the account is disabled",
    "currency_mismatch": "the account cannot be charged in its currency",
    "destination_denied": "calls to this destination are not allowed",
    "no_rate_destination": "no price for this destination",
    "no_rate_leg_a": "no price for the source number",
    "too_many_calls": "too many calls at once",
    "balance_too_low": "balance too low",
    "BALANCE_USED_UP": "the balance ran out",
    "callback_number_denied": "calls to this number are not allowed",
    "caller_locked_out": "locked after too many wrong PINs; try again later",
    "too_many_unauthenticated_calls": "too many callbacks are waiting for a PIN; try again later",
    "caller_hourly_limit": "too many callbacks to this number without a PIN; try again later",
    "PIN_TIMEOUT": "no PIN was keyed in time",
}


def iso(moment: datetime | None) -> str | None:
    """A naive UTC time as ISO 8601 with a Z, for JSON and `<time datetime>`."""
    return None if moment is None else moment.isoformat(timespec="seconds") + "Z"


def amount(value: Decimal | None) -> str | None:
    return None if value is None else str(money(value))


def leg_status(leg: Leg, bridged: bool = False, cancelled: bool = False) -> str:
    """Where one leg stands, as one of LEG_WORDS' keys.

    `bridged`: the request is connected, so an answered leg still up is part of the bridge
    (FreeSWITCH reports CHANNEL_BRIDGE for leg A only). `cancelled`: the request was
    cancelled, so a leg that ended unanswered (not busy) was cancelled. Only a leg that was
    answered is "hung up"; one the service ended while it rang is "stopped".
    """
    ended = leg.billed or leg.hangup_cause is not None or leg.state == "hung_up"
    if not ended:
        status = _LIVE_LEG_STATES.get(leg.state, "calling")
        return "bridged" if bridged and status == "answered" else status
    if leg.answered_at is not None or (leg.billsec or 0) > 0:
        return "hung_up"
    if causes.is_busy(leg.hangup_cause):
        return "busy"
    if causes.declined(leg.hangup_cause, False, leg.hangup_by == "service"):
        return "busy"
    if cancelled:
        return "cancelled"
    if causes.is_no_answer(leg.hangup_cause):
        return "no_answer"
    return "failed" if leg.hangup_cause not in (None, "NORMAL_CLEARING") else "stopped"


def hangup_by_words(leg: Leg) -> str | None:
    """Who hung up: from the SIP disposition (`recv_*`: the leg's phone, `send_*`: the service)
    or as the dialer saw it (`source`, `destination`: that phone; `service`).
    """
    by = leg.hangup_by or ""
    if by.startswith("recv_"):
        return f"the {ROLES.get(leg.leg, 'other')} phone"
    if by.startswith("send_") or by == "service":
        return "the service"
    if by in ROLES.values():
        return f"the {by} phone"
    return None


def describe_leg(leg: Leg, bridged: bool = False, cancelled: bool = False) -> dict[str, Any]:
    """One leg (CDR) as plain data (`bridged`, `cancelled`: see `leg_status`)."""
    status = leg_status(leg, bridged, cancelled)
    return {
        "id": leg.id,
        "leg": leg.leg,
        "role": ROLES.get(leg.leg, leg.leg),
        "number": leg.number,
        "number_display": readable(leg.number),
        "status": status,
        "status_words": LEG_WORDS[status],
        "cause": leg.hangup_cause,
        "cause_words": causes.in_words(leg.hangup_cause) if leg.hangup_cause else None,
        "hangup_by": hangup_by_words(leg),
        "created_at": iso(leg.created_at),
        "answered_at": iso(leg.answered_at),
        "ended_at": iso(leg.ended_at),
        "billsec": leg.billsec,
        "cost": amount(leg.cost) if leg.billed else None,
        "billed": leg.billed,
    }


def placeholder(role: str, number: str | None, live: bool) -> dict[str, Any]:
    """A leg not (yet) originated: queued while the request lives, else never called."""
    status = "queued" if live else "not_called"
    return {
        "id": None,
        "leg": role,
        "role": ROLES[role],
        "number": number,
        "number_display": readable(number),
        "status": status,
        "status_words": LEG_WORDS[status],
        "cause": None,
        "cause_words": None,
        "hangup_by": None,
        "created_at": None,
        "answered_at": None,
        "ended_at": None,
        "billsec": None,
        "cost": None,
        "billed": False,
    }


def bridged_times(legs: list[Leg]) -> tuple[datetime | None, int]:
    """When the latest leg A and leg B were both answered, and for how many seconds.

    The later of the two answers starts the connected call; once a leg has ended, its billsec
    counts from its own answer, so the shorter billsec is the connected duration.
    """
    latest = {leg.leg: leg for leg in legs}
    a, b = latest.get("a"), latest.get("b")
    if a is None or b is None or a.answered_at is None or b.answered_at is None:
        return None, 0
    since = max(a.answered_at, b.answered_at)
    ended = [leg.billsec for leg in (a, b) if leg.billed and leg.billsec is not None]
    if ended:
        return since, min(ended)
    return since, max(int((utcnow() - since).total_seconds()), 0)


def cause_words(cause: str) -> str:
    """Why a request failed or would be refused (a failure cause, a billing refusal or a dial
    policy reason), in the words the portal shows."""
    return _REQUEST_CAUSE_WORDS.get(cause) or causes.in_words(cause)


def request_failure_words(request: CallbackRequest) -> str | None:
    cause = request.failure_cause
    return cause_words(cause) if cause else None


def snapshot_of(
    request: CallbackRequest,
    legs: list[Leg],
    account: Account | None,
    names: dict[str, str] | None = None,
) -> dict:
    """The live status of a request from its rows (see `snapshot`); `names`: the account's
    phone-book names of its numbers (`contact_names.names_of`)."""
    names = names or {}
    live = State(request.state) not in TERMINAL
    bridged = request.state == State.BRIDGED
    cancelled = request.state == State.CANCELLED
    described = [describe_leg(leg, bridged, cancelled) for leg in legs]
    roles_called = {leg.leg for leg in legs}
    numbers = {"a": request.source, "b": request.destination}
    for role in ("a", "b"):
        if role not in roles_called and (numbers[role] or role == "a"):
            described.append(placeholder(role, numbers[role], live))
    bridged_at, duration = bridged_times(legs)
    billed = [leg.cost for leg in legs if leg.billed and leg.cost is not None]
    snap = {
        "id": request.id,
        "mode": request.mode,
        "trigger": request.trigger,
        "state": request.state,
        "state_words": REQUEST_WORDS[State(request.state)],
        "live": live,
        "final": not live and all(leg.billed for leg in legs),
        "source": request.source,
        "destination": request.destination,
        "source_display": readable(request.source),
        "destination_display": readable(request.destination),
        "destination_name": names.get(request.destination or ""),
        "created_at": iso(request.created_at),
        "ended_at": iso(request.ended_at),
        "failure_cause": request.failure_cause,
        "failure_words": request_failure_words(request),
        "failure_detail": request.failure_detail,
        "legs": described,
        "bridged_at": iso(bridged_at),
        # When both phones were answered: the start of the conversation's clock; None before.
        "connected_since": iso(bridged_at),
        "duration_seconds": duration,
        "cost": amount(sum(billed, Decimal(0))) if billed else None,
        "currency": account.currency if account else None,
        "balance": amount(account.balance) if account else None,
        "server_time": iso(utcnow()),
    }
    snap["summary"] = summary_line(snap)
    snap["outcome"] = headline.outcome(snap)
    snap["outcome_words"] = headline.OUTCOME_WORDS[snap["outcome"]]
    snap["headline"] = headline.headline(snap, names)
    return snap


def snapshot(request_id: int) -> dict[str, Any] | None:
    """The live status of a request as JSON-able data, or None if there is no such request.

    Run it through `Database.run`.
    """
    request = CallbackRequest.get_or_none(CallbackRequest.id == request_id)
    if request is None:
        return None
    legs = list(Leg.select().where(Leg.request == request_id).order_by(Leg.created_at, Leg.id))
    account = Account.get_or_none(Account.id == request.account_id) if request.account_id else None
    names = contact_names.names_of(account.id, [request.destination]) if account else {}
    return snapshot_of(request, legs, account, names)


def summary_line(snap: dict[str, Any]) -> str:
    """One line saying where a request stands, e.g. for a terminal or a screen reader."""
    parts = [f"request {snap['id']}: {snap['state_words']}"]
    if snap["failure_words"]:
        parts[0] += f" ({snap['failure_words']})"
    for leg in snap["legs"]:
        words = leg["status_words"]
        if leg["status"] == "failed" and leg["cause_words"]:
            words += f" ({leg['cause_words']})"
        if leg["status"] == "hung_up" and leg["hangup_by"]:
            words += f" by {leg['hangup_by']}"
        parts.append(f"{leg['role']} {leg['number'] or '?'}: {words}")
    if snap["duration_seconds"]:
        parts.append(f"{snap['duration_seconds']} s")
    if snap["cost"] is not None:
        parts.append(f"cost {snap['cost']} {snap['currency'] or ''}".rstrip())
    return " · ".join(parts)


class StatusHub:
    """In-process publish/subscribe of request ids, one queue per subscriber.

    Register `publish` in `Dialer.listeners`. All calls happen in the gevent thread.
    """

    def __init__(self) -> None:
        self._subscribers: dict[int, set[Queue]] = defaultdict(set)

    def publish(self, request_id: int) -> None:
        """Tell every subscriber of `request_id` that it changed."""
        for inbox in list(self._subscribers.get(request_id, ())):
            inbox.put_nowait(request_id)

    @contextmanager
    def subscribe(self, request_id: int) -> Iterator[Queue]:
        """A queue that receives `request_id` at each change, until the block exits."""
        inbox: Queue = Queue()
        self._subscribers[request_id].add(inbox)
        try:
            yield inbox
        finally:
            subscribers = self._subscribers.get(request_id)
            if subscribers is not None:
                subscribers.discard(inbox)
                if not subscribers:
                    del self._subscribers[request_id]

    def subscriber_count(self, request_id: int) -> int:
        return len(self._subscribers.get(request_id, ()))
