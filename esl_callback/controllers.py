"""The controllers sharing one database: who is alive, and which calls each one owns.

Every `serve` registers under an id (`controller.id`, default host:outbound port) and renews
its lease with a heartbeat; one whose heartbeat is older than its lease is dead. A request
belongs to the controller that stored it (`callback_request.controller`). A controller touches
only what is its own, what no one owns (stored before owners existed), or what a dead controller
left: such requests are claimed in one conditional UPDATE, so two survivors never both take one.

SQLite is the one-controller database: a second controller on it is refused at start.
Each registration raises the row's epoch; a heartbeat that finds another epoch means another
process took the id over, and the old one must stop acting (`LeaseLost`).
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta

import peewee

from esl_callback.callback import requests
from esl_callback.db import database_proxy, utcnow
from esl_callback.models import CallbackRequest, Controller

log = logging.getLogger(__name__)


class ControllerConflict(Exception):
    """This controller may not start beside the ones already running; the message says why
    and what to do."""


class LeaseLost(Exception):
    """Another process registered under this controller's id (a newer epoch)."""


@dataclass(frozen=True)
class Identity:
    """Who this process is among the controllers: its id, the epoch of its registration and
    how long its heartbeat stays valid."""

    id: str
    epoch: int
    lease_seconds: int
    # SQLite: the only controller; no one takes its calls over, so a lease that ran out while
    # the database could not be reached is simply renewed.
    alone: bool = False


def default_id(outbound_port: int) -> str:
    """host:port of the outbound socket: unique per process on a machine, as the port is."""
    return f"{socket.gethostname()}:{outbound_port}"


def alive_clause(now: datetime) -> peewee.Expression:
    """The controllers whose lease has not run out (and that did not stop)."""
    return Controller.stopped_at.is_null() & (Controller.lease_until > now)


def register(controller_id: str, lease_seconds: int, sqlite: bool) -> Identity:
    """Take `controller_id` for this process (a new epoch), refusing to run beside a live
    controller on SQLite, or beside a live process that holds the same id."""
    now = utcnow()
    host, pid = socket.gethostname(), os.getpid()
    with database_proxy.atomic():
        others = list(Controller.select().where(Controller.id != controller_id, alive_clause(now)))
        if sqlite and others:
            names = ", ".join(f"{c.id} (pid {c.pid} on {c.host})" for c in others)
            raise ControllerConflict(
                f"another controller uses this SQLite database: {names}. SQLite serves one "
                "controller; to run several, move the database to PostgreSQL "
                "(database.url: postgresql://...), or stop the other one"
            )
        row = Controller.get_or_none(Controller.id == controller_id)
        if row is not None and _held_elsewhere(row, now, host, pid):
            raise ControllerConflict(
                f"controller id {controller_id} is held by pid {row.pid} on {row.host} (lease "
                f"until {row.lease_until:%H:%M:%S} UTC): give each serve its own controller.id"
            )
        epoch = 1 if row is None else row.epoch + 1
        values = {
            "host": host,
            "pid": pid,
            "epoch": epoch,
            "lease_seconds": lease_seconds,
            "started_at": now,
            "heartbeat_at": now,
            "lease_until": now + timedelta(seconds=lease_seconds),
            "stopped_at": None,
        }
        if row is None:
            Controller.create(id=controller_id, **values)
        else:
            Controller.update(**values).where(Controller.id == controller_id).execute()
    log.info("running as controller %s (epoch %d, lease %d s)", controller_id, epoch, lease_seconds)
    return Identity(controller_id, epoch, lease_seconds, alone=sqlite)


def _held_elsewhere(row: Controller, now: datetime, host: str, pid: int) -> bool:
    """Whether a live process other than this one holds the row: its lease runs, and it is on
    another host or its pid still runs here (a kill -9'd predecessor's pid is gone)."""
    if row.stopped_at is not None or row.lease_until <= now or row.pid == pid:
        return False
    return row.host != host or _pid_running(row.pid)


def _pid_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def heartbeat(identity: Identity) -> None:
    """Renew the lease; LeaseLost if it ran out meanwhile (the others may have taken over this
    controller's calls) or another process registered under the same id."""
    now = utcnow()
    held = (Controller.id == identity.id) & (Controller.epoch == identity.epoch)
    if not identity.alone:
        held &= Controller.stopped_at.is_null() & (Controller.lease_until > now)
    renewed = (
        Controller.update(
            heartbeat_at=now, lease_until=now + timedelta(seconds=identity.lease_seconds)
        )
        .where(held)
        .execute()
    )
    if not renewed:
        raise LeaseLost(
            f"controller {identity.id} lost its lease (it ran out, or another process "
            "registered under this id): other controllers may own its calls now"
        )


def unregister(identity: Identity) -> None:
    """A clean stop: the lease ends now, so survivors may take what is left at once."""
    now = utcnow()
    Controller.update(stopped_at=now, lease_until=now).where(
        Controller.id == identity.id, Controller.epoch == identity.epoch
    ).execute()


def orphaned_owners(controller_id: str) -> set[str]:
    """The dead controllers that left live requests (whose events a survivor must follow
    before it claims them)."""
    alive = Controller.select(Controller.id).where(alive_clause(utcnow()))
    return {
        row.controller
        for row in CallbackRequest.select(CallbackRequest.controller)
        .where(
            CallbackRequest.state.in_(requests.LIVE),
            CallbackRequest.controller.is_null(False),
            CallbackRequest.controller != controller_id,
            CallbackRequest.controller.not_in(alive),
        )
        .distinct()
    }


def claim_orphaned(controller_id: str) -> list[int]:
    """Take over the live requests of dead controllers: the ids of those now ours.

    One conditional UPDATE per request (owner still the dead one), so when two survivors race,
    each request goes to exactly one of them.
    """
    now = utcnow()
    alive = Controller.select(Controller.id).where(alive_clause(now))
    candidates = [
        (row.id, row.controller)
        for row in CallbackRequest.select(CallbackRequest.id, CallbackRequest.controller).where(
            CallbackRequest.state.in_(requests.LIVE),
            CallbackRequest.controller.is_null(False),
            CallbackRequest.controller != controller_id,
            CallbackRequest.controller.not_in(alive),
        )
    ]
    claimed = []
    for request_id, owner in candidates:
        moved = (
            CallbackRequest.update(controller=controller_id)
            .where(CallbackRequest.id == request_id, CallbackRequest.controller == owner)
            .execute()
        )
        if moved:
            claimed.append(request_id)
    if claimed:
        log.warning(
            "controller %s took over %d live requests of dead controllers: %s",
            controller_id,
            len(claimed),
            ", ".join(map(str, claimed)),
        )
    return claimed


def ours(query: peewee.Select, controller_id: str | None) -> peewee.Select:
    """`query` (of requests) narrowed to those this controller may act on: its own and those
    owned by no controller; every request when it has no id (a tool, a test's dialer)."""
    if controller_id is None:
        return query
    return query.where(
        CallbackRequest.controller.is_null() | (CallbackRequest.controller == controller_id)
    )


def owner_of(request_id: int) -> str | None:
    """The controller that owns a request (None: no one, or no such request)."""
    return (
        CallbackRequest.select(CallbackRequest.controller)
        .where(CallbackRequest.id == request_id)
        .scalar()
    )


def alive_peers(controller_id: str) -> int:
    """How many controllers besides this one hold a lease now."""
    return Controller.select().where(Controller.id != controller_id, alive_clause(utcnow())).count()


def may_act_on(request_id: int, controller_id: str) -> bool:
    """Whether this controller may act on a request found without a flow (a hangup no flow
    of its own listens to): its own or no one's, or a dead controller's, claimed here."""
    owner = owner_of(request_id)
    if owner is None or owner == controller_id:
        return True
    if Controller.select().where(Controller.id == owner, alive_clause(utcnow())).exists():
        return False
    return bool(
        CallbackRequest.update(controller=controller_id)
        .where(CallbackRequest.id == request_id, CallbackRequest.controller == owner)
        .execute()
    )


@dataclass(frozen=True)
class Listing:
    """A controller as `esl-callback controllers` shows it."""

    id: str
    host: str
    pid: int
    alive: bool
    started_at: datetime
    heartbeat_at: datetime
    stopped_at: datetime | None
    live_requests: int


def listing() -> list[Listing]:
    """Every controller that ever registered, with its live requests."""
    now = utcnow()
    live = dict(
        CallbackRequest.select(CallbackRequest.controller, peewee.fn.COUNT(CallbackRequest.id))
        .where(CallbackRequest.state.in_(requests.LIVE))
        .group_by(CallbackRequest.controller)
        .tuples()
    )
    return [
        Listing(
            c.id,
            c.host,
            c.pid,
            c.stopped_at is None and c.lease_until > now,
            c.started_at,
            c.heartbeat_at,
            c.stopped_at,
            int(live.get(c.id, 0)),
        )
        for c in Controller.select().order_by(Controller.id)
    ]
