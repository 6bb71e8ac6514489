"""Callback requests: their states, the allowed transitions, and persistence of each step.

A request moves forward only along `TRANSITIONS`; each move is a conditional UPDATE on the state
it leaves, so two handlers racing on the same request (a hangup and an answer, say) can never both
win. Terminal states stamp `ended_at`.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from esl_callback.db import database_proxy, utcnow
from esl_callback.models import Account, CallbackRequest, Leg


class State(StrEnum):
    QUEUED = "queued"  # stored; waiting for the callback delay
    CALLING_SOURCE = "calling_source"  # leg A originated
    IN_IVR = "in_ivr"  # leg A answered; collecting PIN / destination
    CALLING_DESTINATION = "calling_destination"  # leg B originated
    BRIDGED = "bridged"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    REJECTED = "rejected"  # the trigger was refused; nobody is called


TERMINAL = frozenset({State.COMPLETED, State.FAILED, State.CANCELLED, State.REJECTED})
LIVE = tuple(s.value for s in State if s not in TERMINAL)

_ENDINGS = {State.FAILED, State.CANCELLED}
TRANSITIONS: dict[State, frozenset[State]] = {
    State.QUEUED: frozenset({State.CALLING_SOURCE, State.CALLING_DESTINATION, *_ENDINGS}),
    State.CALLING_SOURCE: frozenset(
        {State.QUEUED, State.IN_IVR, State.CALLING_DESTINATION, State.BRIDGED, *_ENDINGS}
    ),
    # A number verification ends in the IVR: the callee keyed the code.
    State.IN_IVR: frozenset({State.CALLING_DESTINATION, State.COMPLETED, *_ENDINGS}),
    State.CALLING_DESTINATION: frozenset(
        {State.IN_IVR, State.CALLING_SOURCE, State.BRIDGED, *_ENDINGS}
    ),
    State.BRIDGED: frozenset({State.COMPLETED, State.FAILED}),
}


class InvalidTransition(RuntimeError):
    """The request is not in a state from which this step is allowed (or it already ended)."""


def create(
    *,
    trigger: str,
    method: str,
    account: Account | None,
    state: State = State.QUEUED,
    **fields: Any,
) -> CallbackRequest:
    """Store a new request (a rejected trigger is stored too, with its cause)."""
    now = utcnow()
    extra = {"ended_at": now} if state in TERMINAL else {}
    return CallbackRequest.create(
        trigger=trigger,
        method=method,
        account=account,
        state=state.value,
        created_at=now,
        updated_at=now,
        **extra,
        **fields,
    )


def advance(request_id: int, new_state: State, **fields: Any) -> CallbackRequest:
    """Move a request to `new_state` (and set `fields`) if the transition is allowed."""
    with database_proxy.atomic():
        # Only the state: building the SQL for every column costs more than running it.
        row = CallbackRequest.select(CallbackRequest.state).where(CallbackRequest.id == request_id)
        current = State(row.get().state)
        if new_state not in TRANSITIONS.get(current, frozenset()):
            raise InvalidTransition(f"request {request_id}: {current} -> {new_state} not allowed")
        now = utcnow()
        values: dict[str, Any] = {"state": new_state.value, "updated_at": now, **fields}
        if new_state in TERMINAL:
            values["ended_at"] = now
        updated = (
            CallbackRequest.update(values)
            .where(CallbackRequest.id == request_id, CallbackRequest.state == current.value)
            .execute()
        )
        if updated != 1:
            raise InvalidTransition(f"request {request_id} changed state concurrently")
    return CallbackRequest.get_by_id(request_id)


def finish(request_id: int, new_state: State, **fields: Any) -> CallbackRequest | None:
    """Like `advance` to a terminal state, but a request that already ended is left alone."""
    try:
        return advance(request_id, new_state, **fields)
    except InvalidTransition:
        return None


def live() -> list[CallbackRequest]:
    """Requests not yet in a terminal state, oldest first."""
    return list(
        CallbackRequest.select()
        .where(CallbackRequest.state.in_(LIVE))
        .order_by(CallbackRequest.created_at)
    )


def legs_of(request_id: int) -> list[Leg]:
    return list(Leg.select().where(Leg.request == request_id).order_by(Leg.created_at, Leg.id))
