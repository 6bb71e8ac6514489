"""Callback requests: their states, the allowed transitions, and persistence of each step.

A request moves only along `TRANSITIONS`; each move is one UPDATE conditional on the states that
may lead to the new one, so whichever of two racing handlers (a hangup and an answer, say) comes
second moves the request on only if the first one's state allows it. Terminal states stamp
`ended_at`. The statements are compiled once (`statements.py`): they run for every call.
"""

from __future__ import annotations

import logging
from enum import StrEnum
from typing import Any

from esl_callback.db import utcnow
from esl_callback.models import Account, CallbackRequest, Leg
from esl_callback.statements import Insert, Slots, Statement

log = logging.getLogger(__name__)


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


# What a request may have been in just before each state (the reverse of TRANSITIONS).
_PREDECESSORS: dict[State, tuple[str, ...]] = {
    state: tuple(sorted(s.value for s, nexts in TRANSITIONS.items() if state in nexts))
    for state in State
}
_INSERT = Insert(CallbackRequest)
_STATE_OF = Statement(
    lambda s: CallbackRequest.select(CallbackRequest.state).where(CallbackRequest.id == s.id)
)
_MOVES: dict[tuple[State, tuple[str, ...]], Statement] = {}


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
    return _INSERT.create(
        trigger=trigger,
        method=method,
        account=account,
        state=state.value,
        created_at=now,
        updated_at=now,
        **extra,
        **fields,
    )


def advance(request_id: int, new_state: State, **fields: Any) -> None:
    """Move a request to `new_state` (and set `fields`) if the transition is allowed.

    One conditional UPDATE on the states that may lead there; only when it changes nothing is
    the current state read, to say why.
    """
    now = utcnow()
    values: dict[str, Any] = {"updated_at": now, **fields}
    if new_state in TERMINAL:
        values["ended_at"] = now
    if _move(new_state, tuple(sorted(values))).execute(id=request_id, **values).rowcount == 1:
        return
    row = _STATE_OF.first(id=request_id)
    if row is None:
        raise CallbackRequest.DoesNotExist(f"no callback request with id {request_id}")
    current = State(row[0])
    if new_state not in TRANSITIONS.get(current, frozenset()):
        raise InvalidTransition(f"request {request_id}: {current} -> {new_state} not allowed")
    raise InvalidTransition(f"request {request_id} changed state concurrently")


def _move(new_state: State, names: tuple[str, ...]) -> Statement:
    """The UPDATE that moves a request to `new_state` and sets the columns `names`."""
    statement = _MOVES.get((new_state, names))
    if statement is None:

        def build(s: Slots) -> Any:
            values = {
                getattr(CallbackRequest, name): s(getattr(CallbackRequest, name)) for name in names
            }
            values[CallbackRequest.state] = new_state.value
            return CallbackRequest.update(values).where(
                CallbackRequest.id == s.id, CallbackRequest.state.in_(_PREDECESSORS[new_state])
            )

        statement = _MOVES[(new_state, names)] = Statement(build)
    return statement


def finish(request_id: int, new_state: State, **fields: Any) -> bool:
    """Like `advance` to a terminal state, but a request that already ended is left alone.

    True when this call ended it. A request still live in a state that does not lead to
    `new_state` is ended as failed instead, and the refusal logged: a request left live would
    count against its account's concurrent calls for ever.
    """
    try:
        advance(request_id, new_state, **fields)
    except InvalidTransition as refused:
        row = _STATE_OF.first(id=request_id)
        if row is None or State(row[0]) in TERMINAL:
            return False
        log.error("%s; ending it as failed", refused)
        advance(
            request_id, State.FAILED, failure_cause="CONTROLLER_ERROR", failure_detail=str(refused)
        )
    return True


def live() -> list[CallbackRequest]:
    """Requests not yet in a terminal state, oldest first."""
    return list(
        CallbackRequest.select()
        .where(CallbackRequest.state.in_(LIVE))
        .order_by(CallbackRequest.created_at)
    )


def live_count(account_id: int) -> int:
    """How many of the account's requests are not yet in a terminal state."""
    return (
        CallbackRequest.select()
        .where(CallbackRequest.account == account_id, CallbackRequest.state.in_(LIVE))
        .count()
    )


def legs_of(request_id: int) -> list[Leg]:
    return list(Leg.select().where(Leg.request == request_id).order_by(Leg.created_at, Leg.id))
