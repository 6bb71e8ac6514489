"""The dialer: from a stored request to two connected legs, and every way that can go wrong.

Each live request has one `CallFlow`: a greenlet with an inbox. Channel events of its legs (from
every node's inbound connection, routed by UUID), the outcome of its originate jobs and leg A's
controlled session (when leg A answers and FreeSWITCH connects it to our outbound server) all
arrive in that inbox, so the flow reads as a plain sequence of steps:

* two-stage (phone triggers): call A with `&socket(...)`; on A the IVR asks for the PIN (PIN
  method) and the destination; B is originated with `&park()` while A hears ringback; when B
  answers, `uuid_bridge A B` and `sched_hangup` at the duration the balance pays for.
* source first (web, SMS): the same without the prompts.
* simultaneous (web): A and B both with `&park()`, bridged when both have answered.

Database work goes through `Database.run` (never blocking other calls); command strings come
from `switch.commands` only. CDRs are closed from CHANNEL_HANGUP_COMPLETE by `close_leg`, also for
legs whose flow is gone (after a restart), so no leg is billed twice or left unbilled.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import uuid as uuidlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import gevent
from gevent.event import Event
from gevent.queue import Empty, Queue

from esl_callback import accounts, lockout, metrics, numbers
from esl_callback.callback import billing, causes, requests, triggers
from esl_callback.callback.ivr import CODE_VARIABLE, DESTINATION_VARIABLE, PIN_VARIABLE, Ivr
from esl_callback.callback.requests import State
from esl_callback.callback.status import ROLES
from esl_callback.db import UNREACHABLE, Database, database_proxy, in_words, utcnow
from esl_callback.models import Account, CallbackRequest, Leg
from esl_callback.statements import ListStatement, Statement
from esl_callback.switch import commands
from esl_callback.switch.connection import ESLError
from esl_callback.switch.outbound import ChannelGone

log = logging.getLogger(__name__)

CHANNEL_VARIABLE_PREFIX = "callback_"
# Extra seconds we wait beyond the originate timeout before declaring a leg lost.
GRACE_SECONDS = 10
# How a trigger is hung up when no node can take its callback now (SIP 503: try again later).
TRY_LATER_CAUSE = "NORMAL_TEMPORARY_FAILURE"


class Job(Protocol):
    """A `bgapi` job: its BACKGROUND_JOB body once it arrives (CommandTimeout if late)."""

    def wait(self, timeout: float | None = None) -> str: ...


class Node(Protocol):
    """One FreeSWITCH node as the dialer uses it (switch.connection.InboundConnection)."""

    name: str

    def api(self, command: str, timeout: float | None = None) -> str: ...

    def api_all(self, commands: list[str], timeout: float | None = None) -> list[str]: ...

    def bgapi(self, command: str) -> Job: ...

    def queued_events(self) -> int: ...


class Router(Protocol):
    """switch.router.EventRouter: events of a call's channels go to the call's handler."""

    def register(self, key: str, handler: Callable[[Any, str], None]) -> None: ...

    def unregister(self, key: str) -> None: ...

    def bind(self, uuid: str, key: str) -> None: ...


class Session(Protocol):
    """Leg A under our control (switch.outbound.OutboundChannel)."""

    uuid: str

    def execute(self, app: str, arg: str = "", timeout: float | None = None) -> Any: ...

    def execute_async(self, app: str, arg: str = "") -> Any: ...


class FlowEnded(Exception):
    """The flow cannot go on; `state` and `cause` say how the request ends."""

    def __init__(self, state: State, cause: str | None, detail: str = "") -> None:
        super().__init__(f"{state}: {cause} {detail}".strip())
        self.state = state
        self.cause = cause
        self.detail = detail


@dataclass
class LegState:
    """What the flow knows of one of its legs, from channel events."""

    role: str  # "a" or "b"
    uuid: str
    number: str
    node: str
    answered: bool = False
    ended: bool = False
    closed: bool = False  # CHANNEL_HANGUP_COMPLETE seen and billed
    rated: bool = False  # its CDR row has the authorised rate (billing.open_leg)
    cause: str | None = None
    hears_ringback: bool = False
    answered_at: datetime | None = None
    hung_up_by_us: bool = False  # the service ended it (uuid_kill, the IVR's hangup)
    hung_up_by: str | None = None  # who ended it, as CHANNEL_HANGUP showed (see who_hung_up)


@dataclass(frozen=True)
class Plan:
    """What a flow must do: known before it starts."""

    request_id: int
    mode: str  # two_stage | source_first | simultaneous
    method: str
    source: str
    destination: str | None
    account_id: int | None
    node: Node
    delay: float = 0.0
    code: str | None = None  # what the callee must key in a number verification


@dataclass
class Inbox:
    """One message for a flow: a channel event, a job outcome, or leg A's session."""

    kind: str  # "event" | "job" | "session" | "cancel" | "lost"
    uuid: str = ""
    event: Any = None
    body: str = ""
    session: Session | None = None
    reason: str = ""


STOPPING_CAUSE = "SERVICE_STOPPING"
LOST_CAUSE = "LOST_WHILE_DISCONNECTED"  # a leg found gone after a reconnect
SWITCH_LOST_CAUSE = "SWITCH_LOST"  # the switch went away in the middle of a call
UNREACHABLE_CAUSE = "DATABASE_UNREACHABLE"  # the database could not store a step


def event_variable(event: Any, name: str) -> str | None:
    return event.get(f"variable_{name}")


def uepoch(value: str | None) -> datetime | None:
    """A FreeSWITCH microsecond epoch as naive UTC; None for 0 or missing."""
    if not value or not value.isdigit() or int(value) == 0:
        return None
    return datetime.fromtimestamp(int(value) / 1e6, UTC).replace(tzinfo=None)


def hangup_from_event(event: Any, hung_up_by: str | None = None) -> billing.Hangup:
    """A leg's hangup as billing needs it, from its CHANNEL_HANGUP_COMPLETE (who hung up:
    the SIP disposition, else `hung_up_by`).
    """
    billsec = event_variable(event, "billsec") or "0"
    return billing.Hangup(
        uuid=event.get("Unique-ID"),
        cause=event.get("Hangup-Cause") or "NORMAL_CLEARING",
        billsec=int(billsec) if billsec.isdigit() else 0,
        answered_at=uepoch(event_variable(event, "answer_uepoch")),
        ended_at=uepoch(event_variable(event, "end_uepoch")),
        hangup_by=event_variable(event, "sip_hangup_disposition") or hung_up_by,
    )


class Dialer:
    """Starts and runs callback flows; the one place that originates and bridges legs."""

    def __init__(
        self,
        db: Database,
        settings: Any,
        nodes: Iterable[Node],
        router: Router,
    ) -> None:
        self.db = db
        self.settings = settings
        self.nodes = list(nodes)
        self.router = router
        self.flows: dict[int, CallFlow] = {}
        self.listeners: list[Callable[[int], None]] = []
        # Node name -> its FreeSWITCH Core-UUID, learnt at each connect: a trigger's channel
        # data names the switch it came from, and its callback must go out through that one.
        self.core_uuids: dict[str, str] = {}
        self.stopping = False  # set at shutdown: flows originate no new leg
        # Bridged calls found up after a restart, whose flow is gone: request id -> leg UUID
        # -> its node, until their CDRs are closed (counted live, and can be hung up).
        self.adopted: dict[int, dict[str, Node]] = {}

    # -- entry points ---------------------------------------------------------------------

    def handle_trigger(self, session: Any, data: Any) -> None:
        """A call reached an access number or a DID: refuse it unanswered and call back."""
        with contextlib.suppress(FlowEnded):  # turned away: logged, the caller told to retry
            self.trigger_call(
                data.get("Caller-Caller-ID-Number") or "",
                data.get("Caller-Destination-Number") or "",
                trigger_uuid=data.get("Unique-ID"),
                core_uuid=data.get("Core-UUID"),
                reject=lambda cause: self._reject(session, cause),
            )

    def trigger_call(
        self,
        caller: str,
        called: str,
        *,
        trigger: str = "phone",
        trigger_uuid: str | None = None,
        core_uuid: str | None = None,
        reject: Callable[[str], None] | None = None,
    ) -> CallbackRequest:
        """The one trigger path: `caller` called `called` (via FreeSWITCH or a gateway phone).

        `triggers.identify` chooses the method (PIN, caller ID, DID) by the called number; the
        request is stored (as rejected, with the reason, when refused) and the two-stage
        callback starts. `reject(cause)` hangs the trigger call up unanswered; a gateway phone
        has rejected the call itself and passes None. Raises FlowEnded (nothing stored, the
        trigger rejected with TRY_LATER_CAUSE) when no FreeSWITCH node can take the callback
        (see `node_for`).
        """
        log.info("trigger %s (%s): %r called %r", trigger_uuid, trigger, caller, called)
        try:
            node = self.node_for(core_uuid)
            return self._store_trigger(caller, called, trigger, trigger_uuid, node, reject)
        except UNREACHABLE as exc:
            ended = FlowEnded(
                State.FAILED,
                UNREACHABLE_CAUSE,
                f"the database cannot be reached ({in_words(exc)}): check it",
            )
        except FlowEnded as turned_away:
            ended = turned_away
        log.warning("trigger %s turned away: %s", trigger_uuid, ended.detail)
        if reject is not None:
            reject(TRY_LATER_CAUSE)
        raise ended

    def _store_trigger(
        self,
        caller: str,
        called: str,
        trigger: str,
        trigger_uuid: str | None,
        node: Node,
        reject: Callable[[str], None] | None,
    ) -> CallbackRequest:
        """Identify the trigger and store its request; only then tell the caller (busy: "we
        call you back"; a refusal's cause), so that no callback is promised that was not
        stored. Starts the callback."""
        cfg = self.settings.callback
        try:
            found = self.db.run(triggers.identify, called, caller, self.settings.numbers)
        except triggers.TriggerRefused as refused:
            log.warning("trigger %s refused: %s", trigger_uuid, refused.detail)
            metrics.REQUESTS_ENDED.labels(State.REJECTED, refused.reason).inc()
            if reject is not None:
                reject(cfg.reject_cause)  # refused whether or not the record can be stored
            return self.db.run(
                requests.create,
                trigger=trigger,
                method=refused.method,
                account=refused.account,
                state=State.REJECTED,
                caller_id=caller[:64],
                called_number=called[:64],
                trigger_uuid=trigger_uuid,
                failure_cause=refused.reason,
                failure_detail=refused.detail,
            )
        request = self.db.run(
            requests.create,
            trigger=trigger,
            method=found.method,
            account=found.account,
            mode="two_stage",
            caller_id=caller[:64],
            called_number=called[:64],
            trigger_uuid=trigger_uuid,
            source=found.callback_number,
        )
        if reject is not None:
            reject(cfg.trigger_hangup_cause)
        self.start(
            Plan(
                request_id=request.id,
                mode="two_stage",
                method=found.method,
                source=found.callback_number,
                destination=None,
                account_id=found.account.id if found.account else None,
                node=node,
                delay=cfg.delay_seconds,
            )
        )
        return request

    def start_callback(
        self,
        account: Account | None,
        source: str,
        destination: str | None,
        mode: str,
        trigger: str = "web",
    ) -> CallbackRequest:
        """Store and start a callback whose numbers are known (web, SMS, CLI).

        Raises FlowEnded (nothing stored) when no FreeSWITCH node is connected.
        """
        node = self.node_for(None)
        request = self.db.run(
            requests.create,
            trigger=trigger,
            method="sms" if trigger == "sms" else "web",
            account=account,
            mode=mode,
            source=source,
            destination=destination,
        )
        self.start(
            Plan(
                request_id=request.id,
                mode=mode,
                method=request.method,
                source=source,
                destination=destination,
                account_id=account.id if account else None,
                node=node,
            )
        )
        return request

    def start_two_stage(
        self, account: Account | None, source: str, trigger: str = "sms"
    ) -> CallbackRequest:
        """Call `source` back and run the IVR for the destination (an SMS "CB").

        With `account` None the IVR asks for the PIN first, as on a PIN access number.
        """
        return self.start_callback(account, source, None, "two_stage", trigger)

    def verify_number(self, account: Account, number: str, code: str) -> CallbackRequest:
        """Call `number` and ask for `code` (shown to the user): proof that they own it.

        The request completes only when the digits keyed match the code; otherwise it fails
        with cause WRONG_CODE (or the leg's hangup cause).
        """
        node = self.node_for(None)
        request = self.db.run(
            requests.create,
            trigger="web",
            method="web",
            account=account,
            mode="verify",
            source=number,
        )
        self.start(
            Plan(
                request_id=request.id,
                mode="verify",
                method="web",
                source=number,
                destination=None,
                account_id=account.id,
                node=node,
                code=code,
            )
        )
        return request

    def start(self, plan: Plan) -> CallFlow:
        metrics.REQUESTS_STARTED.labels(plan.mode).inc()
        flow = CallFlow(self, plan)
        self.flows[plan.request_id] = flow
        flow.greenlet = gevent.spawn_later(plan.delay, flow.run)
        return flow

    def wind_down(self, timeout: float) -> None:
        """At shutdown: end the calls not connected yet (their legs hung up and billed, the
        requests ended SERVICE_STOPPING), for up to `timeout` seconds; leave the connected
        ones to the next start, which adopts and bills them. No new leg is originated."""
        self.stopping = True
        ending = [flow for flow in self.flows.values() if not flow.connected()]
        if ending:
            log.warning("stopping: ending %d callbacks not connected yet", len(ending))
        for flow in ending:
            flow.interrupt(FlowEnded(State.CANCELLED, STOPPING_CAUSE, "the service is stopping"))
        gevent.joinall([flow.greenlet for flow in ending if flow.greenlet], timeout=timeout)
        self.abandon_flows()

    def abandon_flows(self) -> None:
        """Stop following live calls; they go on on the switch and the next start reconciles
        them (bridged calls are adopted and billed, the others hung up)."""
        greenlets = [flow.greenlet for flow in self.flows.values() if flow.greenlet is not None]
        if greenlets:
            log.warning("leaving %d connected callbacks to the next start", len(greenlets))
        gevent.killall(greenlets, block=True, timeout=2)
        self.flows.clear()

    def follow(self, request_id: int) -> None:
        """Nothing to do: every change of every request this dialer runs reaches `listeners`."""

    def cancel(self, request_id: int, reason: str = "cancelled") -> bool:
        """Hang up both legs of a live request (web cancel button)."""
        flow = self.flows.get(request_id)
        if flow is not None:
            flow.inbox.put(Inbox("cancel", reason=reason))
            return True
        adopted = self.adopted.get(request_id)
        if not adopted:
            return False
        log.info("request %s: %s; hanging up its adopted legs", request_id, reason)
        for leg_uuid, node in list(adopted.items()):
            node.api(commands.uuid_kill(leg_uuid, "NORMAL_CLEARING"))
        return True

    def handle_leg_session(self, session: Any, data: Any) -> None:
        """Leg A answered and FreeSWITCH connected it to us: hand it to its flow."""
        request_id = event_variable(data, "callback_request_id") or ""
        flow = self.flows.get(int(request_id)) if request_id.isdigit() else None
        if flow is None or flow.legs.get("a") is None or flow.legs["a"].uuid != session.uuid:
            log.warning(
                "leg %s: no live callback request %r for this channel; hanging up",
                session.uuid,
                request_id,
            )
            session.execute(*commands.hangup("NORMAL_CLEARING"), timeout=10)
            return
        flow.inbox.put(Inbox("session", uuid=session.uuid, event=data, session=session))
        flow.done.wait()

    def handle_orphan_event(self, event: Any, node: str = "") -> None:
        """A hangup no flow listens to: one of our legs after a restart gets its CDR closed."""
        if event.get("Event-Name") != "CHANNEL_HANGUP_COMPLETE":
            return
        if not event_variable(event, "callback_leg"):
            return
        if event_variable(event, "loopback_leg") == "B":  # the far end of a loopback leg
            return  # (it carries our leg's variables, copied by mod_loopback; not a leg)
        bill = self.close_leg(event)
        if bill is not None and not bill.duplicate:
            self.forget_adopted(bill.leg.request_id, bill.leg.uuid)
            self.settle_orphan(bill.leg.request_id)
            self.notify(bill.leg.request_id)

    def forget_adopted(self, request_id: int, leg_uuid: str) -> None:
        legs = self.adopted.get(request_id, {})
        legs.pop(leg_uuid, None)
        if not legs:
            self.adopted.pop(request_id, None)

    def reconcile(self, node: Node, up_since: datetime) -> None:
        """After (re)connecting to a node, make the database agree with the switch.

        Like Kazoo after a reconnect: `show channels as json` is compared with the legs the
        database believes are up on this node, stored before the connection came up
        (`up_since`): a leg originated since then gets its events on this connection, and its
        channel may not exist yet when the switch lists them. A leg the switch no longer has
        ended while we were away: its CDR is closed with cause LOST_WHILE_DISCONNECTED and
        billed nothing (its duration is unknown; the operator sees the cause). A leg still up
        whose flow is gone (we restarted) is adopted when bridged, so its hangup is billed,
        else hung up.
        """
        try:
            channels = parse_channels(node.api(commands.show_channels_json()))
        except (ValueError, RuntimeError) as exc:
            log.error("node %s: cannot list channels to reconcile: %s", node.name, exc)
            return
        open_legs = self.db.run_until_done(
            f"the reconciliation of node {node.name}", open_legs_on, node.name, up_since
        )
        for leg_uuid, request_id, request_state in open_legs:
            flow = self.flows.get(request_id)
            if leg_uuid not in channels:
                log.warning(
                    "leg %s of request %s ended while we were not listening", leg_uuid, request_id
                )
                self.close_cdr(billing.Hangup(leg_uuid, LOST_CAUSE, 0))
                if flow is not None:
                    flow.inbox.put(Inbox("lost", uuid=leg_uuid))
                else:
                    self.forget_adopted(request_id, leg_uuid)
                    self.settle_orphan(request_id)
            elif flow is None and request_state == State.BRIDGED:
                self.adopted.setdefault(request_id, {})[leg_uuid] = node
            elif flow is None:
                log.warning(
                    "leg %s of request %s outlived its flow; hanging it up", leg_uuid, request_id
                )
                node.api(commands.uuid_kill(leg_uuid, "NORMAL_CLEARING"))
            self.notify(request_id)

    # -- helpers shared by the flows ------------------------------------------------------

    def node_for(self, core_uuid: str | None) -> Node:
        """The node a new callback goes out through: the one its trigger came from (by
        Core-UUID), else the first connected one.

        FlowEnded when none is connected, or when that node has sent more events than
        `freeswitch.max_event_backlog` that are still unread: FreeSWITCH drops a listener 500
        events behind, and with it every call it follows, so new calls wait.
        """
        node = self._node_by_core_uuid(core_uuid)
        limit = self.settings.freeswitch.max_event_backlog
        behind = node.queued_events() if limit else 0
        if behind > limit:
            metrics.TURNED_AWAY.labels(node.name).inc()
            raise FlowEnded(
                State.FAILED,
                "SWITCH_BEHIND",
                f"FreeSWITCH node {node.name} has {behind} events unread, over "
                f"freeswitch.max_event_backlog ({limit}): new calls wait until it catches up",
            )
        return node

    def _node_by_core_uuid(self, core_uuid: str | None) -> Node:
        for node in self.nodes:
            if core_uuid and self.core_uuids.get(node.name) == core_uuid:
                return node
        connected = [n for n in self.nodes if getattr(n, "connected", True)]
        if not connected:
            raise FlowEnded(State.FAILED, "NO_SWITCH", "no FreeSWITCH node is connected")
        return connected[0]

    def route(self, number: str) -> str:
        """The dial string for a number: the route with the longest matching prefix."""
        route = self.settings.route_for(number)
        if route is None:
            raise FlowEnded(State.FAILED, "NO_ROUTE_DESTINATION", f"no route for {number}")
        return commands.dial_string(route.template, number, route.gateway or "")

    def close_leg(self, event: Any, hung_up_by: str | None = None) -> billing.LegBill | None:
        """Close a leg's CDR and bill it (idempotent by UUID); `hung_up_by` when the event
        does not say (no SIP disposition).
        """
        hangup = hangup_from_event(event, hung_up_by)
        return self.close_cdr(hangup)

    def settle_orphan(self, request_id: int) -> None:
        """End a request without a flow once its legs are billed (waiting for the database)."""
        self.db.run_until_done(
            f"the end of request {request_id}", settle_orphan_request, request_id
        )

    def close_cdr(self, hangup: billing.Hangup) -> billing.LegBill | None:
        """Bill a leg that ended, waiting for the database if it cannot be reached."""
        return self.db.run_until_done(
            f"the CDR of leg {hangup.uuid}", billing.close_leg, hangup, self.settings.billing
        )

    def notify(self, request_id: int) -> None:
        """Tell listeners (live status for the web) that a request changed."""
        for listener in self.listeners:
            try:
                listener(request_id)
            except Exception:
                log.exception("status listener failed for request %s", request_id)

    def _reject(self, session: Any, cause: str) -> None:
        """Hang up the unanswered trigger call with a cause (the caller hears busy)."""
        try:
            session.execute_async(*commands.hangup(cause))
        except Exception as exc:  # the caller may already be gone; the callback still counts
            log.info("trigger %s: hangup not delivered (%s)", session.uuid, exc)


class CallFlow:
    """One request from the first originate to the last CDR, in its own greenlet."""

    def __init__(self, dialer: Dialer, plan: Plan) -> None:
        self.dialer = dialer
        self.plan = plan
        self.settings = dialer.settings
        self.db = dialer.db
        self.inbox: Queue[Inbox] = Queue()
        self.legs: dict[str, LegState] = {}  # the current leg of each role
        self.every_leg: dict[str, LegState] = {}  # all legs, retries included, by UUID
        self.unsaved_marks: list[tuple[str, dict[str, Any]]] = []  # written by `save`
        self.session: Session | None = None
        self.account_id = plan.account_id
        self.authorisation: billing.Authorisation | None = None
        self.state = State.QUEUED
        self.done = Event()
        self.greenlet: gevent.Greenlet | None = None
        self.running = self.finishing = False
        self.key = str(plan.request_id)
        dialer.router.register(self.key, self.deliver, inline=True)

    # -- the flow -------------------------------------------------------------------------

    def run(self) -> None:
        self.running = True
        rid = self.plan.request_id
        try:
            if self.plan.mode == "simultaneous":
                self.run_simultaneous()
            else:
                self.call_source()
                if self.plan.mode == "two_stage":
                    self.run_two_stage()
                elif self.plan.mode == "verify":
                    self.run_verification(self.plan.code or "")
                else:
                    self.run_source_first()
            self.finish(State.COMPLETED, None)
        except FlowEnded as ended:
            cause = f" ({ended.cause})" if ended.cause else ""
            log.info("request %s: %s%s %s", rid, ended.state, cause, ended.detail)
            self.finish(ended.state, ended.cause, ended.detail)
        except UNREACHABLE as exc:
            log.error(
                "request %s: the database cannot be reached (%s); ending the call",
                rid,
                in_words(exc),
            )
            self.finish(State.FAILED, UNREACHABLE_CAUSE, in_words(exc))
        except Exception as exc:
            log.exception("request %s: flow failed", rid)
            self.finish(State.FAILED, "CONTROLLER_ERROR", str(exc))
        finally:
            self.done.set()
            self.dialer.flows.pop(rid, None)

    def call_source(self) -> None:
        """Originate leg A (with retries) until it answers and its session connects."""
        cfg = self.settings.callback
        attempts = cfg.leg_a_retries + 1
        for attempt in range(1, attempts + 1):
            if self.account_id is not None:
                # Each attempt holds money anew: the hold went with the last attempt's CDR.
                self.authorise(self.plan.destination)
            leg = self.originate(
                "a",
                self.plan.source,
                self.leg_a_application(),
                State.CALLING_SOURCE,
                attempts=attempt,
            )
            cause = self.wait_for_session(leg)
            if cause is None:
                return
            if attempt == attempts or not causes.worth_retrying(cause):
                detail = f"leg A to {self.plan.source}: {causes.in_words(cause)}"
                raise FlowEnded(State.FAILED, cause, detail)
            log.info(
                "request %s: leg A %s; retry %s of %s in %s s",
                self.plan.request_id,
                cause,
                attempt,
                attempts - 1,
                cfg.retry_delay_seconds,
            )
            self.advance(State.QUEUED)
            self.wait(lambda _: False, cfg.retry_delay_seconds)

    def leg_a_application(self) -> str:
        return commands.socket_application(self.settings.outbound.socket_address)

    def wait_for_session(self, leg: LegState) -> str | None:
        """None once leg A answered and its session is ours; else the cause it ended with."""
        message = self.wait(
            lambda m: (m is not None and m.kind == "session") or leg.ended, self.ring_timeout()
        )
        if message is not None and message.kind == "session":
            # FreeSWITCH runs the `socket` application once the leg has answered; its
            # CHANNEL_ANSWER may still be queued behind the session, so note it now.
            self.session = message.session
            self.note_answer(leg, uepoch(message.event.get("Caller-Channel-Answered-Time")))
            return None
        self.give_up(leg, "NO_ANSWER")
        return leg.cause or "NO_ANSWER"

    def run_two_stage(self) -> None:
        """The IVR on leg A: PIN when needed, then destinations until one is connected."""
        self.advance(State.IN_IVR)
        ivr = self.ivr()
        prompts, cfg = self.settings.ivr, self.settings.callback
        if self.account_id is None:
            self.account_id = self.collect_pin(ivr)
            self.authorise(None)
        balance, currency = self.db.run(billing.balance_of, self.account_id)
        if cfg.announce_balance or billing.is_low_balance(balance, self.settings.billing):
            self.guard(ivr.play, prompts.your_balance_is)
            self.guard(ivr.say_amount, balance, currency)
        for _ in range(cfg.destination_attempts):
            digits = self.guard(
                ivr.collect,
                prompts.enter_destination,
                DESTINATION_VARIABLE,
                min_digits=1,
                max_digits=cfg.max_digits,
                tries=3,
            )
            if digits is None:
                continue
            try:
                destination = numbers.normalise(digits, self.settings.numbers, what="destination")
            except numbers.InvalidNumber as exc:
                log.info("request %s: %s", self.plan.request_id, exc)
                self.guard(ivr.play, prompts.invalid_number)
                continue
            refusal = self.authorise(destination)
            if refusal is not None:
                self.guard(ivr.play, refusal)
                continue
            cause = self.connect_destination(destination)
            if cause is None:
                self.wait_until_ended()
                return
            self.advance(State.IN_IVR)
            self.guard(ivr.play, self.prompt_for(cause))
        self.guard(ivr.play, prompts.goodbye)
        self.hang_up_caller(ivr, "NORMAL_CLEARING")
        raise FlowEnded(State.FAILED, "NO_DESTINATION", "no destination could be connected")

    def run_source_first(self) -> None:
        """Leg A answered: call the known destination and bridge, or tell A why not."""
        destination = self.plan.destination or ""
        self.authorise(destination)
        cause = self.connect_destination(destination)
        if cause is not None:
            ivr = self.ivr()
            self.guard(ivr.play, self.prompt_for(cause))
            self.hang_up_caller(ivr, "NORMAL_CLEARING")
            raise FlowEnded(State.FAILED, cause, f"destination: {causes.in_words(cause)}")
        self.wait_until_ended()

    def run_verification(self, code: str) -> None:
        """Ask the callee for the code shown on screen; complete only when it matches."""
        self.advance(State.IN_IVR)
        ivr = self.ivr()
        prompts = self.settings.ivr
        keyed = self.guard(
            ivr.collect,
            prompts.enter_code,
            CODE_VARIABLE,
            min_digits=len(code),
            max_digits=len(code),
            tries=3,
        )
        if keyed != code:
            self.guard(ivr.play, prompts.invalid_entry)
            self.hang_up_caller(ivr, "NORMAL_CLEARING")
            raise FlowEnded(State.FAILED, "WRONG_CODE", "the code keyed did not match")
        self.guard(ivr.play, prompts.goodbye)
        self.hang_up_caller(ivr, "NORMAL_CLEARING")
        self.wait_until_ended()

    def collect_pin(self, ivr: Ivr) -> int:
        """Ask for the PIN until it names an active account; lock out repeated failures."""
        cfg, prompts = self.settings.callback, self.settings.ivr
        caller_key = f"cid:{self.plan.source}"
        for _ in range(cfg.pin_attempts):
            if self.db.run(
                lockout.is_locked,
                "pin",
                (caller_key,),
                cfg.pin_lockout_failures,
                cfg.pin_lockout_window_seconds,
            ):
                break
            pin = self.guard(
                ivr.collect, prompts.enter_pin, PIN_VARIABLE, min_digits=4, max_digits=12
            )
            account_id = (
                self.db.run(accept_pin, self.plan.request_id, pin, caller_key) if pin else None
            )
            if account_id is not None:
                return account_id
            self.guard(ivr.play, prompts.invalid_pin)
        self.guard(ivr.play, prompts.locked_out)
        self.hang_up_caller(ivr, "CALL_REJECTED")
        raise FlowEnded(State.FAILED, "PIN_REJECTED", f"no valid PIN from {self.plan.source}")

    def connect_destination(self, destination: str) -> str | None:
        """Originate leg B with ringback on A; bridge on answer. None when bridged, else cause."""
        leg_a = self.legs["a"]
        ringback = self.guard(
            self.session.execute_async, *commands.playback(self.settings.ivr.ringback)
        )
        leg_b = self.originate(
            "b",
            destination,
            commands.park_application(),
            State.CALLING_DESTINATION,
            destination=destination,
        )
        # B's answer is written with the move to BRIDGED, any other outcome before going on.
        self.wait(
            lambda _: leg_b.answered or leg_b.ended or leg_a.ended, self.ring_timeout(), save=False
        )
        if not leg_b.answered or leg_a.ended:
            self.save()
        if leg_a.ended:
            self.give_up(leg_b, "ORIGINATOR_CANCEL")
            raise self.caller_gone("while the destination rang")
        if not leg_b.answered:
            self.give_up(leg_b, "NO_ANSWER")
            self.stop_ringback(ringback)
            return leg_b.cause or "NO_ANSWER"
        self.bridge(leg_a, leg_b)
        return None

    def run_simultaneous(self) -> None:
        """Call both numbers at once; bridge when both have answered."""
        self.authorise(self.plan.destination)
        leg_a = self.originate(
            "a",
            self.plan.source,
            commands.park_application(),
            State.CALLING_SOURCE,
            destination=self.plan.destination,
        )
        leg_b = self.originate("b", self.plan.destination or "", commands.park_application())

        def both_answered_or_one_failed(_: Inbox) -> bool:
            for first, second in ((leg_a, leg_b), (leg_b, leg_a)):
                if first.answered and not second.answered and not first.hears_ringback:
                    first.hears_ringback = True  # the first to answer hears ringback
                    self.api(commands.uuid_broadcast(first.uuid, self.settings.ivr.ringback))
            return (leg_a.answered and leg_b.answered) or leg_a.ended or leg_b.ended

        self.wait(both_answered_or_one_failed, self.ring_timeout())
        if not (leg_a.answered and leg_b.answered) or leg_a.ended or leg_b.ended:
            # The leg that ended (busy, rejected, hung up); on a timeout, one that never answered.
            ended = [leg for leg in (leg_a, leg_b) if leg.ended]
            failed = ended[0] if ended else leg_a if not leg_a.answered else leg_b
            cause = failed.cause or "NO_ANSWER"
            who = "source" if failed is leg_a else "destination"
            raise FlowEnded(State.FAILED, cause, f"{who}: {causes.in_words(cause)}")
        for leg in (leg_a, leg_b):
            if leg.hears_ringback:
                self.api(commands.uuid_break(leg.uuid))
        self.bridge(leg_a, leg_b)
        self.wait_until_ended()

    # -- legs -----------------------------------------------------------------------------

    def originate(
        self,
        role: str,
        number: str,
        application: str,
        state: State | None = None,
        **fields: Any,
    ) -> LegState:
        """`bgapi originate` one leg, its CDR row stored first (with the move to `state`, if
        given, setting `fields`); its events come to the inbox.
        """
        if self.dialer.stopping:
            raise FlowEnded(State.CANCELLED, STOPPING_CAUSE, "the service is stopping")
        node = self.plan.node
        leg = LegState(role, str(uuidlib.uuid4()), number, node.name)
        self.legs[role] = self.every_leg[leg.uuid] = leg
        self.dialer.router.bind(leg.uuid, self.key)
        if state is None:
            self.save(lambda: self.store_leg(leg))
        else:
            self.advance(state, new_leg=leg, **fields)
        cfg = self.settings.callback
        variables: dict[str, object] = {
            "origination_uuid": leg.uuid,
            "callback_request_id": self.plan.request_id,
            "callback_leg": role,
            "callback_account": self.account_id or "unknown",
            "callback_method": self.plan.method,
            # The application runs when the leg answers, not on early media (a network's
            # announcement or ringback): the IVR must not play to a phone still ringing.
            "ignore_early_media": True,
            "originate_timeout": cfg.originate_timeout_seconds,
            "origination_caller_id_number": self.presented_number(role),
            "origination_caller_id_name": cfg.caller_id_name,
        }
        if application == commands.park_application():
            # Only a parked leg: an async socket session is parked too, and the timeout
            # would cut leg A's IVR and B's ringing short.
            variables["park_timeout"] = cfg.park_timeout_seconds
        command = commands.originate(self.dialer.route(number), application, variables)
        try:
            job = node.bgapi(command)
        except ESLError as exc:
            log.warning("request %s: leg %s not originated: %s", self.plan.request_id, role, exc)
            self.inbox.put(Inbox("job", uuid=leg.uuid, body="-ERR NORMAL_TEMPORARY_FAILURE"))
            return leg
        gevent.spawn(self.watch_job, leg.uuid, job)
        log.info("request %s: leg %s %s -> %s", self.plan.request_id, role, leg.uuid, number)
        return leg

    def presented_number(self, role: str) -> str:
        """Leg A sees the service's number; leg B sees the caller's own number."""
        if role == "b":
            return self.plan.source
        return self.settings.callback.caller_id_number or self.plan.source

    def store_leg(self, leg: LegState) -> None:
        if self.authorisation is not None:
            billing.open_leg(self.authorisation, leg.role, leg.uuid, leg.node)
            leg.rated = True
        else:
            billing.record_leg(self.plan.request_id, leg.role, leg.uuid, leg.node, leg.number)

    def watch_job(self, uuid: str, job: Job) -> None:
        """Report the originate's job result: an -ERR may come with no channel event at all."""
        try:
            body = job.wait(self.ring_timeout() + GRACE_SECONDS)
        except ESLError as exc:
            log.warning("request %s: originate of %s: %s", self.plan.request_id, uuid, exc)
            return
        self.inbox.put(Inbox("job", uuid=uuid, body=body.strip()))

    def bridge(self, leg_a: LegState, leg_b: LegState) -> None:
        """`uuid_bridge` A and B, then schedule the hangup at what the balance pays for."""
        # One round trip: the hangup and the warning are scheduled with the bridge (if it
        # fails, the flow ends and hangs leg A up anyway).
        sent = [commands.uuid_bridge(leg_a.uuid, leg_b.uuid)]
        max_duration = self.authorisation.max_duration if self.authorisation else 0
        if max_duration:
            sent.append(commands.sched_hangup(max_duration, leg_a.uuid))
            warn_at = billing.warning_offset(max_duration, self.settings.billing)
            if warn_at:
                sound = self.settings.ivr.low_balance_warning
                sent.append(commands.sched_broadcast(warn_at, leg_a.uuid, sound))
        reply = self.api_all(sent)[0]
        if not reply.startswith("+OK"):
            raise FlowEnded(State.FAILED, "BRIDGE_FAILED", reply.strip())
        self.unsaved_marks += [
            (leg_a.uuid, {"state": "bridged"}),
            (leg_b.uuid, {"state": "bridged"}),
        ]
        self.advance(State.BRIDGED, max_duration=max_duration or None)
        metrics.SETUPS.inc()

    def stop_ringback(self, ringback: Any) -> None:
        """Stop the endless ringback on A and wait until its playback has ended."""
        self.api(commands.uuid_break(self.legs["a"].uuid))
        self.guard(ringback.wait, self.settings.ivr.app_timeout_seconds)

    def give_up(self, leg: LegState, cause: str) -> None:
        """Hang up a leg that is still ringing and wait (briefly) for it to be gone."""
        if leg.ended:
            return
        self.hang_up(leg, cause)
        self.wait(lambda _: leg.ended, GRACE_SECONDS)
        if not leg.ended:
            leg.ended, leg.cause = True, cause

    def hang_up(self, leg: LegState, cause: str) -> None:
        leg.hung_up_by_us = True
        self.api(commands.uuid_kill(leg.uuid, cause))

    def hang_up_caller(self, ivr: Ivr, cause: str) -> None:
        """End leg A from its IVR session (after the last prompt)."""
        self.legs["a"].hung_up_by_us = True
        self.guard(ivr.hangup, cause)

    def who_hung_up(self, leg: LegState, event: Any) -> str:
        """Who ended a leg: the SIP disposition when the switch has one (`recv_bye`: the phone,
        `send_bye`: the switch), else `service` (we hung up, or the balance ran out), else the
        phone whose leg ended first (`source` or `destination`).
        """
        disposition = event_variable(event, "sip_hangup_disposition")
        if disposition:
            return disposition
        if leg.hung_up_by_us or leg.cause in causes.SERVICE_HANGUPS:
            return "service"
        partner = next((o for o in self.legs.values() if o is not leg and o.ended), None)
        return ROLES[(partner or leg).role]

    def api(self, command: str) -> str:
        return self.api_all([command])[0]

    def api_all(self, sent: list[str]) -> list[str]:
        """The outputs of `api` commands sent together; `-ERR ...` for each if they failed."""
        try:
            return self.plan.node.api_all(sent)
        except Exception as exc:
            log.warning("request %s: %r failed: %s", self.plan.request_id, sent, exc)
            return [f"-ERR {exc}"] * len(sent)

    def ring_timeout(self) -> float:
        return self.settings.callback.originate_timeout_seconds + GRACE_SECONDS

    # -- events ---------------------------------------------------------------------------

    def deliver(self, event: Any, node: str = "") -> None:
        """Router callback: an event of one of our legs (from any greenlet)."""
        self.inbox.put(Inbox("event", uuid=event.get("Unique-ID") or "", event=event))

    def wait(
        self, done: Callable[[Inbox | None], bool], timeout: float, save: bool = True
    ) -> Inbox | None:
        """Apply inbox messages to the legs until `done(message)`; None after `timeout`.

        `done(None)` is asked first: a condition already true returns at once. A cancel (the
        web's cancel button) ends the flow. What the legs did is written whenever the inbox is
        empty, and before returning unless `save` is False (the caller's next state change
        writes it).
        """
        if done(None):
            return None
        hub = gevent.get_hub()
        deadline = hub.loop.now() + timeout
        while (remaining := deadline - hub.loop.now()) > 0:
            if self.unsaved_marks and self.inbox.empty():
                self.save()  # nothing more to apply for now: what the legs did is written
            try:
                message = self.inbox.get(timeout=remaining)
            except Empty:
                return None
            self.apply(message)
            if done(message):
                if save and self.unsaved_marks:
                    self.save()
                return message
            message = None  # an idle flow keeps no event alive (some KB per live call)
        return None

    def apply(self, message: Inbox) -> None:
        """Update what we know of the legs from one message."""
        if message.kind == "cancel":
            for leg in self.every_leg.values():
                self.give_up(leg, "NORMAL_CLEARING")
            if self.state is State.BRIDGED:  # the call took place: ending it completes it
                raise FlowEnded(State.COMPLETED, None, message.reason)
            raise FlowEnded(State.CANCELLED, "USER_CANCELLED", message.reason)
        leg = self.every_leg.get(message.uuid)
        if leg is None:  # e.g. the loopback partner of one of our legs
            return
        if message.kind == "lost":
            leg.ended = leg.closed = True
            leg.cause = leg.cause or LOST_CAUSE
            return
        if message.kind == "job":
            if message.body.startswith("-ERR") and not leg.answered and not leg.ended:
                # Failed before (or without) a channel: close the CDR now. A hangup event
                # reported later for the same UUID is a duplicate and bills nothing.
                leg.ended = leg.closed = True
                leg.cause = message.body[4:].strip() or "NORMAL_TEMPORARY_FAILURE"
                self.dialer.close_cdr(billing.Hangup(leg.uuid, leg.cause, 0))
                self.dialer.notify(self.plan.request_id)
            return
        name = message.event.get("Event-Name") if message.kind == "event" else None
        if name == "CHANNEL_ANSWER":
            self.note_answer(leg, uepoch(message.event.get("Caller-Channel-Answered-Time")))
        elif name in ("CHANNEL_PROGRESS", "CHANNEL_PROGRESS_MEDIA") and not leg.answered:
            state = "early_media" if name == "CHANNEL_PROGRESS_MEDIA" else "ringing"
            self.unsaved_marks.append((leg.uuid, {"state": state}))
        elif name == "CHANNEL_HANGUP":
            leg.cause = message.event.get("Hangup-Cause")
            leg.hung_up_by = self.who_hung_up(leg, message.event)  # in the order legs went down
            leg.ended = True
            mark = {"state": "hung_up", "hangup_cause": leg.cause, "hangup_by": leg.hung_up_by}
            self.unsaved_marks.append((leg.uuid, mark))
        elif name == "CHANNEL_HANGUP_COMPLETE":
            leg.ended = leg.closed = True
            leg.cause = leg.cause or message.event.get("Hangup-Cause")
            # The CDR says all a mark would (its hangup_by from CHANNEL_HANGUP): none is left.
            self.unsaved_marks = [m for m in self.unsaved_marks if m[0] != leg.uuid]
            self.dialer.close_leg(message.event, leg.hung_up_by)
            self.dialer.notify(self.plan.request_id)

    def connected(self) -> bool:
        """Bridged and still up: a call in progress, left to go on when the service stops."""
        return self.state is State.BRIDGED and not any(leg.ended for leg in self.legs.values())

    def all_closed(self) -> bool:
        """Every leg of the request hung up and its CDR closed."""
        return all(leg.closed for leg in self.every_leg.values())

    def wait_until_ended(self) -> None:
        """After the bridge: wait for both legs to hang up and their CDRs to be billed."""
        limit = (self.authorisation.max_duration if self.authorisation else 0) or 4 * 3600
        self.wait(lambda _: self.all_closed(), limit + 60)

    # -- state and money ------------------------------------------------------------------

    def authorise(self, destination: str | None) -> str | None:
        """Billing's answer for the current numbers: None when allowed, else a prompt to play.

        Outside the IVR (no session, or not two-stage) a refusal ends the flow.
        """
        leg_a = self.legs.get("a")
        head_start = 0
        if destination is not None and leg_a is not None and leg_a.answered:
            head_start = self.settings.callback.originate_timeout_seconds + self.seconds_up(leg_a)
        # Leg A, once rated, keeps the rate it was opened with: its hold is computed at that rate.
        opened_with = self.authorisation if leg_a is not None and leg_a.rated else None
        leg_a_rate = opened_with.rate_a if opened_with is not None else None

        def authorise_and_rate_leg_a() -> billing.Authorisation:
            with database_proxy.atomic():  # one commit: the hold and leg A's rate together
                auth = billing.authorise(
                    self.account_id,
                    self.plan.request_id,
                    self.plan.source,
                    destination,
                    self.settings.billing,
                    leg_a_head_start=head_start,
                    leg_a_rate=leg_a_rate,
                    max_seconds=self.settings.billing.max_call_seconds,
                    default_call_limit=self.settings.callback.max_concurrent_calls,
                )
                if auth.allowed and leg_a is not None and not leg_a.rated:
                    billing.open_leg(auth, "a", leg_a.uuid, leg_a.node)
                return auth

        auth = self.db.run(authorise_and_rate_leg_a)
        if auth.allowed:
            self.authorisation = auth
            if leg_a is not None:
                leg_a.rated = True
            return None
        log.info("request %s: refused %s (%s)", self.plan.request_id, auth.refusal, auth.detail)
        if self.session is None or self.plan.mode != "two_stage":
            raise FlowEnded(State.FAILED, auth.refusal.value, auth.detail)
        prompts = self.settings.ivr
        return {
            billing.Refusal.BALANCE_TOO_LOW: prompts.balance_too_low,
            billing.Refusal.NO_RATE_DESTINATION: prompts.no_rate,
            billing.Refusal.DESTINATION_DENIED: prompts.destination_denied,
        }.get(auth.refusal, prompts.call_failed)

    def note_answer(self, leg: LegState, when: datetime | None) -> None:
        """Note that a leg answered (once, whichever report comes first)."""
        if leg.answered:
            return
        leg.answered = True
        leg.answered_at = when or utcnow()
        self.unsaved_marks.append((leg.uuid, {"state": "answered", "answered_at": leg.answered_at}))

    def seconds_up(self, leg: LegState) -> int:
        """Whole seconds since the leg answered (rounded up)."""
        if leg.answered_at is None:
            return 0
        return int((utcnow() - leg.answered_at).total_seconds()) + 1

    def prompt_for(self, cause: str) -> str:
        prompts = self.settings.ivr
        if causes.is_busy(cause):
            return prompts.destination_busy
        if causes.is_no_answer(cause):
            return prompts.no_answer
        return prompts.call_failed

    def advance(self, state: State, new_leg: LegState | None = None, **fields: Any) -> None:
        """Move the request to `state` (setting `fields`), storing `new_leg`'s CDR row first."""

        def store_and_move() -> None:
            if new_leg is not None:
                self.store_leg(new_leg)
            requests.advance(self.plan.request_id, state, **fields)

        self.save(store_and_move)
        self.state = state

    def save(self, step: Callable[[], None] | None = None) -> None:
        """Write what the legs did since the last save (answered, ringing, bridged) and `step`,
        as one unit; then tell the status listeners. Marks wait for the next state change, or
        until the flow has nothing more to apply: events that come together are one write.
        """
        marks, self.unsaved_marks = self.unsaved_marks, []
        if not marks and step is None:
            return

        def unit() -> None:
            with database_proxy.atomic():  # one commit
                mark_legs(marks)
                if step is not None:
                    step()

        self.db.run(unit)
        self.dialer.notify(self.plan.request_id)

    def interrupt(self, ended: FlowEnded) -> None:
        """End a running flow as `ended` says, wherever it waits (a prompt, a ringing leg);
        one not started yet ends when it would originate, one already finishing finishes."""
        if self.running and not self.finishing and self.greenlet is not None:
            self.greenlet.kill(ended, block=False)

    def finish(self, state: State, cause: str | None, detail: str = "") -> None:
        """End the request: legs hung up, their CDRs awaited, the hold released."""
        self.finishing = True
        if self.unsaved_marks:  # before the hangups, so they come after
            try:
                self.save()
            except UNREACHABLE:  # live status only: the CDRs will say what the legs did
                self.unsaved_marks = []
        for leg in self.every_leg.values():
            if not leg.ended:
                self.hang_up(leg, "NORMAL_CLEARING")
        self.wait(lambda _: self.all_closed(), GRACE_SECONDS)
        open_legs = [leg.uuid for leg in self.every_leg.values() if not leg.closed]
        if open_legs:
            log.warning(
                "request %s: no hangup reported for %s; reconciliation will close them",
                self.plan.request_id,
                open_legs,
            )
        self.dialer.router.unregister(self.key)
        self.db.run_until_done(
            f"the end of request {self.plan.request_id}",
            end_request,
            self.plan.request_id,
            state,
            cause,
            detail or None,
        )
        metrics.REQUESTS_ENDED.labels(state, cause or "").inc()
        self.dialer.notify(self.plan.request_id)

    # -- small things ---------------------------------------------------------------------

    def ivr(self) -> Ivr:
        return Ivr(self.session, self.settings.ivr, timeout=self.settings.ivr.app_timeout_seconds)

    def guard(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run a step on leg A's session; if the caller hung up, end the flow as cancelled."""
        try:
            return fn(*args, **kwargs)
        except ChannelGone as exc:
            leg_b = self.legs.get("b")
            if leg_b is not None:
                self.give_up(leg_b, "ORIGINATOR_CANCEL")
            raise self.caller_gone(f"during {self.state}") from exc

    def caller_gone(self, when: str) -> FlowEnded:
        """How the flow ends when leg A is gone: the caller hung up (cancelled), or the switch
        was lost (leg A's session closed with no hangup, as when FreeSWITCH stops, or leg A
        was found gone after a reconnect)."""
        leg_a = self.legs.get("a")
        cause = leg_a.cause if leg_a is not None else None
        no_hangup_seen = (
            cause is None and self.session is not None and self.session.hangup_event is None
        )
        if cause == LOST_CAUSE or no_hangup_seen:
            return FlowEnded(State.FAILED, SWITCH_LOST_CAUSE, f"FreeSWITCH was lost {when}")
        return FlowEnded(State.CANCELLED, "CALLER_HUNG_UP", when)


def abandon_requests_without_legs() -> int:
    """At start-up: live requests with no open leg were left by a previous run; fail them."""
    stale = [
        request.id
        for request in CallbackRequest.select(CallbackRequest.id).where(
            CallbackRequest.state.in_(requests.LIVE)
        )
        if not Leg.select().where(Leg.request == request.id, Leg.billed == False).exists()  # noqa: E712
    ]
    for request_id in stale:
        requests.finish(request_id, State.FAILED, failure_cause="CONTROLLER_RESTARTED")
        billing.release_reservations(request_id)
    return len(stale)


def accept_pin(request_id: int, pin: str, caller_key: str) -> int | None:
    """The active account whose PIN this is, now billing the request (its failures and the
    caller's cleared); or None, with the failure counted against the caller and the PIN's
    account. One transaction.
    """
    with database_proxy.atomic():
        account = accounts.find_account_by_pin(pin)
        if account is not None and account.is_active:
            lockout.clear("pin", caller_key, f"account:{account.id}")
            _BIND_ACCOUNT.execute(id=request_id, account=account.id)
            return account.id
        keys = [caller_key] + ([f"account:{account.id}"] if account is not None else [])
        lockout.record_failure("pin", *keys)
        return None


def end_request(request_id: int, state: State, cause: str | None, detail: str | None) -> None:
    """Release what the request holds and move it to its final state, in one transaction."""
    with database_proxy.atomic():
        billing.release_reservations(request_id)
        requests.finish(request_id, state, failure_cause=cause, failure_detail=detail)


def parse_channels(reply: str) -> set[str]:
    """The UUIDs in a `show channels as json` reply (`{"row_count": 0}` when none)."""
    text = reply.strip()
    if text.startswith("-ERR"):
        raise RuntimeError(text)
    data = json.loads(text)
    return {row["uuid"] for row in data.get("rows", [])}


def open_legs_on(node: str, created_before: datetime) -> list[tuple[str, int, str]]:
    """(leg UUID, request id, request state) of the unbilled legs on a node stored before
    `created_before`."""
    return _OPEN_LEGS_ON.rows(node=node, created_before=created_before)


_OPEN_LEGS_ON = Statement(
    lambda s: (
        Leg.select(Leg.uuid, Leg.request, CallbackRequest.state)
        .join(CallbackRequest)
        .where(
            Leg.node == s.node,
            Leg.billed == False,  # noqa: E712
            Leg.created_at < s.created_before,
        )
    )
)


def settle_orphan_request(request_id: int) -> None:
    """End a request without a flow once all its legs are billed (bridged ones completed)."""
    if Leg.select().where(Leg.request == request_id, Leg.billed == False).exists():  # noqa: E712
        return
    request = CallbackRequest.get_by_id(request_id)
    if request.state in requests.LIVE:
        bridged = request.state == State.BRIDGED
        requests.finish(
            request_id,
            State.COMPLETED if bridged else State.FAILED,
            failure_cause=None if bridged else "CONTROLLER_RESTARTED",
        )
    billing.release_reservations(request_id)


_BIND_ACCOUNT = Statement(
    lambda s: CallbackRequest.update(account=s(CallbackRequest.account)).where(
        CallbackRequest.id == s.id
    )
)
_MARKS: dict[tuple[str, ...], ListStatement] = {}


def mark_legs(marks: list[tuple[str, dict[str, Any]]]) -> None:
    """Record what legs are doing (for live status), unless their CDRs are already closed:
    each (uuid, fields) in order; consecutive marks with the same fields (both legs bridged)
    are one statement."""
    for fields, group in itertools.groupby(marks, key=lambda mark: mark[1]):
        names = tuple(sorted(fields))
        statement = _MARKS.get(names)
        if statement is None:
            statement = _MARKS[names] = ListStatement(
                lambda s, uuids, names=names: Leg.update(
                    {getattr(Leg, name): s(getattr(Leg, name)) for name in names}
                ).where(Leg.uuid.in_(uuids), Leg.billed == False)  # noqa: E712
            )
        statement.execute([uuid for uuid, _ in group], **fields)
