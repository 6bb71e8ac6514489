"""The dialer: takes callback requests (triggers, web, SMS, CLI, verification) and runs their flows.

`Dialer` stores each request, chooses the node it goes out through and starts the flow of its
way of calling (`callback.flows`), which then runs in a greenlet of its own (`callback.flow`).
It routes leg A's session to its flow, cancels flows, winds them down at shutdown and, through
`callback.reconcile`, takes over what a previous run left on the switch.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

import gevent

from esl_callback import controllers, metrics
from esl_callback.callback import admission as admission_module
from esl_callback.callback import billing, policy
from esl_callback.callback.flow import (
    STOPPING_CAUSE,
    UNREACHABLE_CAUSE,
    CallFlow,
    FlowEnded,
    Inbox,
    Node,
    Plan,
    Router,
    event_variable,
    hangup_from_event,
)
from esl_callback.callback.flows import flow_class
from esl_callback.callback.reconcile import Reconciler
from esl_callback.callback.requests import State
from esl_callback.db import UNREACHABLE, Database, in_words
from esl_callback.models import Account, CallbackRequest
from esl_callback.switch import commands

if TYPE_CHECKING:
    from esl_callback.notices import Notices

log = logging.getLogger(__name__)

# How a trigger is hung up when no node can take its callback now (SIP 503: try again later).
TRY_LATER_CAUSE = "NORMAL_TEMPORARY_FAILURE"


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
        # Told of every leg billed (`billing.LegBill`): the low-balance alerts (`alerts`).
        self.bill_listeners: list[Callable[[billing.LegBill | None], None]] = []
        # Node name -> its FreeSWITCH Core-UUID, learnt at each connect: a trigger's channel
        # data names the switch it came from, and its callback must go out through that one.
        self.core_uuids: dict[str, str] = {}
        self.stopping = False  # set at shutdown: flows originate no new leg
        # The controller this dialer runs as: it owns the requests it stores (None: no
        # controller identity, as in a tool; its requests are no one's).
        self.controller_id: str | None = settings.controller.id
        # The other controllers on the database (PostgreSQL): told of changes, asked to
        # cancel what they own (esl_callback/notices.py); None: no such channel.
        self.peers: Notices | None = None
        self.reconciler = Reconciler(self)

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
        """Identify the trigger, check it against the dial policy and store its request; only
        then tell the caller (busy: "we call you back"; a refusal's cause), so that no callback
        is promised that was not stored. Starts the callback."""
        cfg = self.settings.callback
        admission = self.db.run(
            admission_module.admit_trigger,
            caller,
            called,
            trigger,
            trigger_uuid,
            self.settings,
            self.controller_id,
        )
        request = admission.request
        if not admission.admitted:
            log.warning(
                "trigger %s refused (%s): %s",
                trigger_uuid,
                admission.reason,
                admission.detail,
                extra={"request_id": request.id},
            )
            if reject is not None:
                reject(cfg.reject_cause)
            return request
        if reject is not None:
            reject(cfg.trigger_hangup_cause)
        found = admission.trigger
        self.start(
            Plan(
                request_id=request.id,
                mode="two_stage",
                method=request.method,
                source=request.source,
                destination=None,
                account_id=found.account.id if found is not None and found.account else None,
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
        code: str | None = None,
    ) -> CallbackRequest:
        """Store and start a callback whose numbers are known (web, SMS, CLI, verification).

        Raises policy.Refused (the request stored as rejected, with the reason) when the dial
        policy refuses a number, FlowEnded (nothing stored) when no FreeSWITCH node can take
        the call now.
        """
        node = self.node_for(None)
        method = "sms" if trigger == "sms" else "web"
        admission = self.db.run(
            admission_module.admit_order,
            account,
            source,
            destination,
            mode,
            trigger,
            method,
            self.settings,
            self.controller_id,
        )
        request = admission.request
        if not admission.admitted:
            log.warning(
                "%s callback %s -> %s refused (%s): %s",
                trigger,
                source,
                destination or "?",
                admission.reason,
                admission.detail,
                extra={"request_id": request.id},
            )
            raise policy.Refused(
                policy.Reason(admission.reason),
                admission.detail or "",
                admission.field,
                request.id,
            )
        self.start(
            Plan(
                request_id=request.id,
                mode=mode,
                method=method,
                source=source,
                destination=destination,
                account_id=account.id if account else None,
                node=node,
                code=code,
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
        with cause WRONG_CODE (or the leg's hangup cause). policy.Refused as start_callback.
        """
        return self.start_callback(account, number, None, "verify", "web", code=code)

    def start(self, plan: Plan) -> CallFlow:
        metrics.REQUESTS_STARTED.labels(plan.mode).inc()
        flow = flow_class(plan.mode)(self, plan)
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
        """Hang up both legs of a live request (web cancel button): here, or by the controller
        that owns it (asked through `peers`)."""
        if self.cancel_here(request_id, reason):
            return True
        if self.peers is None:
            return False
        owner = self.db.run(controllers.owner_of, request_id)
        if owner is None or owner == self.controller_id:
            return False
        self.peers.ask_cancel(request_id, reason)
        return True

    def cancel_here(self, request_id: int, reason: str = "cancelled") -> bool:
        """Hang up a live request this controller runs (False: it runs no such request)."""
        flow = self.flows.get(request_id)
        if flow is not None:
            flow.cancel(reason)
            return True
        return self.reconciler.cancel(request_id, reason)

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

    @property
    def adopted(self) -> dict[int, dict[str, Node]]:
        """Bridged calls taken over at a start (request id -> leg UUID -> node)."""
        return self.reconciler.adopted

    def reconcile(self, node: Node, up_since: datetime) -> None:
        """After (re)connecting to a node, make the database agree with the switch."""
        self.reconciler.reconcile(node, up_since)

    def leg_billed_by_switch(self, leg_uuid: str, request_id: int | None) -> None:
        """A leg billed from the switch's CDR before its hangup reached us (see Reconciler)."""
        self.reconciler.leg_billed_by_switch(leg_uuid, request_id)

    def handle_orphan_event(self, event: Any, node: str = "") -> None:
        """A hangup no flow listens to (see Reconciler.handle_orphan_event)."""
        self.reconciler.handle_orphan_event(event, node)

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

    def close_cdr(self, hangup: billing.Hangup) -> billing.LegBill | None:
        """Bill a leg that ended, waiting for the database if it cannot be reached."""
        bill = self.db.run_until_done(
            f"the CDR of leg {hangup.uuid}", billing.close_leg, hangup, self.settings.billing
        )
        for listener in self.bill_listeners:
            try:
                listener(bill)
            except Exception:
                log.exception("bill listener failed for leg %s", hangup.uuid)
        return bill

    def notify(self, request_id: int) -> None:
        """Tell listeners (live status for the web), and the other controllers' portals, that
        a request changed."""
        self.notify_here(request_id)
        if self.peers is not None:
            self.peers.publish(request_id)

    def notify_here(self, request_id: int) -> None:
        """Tell this process's listeners that a request changed (here or on a peer)."""
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
