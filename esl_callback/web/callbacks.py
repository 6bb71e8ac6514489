"""Starting and cancelling web callbacks, with the abuse protection in front of the dialer.

Before a callback is stored: the account must be active; the source must be one of the account's
own numbers unless the account may use any (`Account.allow_any_source`) or the operator allows it
to everyone (`callback.source_must_be_own_number: false`); the account may start at most
`callback.requests_per_minute` requests a minute and have at most its `max_concurrent_calls`
(default `callback.max_concurrent_calls`) live at once. Billing then authorises the call itself
(destination policy, rates, balance) as for any callback.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from esl_callback.callback import billing, policy
from esl_callback.callback.flow import FlowEnded
from esl_callback.callback.requests import LIVE
from esl_callback.db import utcnow
from esl_callback.models import Account, CallbackRequest, CallerId
from esl_callback.web import history, inputs
from esl_callback.web.auth import CurrentUser
from esl_callback.web.errors import Conflict, Forbidden, Invalid, TooMany, Unavailable, WebError
from esl_callback.web.portal import Portal

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CallbackOrder:
    source: str
    destination: str
    mode: str


def read_order(data: Any, default_source: str | None, rules: Any) -> CallbackOrder:
    """Source (default: the account's callback number), destination and mode from a form/JSON."""
    raw_source = data.get("source") or default_source
    if not raw_source:
        raise Invalid(
            "Choose the number to call you on: your account has no default callback number.",
            field="source",
        )
    source = inputs.number(raw_source, "source", rules)
    destination = inputs.number(data.get("destination"), "destination", rules)
    if source == destination:
        raise Invalid(
            "That is the number we call you on: type the number of the person to call.",
            field="destination",
        )
    return CallbackOrder(source, destination, inputs.mode(data.get("mode")))


def check_account_and_source(account: Account, source: str, settings: Any) -> None:
    """Forbidden unless the account is active and `source` is one of its numbers (or it may
    call from any); the checks of `check_allowed` that a price quote makes too."""
    if not account.is_active:
        raise Forbidden(f"account {account.name} is {account.status}; calls cannot be placed")
    own = CallerId.select().where(CallerId.account == account.id, CallerId.number == source)
    must_own = settings.callback.source_must_be_own_number and not account.allow_any_source
    if must_own and not own.exists():
        raise Forbidden(
            f"source: {source} is not one of your numbers; add it under Settings first",
            field="source",
        )


def check_allowed(account_id: int, source: str, settings: Any) -> Account:
    """The account, if it may start a callback from `source` now (run through Database.run)."""
    account = Account.get_by_id(account_id)
    check_account_and_source(account, source, settings)
    per_minute = settings.callback.requests_per_minute
    recent = (
        CallbackRequest.select()
        .where(
            CallbackRequest.account == account_id,
            CallbackRequest.created_at >= utcnow() - timedelta(minutes=1),
        )
        .count()
    )
    if recent >= per_minute:
        raise TooMany(
            f"at most {per_minute} callbacks a minute; wait a moment and try again",
            retry_after=60,
        )
    at_limit = billing.calls_at_limit(account, settings.callback.max_concurrent_calls)
    if at_limit is not None:
        live, limit = at_limit
        raise TooMany(
            f"{live} of your calls are in progress and the limit is {limit}; wait until one ends",
            retry_after=30,
        )
    return account


def start(portal: Portal, user: CurrentUser, data: Any) -> dict[str, Any]:
    """Check and start a callback; its status snapshot."""
    order = read_order(data, user.default_callback_number, portal.settings.numbers)
    request_id = place(portal, user.account_id, order, f"web user {user.username}")
    return portal.run(history.request_status, user.account_id, request_id)


def place(
    portal: Portal, account_id: int, order: CallbackOrder, who: str, trigger: str = "web"
) -> int:
    """Check that the account may place `order` now and start it (web and operator alike).

    `who` names the one asking, for the log. The id of the request started.
    """
    dialer = portal.require_dialer()
    with portal.account_lock(account_id):
        account = portal.run(check_allowed, account_id, order.source, portal.settings)
        try:
            request = dialer.start_callback(
                account, order.source, order.destination, order.mode, trigger
            )
        except WebError:  # an answer meant for the user (e.g. a portal run alone: serve's)
            raise
        except policy.Refused as exc:  # stored as rejected, with the reason; nothing dialled
            raise refused(exc) from None
        except FlowEnded as exc:  # no switch connected, or too far behind, at this moment
            log.warning("%s: the callback was not started: %s", who, exc.detail)
            raise Unavailable(f"the call could not be started: {exc.detail}") from exc
        except Exception as exc:
            log.exception("%s: the callback could not be started", who)
            raise Unavailable(f"the call could not be started: {exc}") from exc
    log.info(
        "%s started callback %s -> %s (%s)",
        who,
        order.source,
        order.destination,
        order.mode,
        extra={"request_id": request.id},
    )
    return request.id


def refused(exc: policy.Refused) -> Forbidden:
    """The dial policy's refusal as the API answers it: 403, its reason as the error code."""
    error = Forbidden(exc.detail, field=exc.field)
    error.code = exc.reason.value
    return error


def cancel(portal: Portal, user: CurrentUser, request_id: int) -> dict[str, Any]:
    """Hang up both legs of one of the user's live requests; its status snapshot."""
    hang_up(portal, user.account_id, request_id, f"web user {user.username}")
    return portal.run(history.request_status, user.account_id, request_id)


def hang_up(
    portal: Portal, account_id: int, request_id: int, who: str, reason: str | None = None
) -> None:
    """Hang up both legs of one of the account's live requests (`who` asks, for the log).

    `reason` is stored with the request (default: cancelled by `who`).
    """
    request = portal.run(history.owned_request, account_id, request_id)
    if request.state not in LIVE:
        raise Conflict(f"callback {request_id} has already ended ({request.state})")
    dialer = portal.require_dialer()
    if not dialer.cancel(request_id, reason or f"cancelled by {who}"):
        raise Conflict(f"callback {request_id} is not being handled by this server")
    log.info("%s cancelled the callback", who, extra={"request_id": request_id})
