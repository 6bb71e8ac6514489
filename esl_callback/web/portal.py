"""What every view needs: the settings, the database, the dialer and the status hub."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from flask import Flask, current_app
from gevent import Greenlet
from gevent.lock import Semaphore
from gevent.pool import Group

from esl_callback.callback.status import StatusHub
from esl_callback.db import Database
from esl_callback.models import Account, CallbackRequest
from esl_callback.web.errors import Unavailable, WebError

T = TypeVar("T")
EXTENSION = "esl_callback"


class CallStarter(Protocol):
    """The part of `callback.dialer.Dialer` the portal uses."""

    listeners: list[Callable[[int], None]]

    def start_callback(
        self, account: Account, source: str, destination: str, mode: str, trigger: str = "web"
    ) -> CallbackRequest: ...

    def cancel(self, request_id: int, reason: str = "cancelled") -> bool: ...

    def follow(self, request_id: int) -> None:
        """Make sure the live request's changes reach `listeners` (a page is watching it)."""

    def verify_number(self, account: Account, number: str, code: str) -> CallbackRequest: ...

    def leg_billed_by_switch(self, leg_uuid: str, request_id: int | None) -> None:
        """A leg was billed from the switch's CDR (web/switch_cdr_api.py) before its hangup
        reached the dialer, if it ever does."""


@dataclass
class Portal:
    """The application's collaborators, kept on the Flask app."""

    settings: Any  # config.Settings
    db: Database
    dialer: CallStarter | None
    hub: StatusHub
    _account_locks: dict[int, Semaphore] = field(default_factory=dict)
    # Work a request leaves behind (replies to SMS gateways): the stop waits for it, then ends it.
    _background: Group = field(default_factory=Group)

    def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Database work, off the event loop (see `Database.run`).

        A WebError (an expected answer such as "not found") comes back as a value and is raised
        here, so the database thread does not report it as a crash.
        """
        outcome = self.db.run(_capture, fn, args, kwargs)
        if isinstance(outcome, WebError):
            raise outcome
        return outcome

    def require_dialer(self) -> CallStarter:
        if self.dialer is None:
            raise Unavailable(
                "calls cannot be placed right now: the portal is running without a connection "
                "to the telephone switch"
            )
        return self.dialer

    def account_lock(self, account_id: int) -> Semaphore:
        """Serialises the checks and the start of one account's calls in this process."""
        return self._account_locks.setdefault(account_id, Semaphore())

    def spawn(self, fn: Callable[..., Any], *args: Any) -> Greenlet:
        """Run `fn(*args)` after the response, in a greenlet that `stop` waits for or ends."""
        return self._background.spawn(fn, *args)

    def stop(self, timeout: float) -> None:
        """Let what `spawn` started finish for up to `timeout` seconds, then kill the rest
        (GreenletExit: each closes what it had open and may record that it was cut short)."""
        self._background.join(timeout)
        self._background.kill(block=True, timeout=timeout)


def _capture(fn: Callable[..., T], args: tuple, kwargs: dict) -> T | WebError:
    try:
        return fn(*args, **kwargs)
    except WebError as exc:
        return exc


def portal() -> Portal:
    """The portal of the current Flask app."""
    return portal_of(current_app)


def portal_of(app: Flask) -> Portal:
    """The portal of a Flask app made by `create_app`."""
    return app.extensions[EXTENSION]
