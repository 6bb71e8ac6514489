"""What every callback flow shares: its legs, its inbox, originate, bridge, wait and finish.

Each live request has one `CallFlow`: a greenlet with an inbox. Channel events of its legs (from
every node's inbound connection, routed by UUID), the outcome of its originate jobs and leg A's
controlled session (when leg A answers and FreeSWITCH connects it to our outbound server) all
arrive in that inbox, so a flow reads as a plain sequence of steps. The ways of calling are
subclasses in `callback.flows` (one module each); the `Dialer` starts them.

Database work goes through `Database.run` (never blocking other calls); command strings come
from `switch.commands` only. CDRs are closed from CHANNEL_HANGUP_COMPLETE by `Dialer.close_leg`,
also for legs whose flow is gone (after a restart), so no leg is billed twice or left unbilled.
"""

from __future__ import annotations

import itertools
import logging
import time
import uuid as uuidlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

import gevent
from gevent.event import Event
from gevent.queue import Empty, Queue

from esl_callback import metrics
from esl_callback.callback import billing, causes, policy, requests
from esl_callback.callback.allowance import CAP_CAUSE, Allowance
from esl_callback.callback.ivr import Ivr
from esl_callback.callback.requests import State
from esl_callback.callback.status import ROLES
from esl_callback.db import UNREACHABLE, database_proxy, in_words, utcnow
from esl_callback.models import Leg
from esl_callback.statements import ListStatement
from esl_callback.switch import commands
from esl_callback.switch.connection import ESLError
from esl_callback.switch.outbound import ChannelGone

if TYPE_CHECKING:
    from esl_callback.callback.dialer import Dialer

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

    def add_filter(self, header: str, value: str) -> None: ...


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
    answered_at: datetime | None = None  # on the switch's clock
    answer_seen: float | None = None  # when we learnt of it, on our monotonic clock
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
LOST_CAUSE = billing.LOST_CAUSE  # a leg found gone after a reconnect
SWITCH_LOST_CAUSE = "SWITCH_LOST"  # the switch went away in the middle of a call
UNREACHABLE_CAUSE = "DATABASE_UNREACHABLE"  # the database could not store a step
PIN_TIMEOUT_CAUSE = "PIN_TIMEOUT"  # the switch hung leg A up at the PIN deadline
BALANCE_USED_CAUSE = "BALANCE_USED_UP"  # the switch hung leg A up when its money ran out


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
        self.money = Allowance(self)
        self.cancel_reason: str | None = None  # set by `cancel`: why the customer hung up
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
            self.steps()
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

    def steps(self) -> None:
        """What this way of calling does, from the first originate to the end of the call."""
        raise NotImplementedError

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
        given, setting `fields`); its events come to the inbox. A number the dial policy
        refuses ends the flow before anything is stored or sent (callback.policy).
        """
        if self.dialer.stopping:
            raise FlowEnded(State.CANCELLED, STOPPING_CAUSE, "the service is stopping")
        if self.cancel_reason is not None:
            raise self.cancelled()
        self.check_policy(role, number)
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
        if self.dialer.controller_id:  # its event socket is sent its own legs' events only
            variables["callback_controller"] = self.dialer.controller_id
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

    def check_policy(self, role: str, number: str) -> None:
        """FlowEnded when the dial policy refuses `number` for the leg `role`."""
        if role == "b":
            purpose = policy.Purpose.DESTINATION
        elif self.account_id is None:
            purpose = policy.Purpose.UNAUTHENTICATED
        else:
            purpose = policy.Purpose.CALL_BACK
        refused = policy.refusal(number, purpose, self.settings)
        if refused is not None:
            log.warning(
                "request %s: leg %s to %s not dialled: %s",
                self.plan.request_id,
                role,
                number,
                refused.detail,
            )
            raise FlowEnded(State.FAILED, refused.reason, refused.detail)

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

    @property
    def authorisation(self) -> billing.Authorisation | None:
        return self.money.authorisation

    def bridge(self, leg_a: LegState, leg_b: LegState) -> None:
        """Both legs answered: `uuid_bridge` A and B, with the hangup at what the balance pays
        for from now (callback.allowance)."""
        max_duration = self.money.duration_at_answer(leg_a, leg_b)
        # One round trip: the hangup and the warning are scheduled with the bridge (if it
        # fails, the flow ends and hangs leg A up anyway).
        sent = [commands.uuid_bridge(leg_a.uuid, leg_b.uuid)]
        sent += self.money.bridge_commands(leg_a, max_duration)
        reply = self.api_all(sent)[0]
        if not reply.startswith("+OK"):
            raise FlowEnded(State.FAILED, "BRIDGE_FAILED", reply.strip())
        self.unsaved_marks += [
            (leg_a.uuid, {"state": "bridged"}),
            (leg_b.uuid, {"state": "bridged"}),
        ]
        self.advance(State.BRIDGED, max_duration=max_duration or None)
        metrics.SETUPS.inc()

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
            if self.finishing:  # ending anyway: its legs are being hung up and billed
                return
            raise self.cancelled()
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

    def authorise(self, destination: str | None) -> billing.Authorisation:
        """Hold money for the legs about to be called (callback.allowance). A refusal ends the
        flow, except in the IVR, whose caller hears `refusal_prompt` and may try again."""
        auth = self.money.authorise(destination)
        if not auth.allowed and (self.session is None or self.plan.mode != "two_stage"):
            raise FlowEnded(State.FAILED, auth.refusal.value, auth.detail)
        return auth

    def refusal_prompt(self, auth: billing.Authorisation) -> str:
        """What the IVR plays for a refused authorisation."""
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
        leg.answer_seen = time.monotonic()
        self.unsaved_marks.append((leg.uuid, {"state": "answered", "answered_at": leg.answered_at}))

    def seconds_up(self, leg: LegState) -> int:
        """Whole seconds since the leg answered (rounded up): by the switch's answer time, or
        by our own clock since we learnt of it, whichever is longer (the switch's clock may be
        ahead of ours)."""
        if leg.answered_at is None:
            return 0
        by_switch = (utcnow() - leg.answered_at).total_seconds()
        by_us = time.monotonic() - leg.answer_seen if leg.answer_seen is not None else 0.0
        return int(max(by_switch, by_us)) + 1

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

    def cancel(self, reason: str) -> None:
        """The customer (or the operator) hangs the call up, from any greenlet: every leg is
        hung up now, wherever the flow is (a prompt, a ringing leg, the call), and the flow
        ends as cancelled (completed once bridged). Once it is ending, or cancelled before,
        nothing more is done: its end cannot be interrupted."""
        if self.finishing or self.cancel_reason is not None:
            return
        self.cancel_reason = reason
        log.info("request %s: %s; hanging up its legs", self.plan.request_id, reason)
        self.inbox.put(Inbox("cancel", reason=reason))
        for leg in list(self.every_leg.values()):
            if not leg.ended:
                self.hang_up(leg, "NORMAL_CLEARING")

    def cancelled(self) -> FlowEnded:
        """How a cancelled flow ends: a call that took place completes."""
        if self.state is State.BRIDGED:
            return FlowEnded(State.COMPLETED, None, self.cancel_reason or "cancelled")
        return FlowEnded(State.CANCELLED, "USER_CANCELLED", self.cancel_reason or "cancelled")

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
        prompts = self.settings.ivr
        return Ivr(self.session, prompts, prompts.app_timeout_seconds, self.say_number)

    def say_number(self, language: str, digits: str) -> list[str]:
        """The sound files mod_say plays for a whole number (`say_string` on the switch); none,
        with a warning, when the switch cannot say it."""
        reply = self.api(commands.say_string(language, digits))
        try:
            return commands.sounds_said(reply)
        except commands.UnsafeCommand as exc:
            log.warning(
                "request %s: the switch cannot say %s in %r (%s): is mod_say_%s loaded and the "
                "language configured (ivr.language)?",
                self.plan.request_id,
                digits,
                language,
                exc,
                language,
            )
            return []

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
        """How the flow ends when leg A is gone: cancelled (by the customer's cancel, or the
        caller hung up); cut off by the switch at its allotted time (the PIN deadline, or
        the money held for leg A used up); or the switch was lost (leg A's session closed with
        no hangup, as when FreeSWITCH stops, or leg A was found gone after a reconnect)."""
        if self.cancel_reason is not None:
            return self.cancelled()
        leg_a = self.legs.get("a")
        hangup = self.session.hangup_event if self.session is not None else None
        cause = (leg_a.cause if leg_a is not None else None) or (
            hangup.get("Hangup-Cause") if hangup is not None else None
        )
        no_hangup_seen = cause is None and self.session is not None and hangup is None
        if cause == LOST_CAUSE or no_hangup_seen:
            return FlowEnded(State.FAILED, SWITCH_LOST_CAUSE, f"FreeSWITCH was lost {when}")
        if cause == CAP_CAUSE and self.account_id is None:
            deadline = self.settings.callback.pin_deadline_seconds
            return FlowEnded(State.FAILED, PIN_TIMEOUT_CAUSE, f"no PIN within {deadline} s")
        if cause == CAP_CAUSE:
            return FlowEnded(
                State.FAILED, BALANCE_USED_CAUSE, f"the money held for leg A ran out {when}"
            )
        return FlowEnded(State.CANCELLED, "CALLER_HUNG_UP", when)


def end_request(request_id: int, state: State, cause: str | None, detail: str | None) -> None:
    """Release what the request holds and move it to its final state, in one transaction."""
    with database_proxy.atomic():
        billing.release_reservations(request_id)
        requests.finish(request_id, state, failure_cause=cause, failure_detail=detail)


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
