"""The dialer of a portal run alone (`esl-callback web`): serve's, over its operator API.

The dialer lives in `esl-callback serve`, next to the FreeSWITCH connections. A portal run in
another process (or on another host) on the same database hands every call to that serve at
`web.controller_url`, signed as the operator with `web.secret` (`esl_callback.operator_client`):

* `start_callback` -> `POST /operator/requests` (trigger `web`: serve checks it again, exactly
  as for its own portal, and starts it);
* `cancel` -> `POST /operator/requests/{id}/cancel`;
* `verify_number` -> `POST /operator/numbers/verifications/{id}/call`: the portal has stored the
  verification (with its code) in the shared database, serve places the call.

Live status: for each request it started (or a verification call), a greenlet follows serve's
status stream (`GET /operator/requests/{id}/events`) and calls `listeners` at each `status`
event, until the stream's `end`; the portal's own `StatusHub` then reads the fresh snapshot from
the database. Nothing polls the database.

When serve cannot be reached (or refuses this portal's credential), placing a call answers 503
("calls cannot be placed right now") and the log says what the operator must check; pages that
need no call (history, phone book, payments, settings) keep working.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import Any

import gevent
from gevent.pool import Group

from esl_callback.db import Database
from esl_callback.models import Account, CallbackRequest
from esl_callback.models import NumberVerification as Verification
from esl_callback.operator_client import OperatorClient, Refused, Unreachable
from esl_callback.web.errors import (
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    TooMany,
    Unavailable,
    WebError,
)

log = logging.getLogger(__name__)

CANNOT_CALL = (
    "calls cannot be placed right now: the call controller cannot be reached; the rest of the "
    "portal works, try again in a few minutes"
)
RECONNECTS = 5
RECONNECT_DELAY_SECONDS = 2.0
# serve's refusals passed on to the user as they are (its message is meant for them).
PASSED_ON: dict[int, type[WebError]] = {
    403: Forbidden,
    409: Conflict,
    422: Invalid,
    429: TooMany,
    503: Unavailable,
}


class RemoteDialer:
    """`portal.CallStarter` that places calls through a running `esl-callback serve`."""

    def __init__(self, db: Database, controller_url: str, secret: str) -> None:
        self.db = db
        self.url = controller_url.rstrip("/")
        self.client = OperatorClient(self.url, secret)
        self.listeners: list[Callable[[int], None]] = []
        self.followers: dict[int, gevent.Greenlet] = {}
        self.group = Group()

    # -- CallStarter --------------------------------------------------------------------------

    def start_callback(
        self, account: Account, source: str, destination: str, mode: str, trigger: str = "web"
    ) -> CallbackRequest:
        status = self.ask(
            "start a callback", self.client.start, account.id, source, destination, mode, trigger
        )
        self.follow(status["id"])
        return self.db.run(CallbackRequest.get_by_id, status["id"])

    def cancel(self, request_id: int, reason: str = "cancelled") -> bool:
        self.ask("cancel a callback", self.client.cancel, request_id, reason)
        self.follow(request_id)  # e.g. started before this portal did
        return True

    def verify_number(self, account: Account, number: str, code: str) -> CallbackRequest:
        pending = self.db.run(pending_verification, account.id, number, code)
        called = self.ask("call a number to verify", self.client.call_verification, pending.id)
        self.follow(called["request_id"])
        return self.db.run(CallbackRequest.get_by_id, called["request_id"])

    # -- serve's answers ----------------------------------------------------------------------

    def ask(self, what: str, fn: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
        """serve's answer to one request; its refusals as the portal's errors."""
        try:
            return fn(*args)
        except Unreachable as exc:
            log.error(
                "cannot %s: esl-callback serve at %s (web.controller_url) does not answer (%s); "
                "check that serve is running there with its portal enabled (web.enabled, "
                "web.bind/web.port) and that this host can reach it",
                what,
                self.url,
                exc,
            )
            raise Unavailable(CANNOT_CALL) from None
        except Refused as exc:
            raise self.refusal(what, exc) from None

    def refusal(self, what: str, exc: Refused) -> WebError:
        passed_on = PASSED_ON.get(exc.status)
        if passed_on is not None:
            return passed_on(str(exc), field=exc.field, retry_after=exc.retry_after)
        if exc.status == 401:
            problem = (
                "refused this portal's operator credential; both must use the same web.secret "
                "(and their clocks must agree within a minute)"
            )
        elif exc.status == 404:
            problem = "does not know what this portal asked for; both must use the same database"
        else:
            problem = "failed"
        log.error(
            "cannot %s: esl-callback serve at %s %s: HTTP %s %s",
            what,
            self.url,
            problem,
            exc.status,
            exc,
        )
        return Unavailable(CANNOT_CALL)

    def check(self) -> str | None:
        """None if serve answers this portal's credential; otherwise what is wrong, in words."""
        try:
            self.client.status(0)  # there is no request 0: 404 proves the credential was accepted
        except Unreachable as exc:
            return f"esl-callback serve at {self.url} (web.controller_url) does not answer: {exc}"
        except Refused as exc:
            if exc.status == 404:
                return None
            if exc.status == 401:
                return (
                    f"esl-callback serve at {self.url} refuses this portal's operator credential "
                    f"({exc}); use serve's web.secret"
                )
            return f"esl-callback serve at {self.url} answered HTTP {exc.status}: {exc}"
        return None

    # -- live status --------------------------------------------------------------------------

    def leg_billed_by_switch(self, leg_uuid: str, request_id: int | None) -> None:
        """Nothing to tell: the controller learns of legs billed meanwhile when it reconciles
        (after its next reconnect to the switch)."""

    def follow(self, request_id: int) -> None:
        """Relay serve's status changes of the request to the listeners until it ends."""
        if request_id not in self.followers:
            self.followers[request_id] = self.group.spawn(self.relay, request_id)

    def relay(self, request_id: int) -> None:
        failures = 0
        try:
            while True:
                try:
                    with contextlib.closing(self.client.events(request_id)) as events:
                        for name, _data in events:
                            if name == "status":
                                failures = 0
                                self.notify(request_id)
                            elif name == "end":
                                return
                    raise Unreachable("the status stream ended early")
                except (Unreachable, Refused) as exc:
                    failures += 1
                    if isinstance(exc, Refused) or failures > RECONNECTS:
                        log.warning(
                            "lost the live status from esl-callback serve at %s (%s); pages "
                            "show the request's state when reloaded",
                            self.url,
                            exc,
                            extra={"request_id": request_id},
                        )
                        return
                    gevent.sleep(RECONNECT_DELAY_SECONDS)
        finally:
            self.followers.pop(request_id, None)
            self.notify(request_id)  # whatever happened, one last fresh look

    def notify(self, request_id: int) -> None:
        for listener in self.listeners:
            try:
                listener(request_id)
            except Exception:
                log.exception("status listener failed", extra={"request_id": request_id})

    def close(self) -> None:
        """Stop following (at shutdown); serve goes on with the calls."""
        self.group.kill(block=True, timeout=2)


def pending_verification(account_id: int, number: str, code: str) -> Verification:
    """The verification `verification.start` just stored (run through Database.run)."""
    found = (
        Verification.select()
        .where(
            Verification.account == account_id,
            Verification.number == number,
            Verification.code == code,
            Verification.status == Verification.PENDING,
        )
        .order_by(Verification.id.desc())
        .first()
    )
    if found is None:
        raise NotFound(f"no pending verification of {number}; start a new one")
    return found
