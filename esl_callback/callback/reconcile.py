"""What the switch has against what the database believes: after a restart or a reconnect.

Like Kazoo after a reconnect, each node's channels are compared with the legs the database
believes are up on it: a leg that ended while nobody listened gets its CDR closed, a bridged call
whose flow is gone (the controller restarted) is adopted and billed when it ends, any other
orphan is hung up. Hangups that no flow listens to (an adopted call's, or any leg of ours after a
restart) are billed here too.
"""

from __future__ import annotations

import json
import logging
import time
from collections import deque
from datetime import datetime
from typing import TYPE_CHECKING, Any

import gevent

from esl_callback import controllers
from esl_callback.callback import billing, requests
from esl_callback.callback.flow import (
    LOST_CAUSE,
    CallFlow,
    Inbox,
    Node,
    event_variable,
    hangup_from_event,
)
from esl_callback.callback.requests import State
from esl_callback.models import CallbackRequest, Leg
from esl_callback.statements import Statement
from esl_callback.switch import commands
from esl_callback.switch.connection import ESLError

if TYPE_CHECKING:
    from esl_callback.callback.dialer import Dialer

log = logging.getLogger(__name__)

# The channel variable naming the controller that originated a leg (serve filters on it).
OWN_LEGS = "variable_callback_controller"
# How long after hanging up an orphan leg we check that its hangup reached us.
VANISH_CHECK_SECONDS = 5.0


class Reconciler:
    """The calls a controller finds on the switch without a flow of its own."""

    def __init__(self, dialer: Dialer) -> None:
        self.dialer = dialer
        self.db = dialer.db
        # Bridged calls found up after a restart, whose flow is gone: request id -> leg UUID
        # -> its node, until their CDRs are closed (counted live, and can be hung up).
        self.adopted: dict[int, dict[str, Node]] = {}
        # Hangups of other live controllers' legs, kept for twice our lease: when one of them
        # turns out dead (its lease runs out after it died), its legs that ended meanwhile are
        # billed from these, with the switch's billsec. (monotonic time, request id, hangup)
        self.foreign_hangups: deque[tuple[float, int, billing.Hangup]] = deque()

    def cancel(self, request_id: int, reason: str) -> bool:
        """Hang up an adopted call's legs (False: no such call)."""
        adopted = self.adopted.get(request_id)
        if not adopted:
            return False
        log.info("request %s: %s; hanging up its adopted legs", request_id, reason)
        for leg_uuid, node in list(adopted.items()):
            node.api(commands.uuid_kill(leg_uuid, "NORMAL_CLEARING"))
        return True

    def handle_orphan_event(self, event: Any, node: str = "") -> None:
        """A hangup no flow listens to: one of our legs after a restart gets its CDR closed."""
        if event.get("Event-Name") != "CHANNEL_HANGUP_COMPLETE":
            return
        if not event_variable(event, "callback_leg"):
            return
        if event_variable(event, "loopback_leg") == "B":  # the far end of a loopback leg
            return  # (it carries our leg's variables, copied by mod_loopback; not a leg)
        request_id = event_variable(event, "callback_request_id")
        if not self.may_act_on(request_id):
            self.remember_foreign(int(request_id or 0), hangup_from_event(event))
            return  # another live controller's call: it bills it
        self.bill_orphan(hangup_from_event(event))

    def bill_orphan(self, hangup: billing.Hangup) -> None:
        """Close the CDR of a leg no flow follows, and end its request once all are billed."""
        bill = self.dialer.close_cdr(hangup)
        if bill is not None and not bill.duplicate:
            self.forget_adopted(bill.leg.request_id, bill.leg.uuid)
            self.settle_orphan(bill.leg.request_id)
            self.dialer.notify(bill.leg.request_id)

    def leg_billed_by_switch(self, leg_uuid: str, request_id: int | None) -> None:
        """A leg was billed from the switch's CDR (callback/switch_cdr.py) before its hangup
        reached us. A request without a flow (adopted, or left by a previous run) ends once
        its legs are billed; a flow hears of it now if the leg's node is not connected (its
        hangup will never come on this connection), else its hangup event is on its way."""
        if request_id is None:
            return
        flow = self.dialer.flows.get(request_id)
        if flow is None and not self.may_act_on(str(request_id)):
            return  # another live controller's call: it ends it
        if flow is None:
            self.forget_adopted(request_id, leg_uuid)
            self.settle_orphan(request_id)
        else:
            leg = flow.every_leg.get(leg_uuid)
            if leg is not None and not leg.closed and not self.listening_to(leg.node):
                flow.inbox.put(Inbox("lost", uuid=leg_uuid))
        self.dialer.notify(request_id)

    def listening_to(self, node_name: str) -> bool:
        """Whether the node's events reach us now (its inbound connection is up)."""
        node = next((n for n in self.dialer.nodes if n.name == node_name), None)
        return node is not None and getattr(node, "connected", True)

    def remember_foreign(self, request_id: int, hangup: billing.Hangup) -> None:
        """Keep another controller's hangup for a while (see `foreign_hangups`)."""
        now = time.monotonic()
        self.foreign_hangups.append((now, request_id, hangup))
        keep = 2 * self.dialer.settings.controller.lease_seconds
        while self.foreign_hangups and self.foreign_hangups[0][0] < now - keep:
            self.foreign_hangups.popleft()

    def may_act_on(self, request_id: str | None) -> bool:
        """Whether a leg of request `request_id` found without a flow is this controller's
        to bill (its own, no one's, or a dead controller's, claimed now)."""
        owner = self.dialer.controller_id
        if owner is None or not request_id or not request_id.isdigit():
            return True
        return self.db.run_until_done(
            f"the owner of request {request_id}", controllers.may_act_on, int(request_id), owner
        )

    def take_over(self) -> list[int]:
        """Claim the live requests of dead controllers (their calls are then reconciled as
        after a restart of ours): the ids claimed."""
        owner = self.dialer.controller_id
        if owner is None:
            return []
        dead = self.db.run_until_done(
            "the dead controllers' calls", controllers.orphaned_owners, owner
        )
        if not dead:
            return []
        for dead_id in sorted(dead):  # their legs' events from now on, before they are ours
            self.follow_events_of(dead_id)
        claimed = self.db.run_until_done(
            "the takeover of dead controllers' calls", controllers.claim_orphaned, owner
        )
        taken = set(claimed)
        for _, _, hangup in [h for h in self.foreign_hangups if h[1] in taken]:
            self.bill_orphan(hangup)  # legs that ended while their owner was dying
        return claimed

    def follow_events_of(self, controller_id: str) -> None:
        """Have every node send this controller the events of `controller_id`'s legs."""
        for node in self.dialer.nodes:
            try:
                node.add_filter(OWN_LEGS, controller_id)
            except Exception as exc:  # not connected: the filter is sent at the reconnect
                log.warning("node %s: events of controller %s not followed yet: %s",
                            node.name, controller_id, exc)  # fmt: skip

    def forget_adopted(self, request_id: int, leg_uuid: str) -> None:
        legs = self.adopted.get(request_id, {})
        legs.pop(leg_uuid, None)
        if not legs:
            self.adopted.pop(request_id, None)

    def reconcile(self, node: Node, up_since: datetime, only: set[int] | None = None) -> None:
        """After (re)connecting to a node, make the database agree with the switch.

        Like Kazoo after a reconnect: `show channels as json` is compared with the legs the
        database believes are up on this node, stored before the connection came up
        (`up_since`): a leg originated since then gets its events on this connection, and its
        channel may not exist yet when the switch lists them. A leg the switch no longer has
        ended while we were away: its CDR is closed with cause LOST_WHILE_DISCONNECTED and
        billed nothing (its duration is unknown; the operator sees the cause) until the switch's
        CDR bills it (`billing.close_leg`), unless that CDR billed it already. A leg still up
        whose flow is gone (we restarted) is adopted when bridged, so its hangup is billed,
        else hung up. `only`: just these requests (those taken over from a dead controller).
        """
        try:
            channels = parse_channels(node.api(commands.show_channels_json()))
        except (ValueError, RuntimeError) as exc:
            log.error("node %s: cannot list channels to reconcile: %s", node.name, exc)
            return
        if only is None:
            self.take_over()
        open_legs = self.db.run_until_done(
            f"the reconciliation of node {node.name}",
            open_legs_on,
            node.name,
            up_since,
            self.dialer.controller_id,
        )
        if only is not None:
            open_legs = [leg for leg in open_legs if leg[1] in only]
        hung_up: list[tuple[str, int]] = []
        for leg_uuid, request_id, request_state in open_legs:
            flow = self.dialer.flows.get(request_id)
            if leg_uuid not in channels:
                log.warning(
                    "leg %s of request %s ended while we were not listening", leg_uuid, request_id
                )
                self.dialer.close_cdr(billing.Hangup(leg_uuid, LOST_CAUSE, 0))
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
                hung_up.append((leg_uuid, request_id))
            self.dialer.notify(request_id)
        if hung_up:
            gevent.spawn_later(VANISH_CHECK_SECONDS, self.close_vanished, node, hung_up)
        if only is not None:
            return  # a takeover: this controller's own flows kept listening meanwhile
        closed_here = {leg_uuid for leg_uuid, _, _ in open_legs if leg_uuid not in channels}
        waiting = self.flow_legs_waiting(node, closed_here)
        gone = {u: f for u, f in waiting.items() if u not in channels}
        self.tell_flows_of_billed_legs(node, gone)
        listed = {u: f for u, f in waiting.items() if u in channels}
        if listed:
            gevent.spawn_later(VANISH_CHECK_SECONDS, self.confirm_listed, node, listed)

    def flow_legs_waiting(self, node: Node, closed_here: set[str]) -> dict[str, CallFlow]:
        """The legs on `node` whose flow still waits for their hangup (but those `reconcile`
        just closed), with their flow."""
        return {
            leg.uuid: flow
            for flow in self.dialer.flows.values()
            for leg in flow.every_leg.values()
            if leg.node == node.name and not leg.closed and leg.uuid not in closed_here
        }

    def tell_flows_of_billed_legs(self, node: Node, gone: dict[str, CallFlow]) -> None:
        """Flows waiting for the hangup of a leg gone from the switch but billed meanwhile
        (from the switch's CDR, while the connection was down): the hangup will never come,
        so they hear the leg was lost."""
        if not gone:
            return
        billed = self.db.run_until_done(
            f"the legs of node {node.name} billed meanwhile", billed_among, list(gone)
        )
        for leg_uuid in billed:
            log.warning(
                "leg %s ended while we were not listening; billed from the switch's CDR", leg_uuid
            )
            gone[leg_uuid].inbox.put(Inbox("lost", uuid=leg_uuid))

    def confirm_listed(self, node: Node, listed: dict[str, CallFlow]) -> None:
        """Legs of live flows that `show channels` listed at the reconnect, checked again:
        the listing lags the switch (its core database), so a leg that ended while we were
        not listening may still be in it, and its hangup will never reach us. One the switch
        no longer has, and whose flow still waits, is closed as lost (a switch CDR bills it,
        before or after) and its flow told."""
        for leg_uuid, flow in listed.items():
            leg = flow.every_leg.get(leg_uuid)
            if leg is None or leg.closed or flow.done.is_set():
                continue
            try:
                exists = node.api(commands.uuid_exists(leg_uuid)).strip() == "true"
            except ESLError as exc:
                log.warning("leg %s: cannot check it on node %s: %s", leg_uuid, node.name, exc)
                continue
            if exists:
                continue
            log.warning(
                "leg %s of request %s ended while we were not listening (listed at the "
                "reconnect, gone now)",
                leg_uuid,
                flow.plan.request_id,
            )
            self.dialer.close_cdr(billing.Hangup(leg_uuid, LOST_CAUSE, 0))
            flow.inbox.put(Inbox("lost", uuid=leg_uuid))
            self.dialer.notify(flow.plan.request_id)

    def close_vanished(self, node: Node, legs: list[tuple[str, int]], checks: int = 3) -> None:
        """Legs hung up by `reconcile` whose hangup never reached us: a channel already
        hanging up when the switch listed it had sent its CHANNEL_HANGUP_COMPLETE to no
        listener. Once the switch no longer has one, its CDR is closed as lost; one still up is
        hung up again and checked later (`checks` times in all)."""
        still_up: list[tuple[str, int]] = []
        for leg_uuid, request_id in legs:
            if not self.db.run_until_done(f"the CDR of leg {leg_uuid}", unbilled, leg_uuid):
                continue  # its hangup came and was billed
            if node.api(commands.uuid_exists(leg_uuid)).strip() == "true":
                node.api(commands.uuid_kill(leg_uuid, "NORMAL_CLEARING"))
                still_up.append((leg_uuid, request_id))
                continue
            log.warning(
                "leg %s of request %s ended with no hangup reaching us; closed as %s",
                leg_uuid,
                request_id,
                LOST_CAUSE,
            )
            self.dialer.close_cdr(billing.Hangup(leg_uuid, LOST_CAUSE, 0))
            self.forget_adopted(request_id, leg_uuid)
            self.settle_orphan(request_id)
            self.dialer.notify(request_id)
        if still_up and checks > 1:
            gevent.spawn_later(
                VANISH_CHECK_SECONDS, self.close_vanished, node, still_up, checks - 1
            )

    def settle_orphan(self, request_id: int) -> None:
        """End a request without a flow once its legs are billed (waiting for the database)."""
        self.db.run_until_done(
            f"the end of request {request_id}", settle_orphan_request, request_id
        )


def abandon_requests_without_legs(controller_id: str | None = None) -> int:
    """At start-up: live requests of this controller (or of a dead one, claimed first) with no
    open leg were left by a previous run; fail them."""
    if controller_id is not None:
        controllers.claim_orphaned(controller_id)
    live = CallbackRequest.select(CallbackRequest.id).where(
        CallbackRequest.state.in_(requests.LIVE)
    )
    stale = [
        request.id
        for request in controllers.ours(live, controller_id)
        if not Leg.select().where(Leg.request == request.id, Leg.billed == False).exists()  # noqa: E712
    ]
    for request_id in stale:
        requests.finish(request_id, State.FAILED, failure_cause="CONTROLLER_RESTARTED")
        billing.release_reservations(request_id)
    return len(stale)


def unbilled(leg_uuid: str) -> bool:
    """Whether the leg's CDR is still open."""
    return Leg.select().where(Leg.uuid == leg_uuid, Leg.billed == False).exists()  # noqa: E712


def billed_among(leg_uuids: list[str]) -> list[str]:
    """Which of these legs are billed."""
    return [
        uuid
        for (uuid,) in Leg.select(Leg.uuid)
        .where(Leg.uuid.in_(leg_uuids), Leg.billed == True)  # noqa: E712
        .tuples()
    ]


def parse_channels(reply: str) -> set[str]:
    """The UUIDs in a `show channels as json` reply (`{"row_count": 0}` when none)."""
    text = reply.strip()
    if text.startswith("-ERR"):
        raise RuntimeError(text)
    data = json.loads(text)
    return {row["uuid"] for row in data.get("rows", [])}


def open_legs_on(
    node: str, created_before: datetime, controller_id: str | None = None
) -> list[tuple[str, int, str]]:
    """(leg UUID, request id, request state) of the unbilled legs on a node stored before
    `created_before`, of the requests controller `controller_id` may act on (its own and no
    one's; every one when it has no id)."""
    return [
        (leg_uuid, request_id, state)
        for leg_uuid, request_id, state, owner in _OPEN_LEGS_ON.rows(
            node=node, created_before=created_before
        )
        if controller_id is None or owner in (None, controller_id)
    ]


_OPEN_LEGS_ON = Statement(
    lambda s: (
        Leg.select(Leg.uuid, Leg.request, CallbackRequest.state, CallbackRequest.controller)
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
