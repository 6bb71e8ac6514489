"""Bridging two channels: ``uuid_bridge`` (switch_ivr_uuid_bridge) and the bridge loop.

The originator (A) runs the bridge in CS_SOFT_EXECUTE and is the only leg that fires
CHANNEL_BRIDGE / CHANNEL_UNBRIDGE; the originatee (B) waits in CS_EXCHANGE_MEDIA. When either
leg hangs up the bridge ends; B then hangs up too, A goes back to CS_EXECUTE and carries on with
its extension (which, after a socket application, is over: A hangs up NORMAL_CLEARING).
"""

from __future__ import annotations

import uuid as uuidlib

import gevent.event

from esl_callback.simulator.channel import (
    CS_EXCHANGE_MEDIA,
    CS_EXECUTE,
    CS_HIBERNATE,
    CS_RESET,
    CS_SOFT_EXECUTE,
    Channel,
)
from esl_callback.simulator.events import UUID_BRIDGE_EXECUTE_CALLING
from esl_callback.simulator.profile import Times


class Bridge:
    """The shared state of one bridged pair."""

    def __init__(self, a: Channel, b: Channel) -> None:
        self.a = a
        self.b = b
        self.started = gevent.event.Event()
        self.ended = False
        self.b_left = gevent.event.Event()
        self.torn_down = gevent.event.Event()


def _step_profile(ch: Channel, other: Channel) -> None:
    """switch_channel_step_caller_profile, recording the transfer like uuid_bridge does."""
    now = ch.sim.clock.now_us()
    old = ch.profile
    new = old.clone()
    new.times = Times(
        profile_created=now,
        created=old.times.created,
        answered=old.times.answered,
        progress=old.times.progress,
        progress_media=old.times.progress_media,
        hungup=old.times.hungup,
    )
    old.times.transferred = now
    source = f"{now // 1_000_000}:{uuidlib.uuid4()}:uuid_br:{other.uuid}"
    new.transfer_source = source
    ch.profile_count += 1
    new.profile_index = str(ch.profile_count)
    ch.profile = new
    ch.set_var("transfer_history", source)
    ch.set_var("transfer_source", source)


def uuid_bridge(a: Channel, b: Channel) -> None:
    """Break both legs out of what they run and bridge them (A originator, B originatee)."""
    a.set_var("uuid_bridge", b.uuid)
    for x, y in ((a, b), (b, a)):
        x.set_var("bridge_channel", y.name)
        x.set_var("bridge_uuid", y.uuid)
        x.set_var("signal_bond", y.uuid)
        x.set_var("original_destination_number", x.profile.destination_number)
        x.set_var("original_caller_id_name", x.profile.caller_id_name)
        x.set_var("original_caller_id_number", x.profile.caller_id_number)
    _step_profile(a, b)
    _step_profile(b, a)
    a.profile.logical_direction = "inbound"
    originator = a.profile.clone()
    originator.profile_index = originator.transfer_source = ""
    originator.times = Times()
    a.profile.callee_id_name = b.profile.callee_id_name
    a.profile.callee_id_number = b.profile.callee_id_number
    b.profile.caller_id_name = a.profile.caller_id_name
    b.profile.caller_id_number = a.profile.caller_id_number
    originatee = b.profile.clone()
    originatee.logical_direction = "inbound"
    originatee.profile_index = originatee.transfer_source = ""
    a.other_profile, a.other_type = originatee, "originatee"
    b.other_profile, b.other_type = originator, "originator"
    a.hit_dialplan, b.hit_dialplan = True, False
    bridge = Bridge(a, b)
    for ch, target in ((a, CS_SOFT_EXECUTE), (b, CS_EXCHANGE_MEDIA)):
        ch.state = CS_HIBERNATE
        ch.bridge = bridge
        ch.transfer = _mover(ch, target)
        ch.wake()


def _mover(ch: Channel, target: int):
    def move() -> None:
        ch.set_running_state(CS_HIBERNATE)
        ch.state = CS_RESET
        ch.set_running_state(CS_RESET)
        ch.state = target

    return move


def run_state(ch: Channel) -> None:
    """CS_SOFT_EXECUTE (originator) or CS_EXCHANGE_MEDIA (originatee) of a bridge."""
    bridge = ch.bridge
    if bridge is None:
        ch.state = CS_EXECUTE
        return
    if ch is bridge.a:
        _originator(ch, bridge)
    else:
        _originatee(ch, bridge)


def _start_vars(ch: Channel, other: Channel, sent_name: str, sent_number: str) -> None:
    ch.set_var("bridge_to", other.uuid)
    ch.set_var("last_bridge_to", other.uuid)
    ch.set_var("bridge_channel", other.name)
    ch.set_var("bridge_uuid", other.uuid)
    ch.set_var("signal_bond", other.uuid)
    ch.set_var("last_sent_callee_id_name", sent_name or sent_number)
    ch.set_var("last_sent_callee_id_number", sent_number)
    peer = ch.loopback_peer
    if peer is not None and ch.direction == "outbound":
        # mod_loopback passes the display update on to the other leg's callee id
        if sent_name or sent_number:
            peer.profile.callee_id_name = sent_name or sent_number
        if sent_number:
            peer.profile.callee_id_number = sent_number


def _forward_dtmf(to: Channel):
    def forward(digit: str) -> bool:
        to.send_dtmf(digit)
        return False

    return forward


def _originator(a: Channel, bridge: Bridge) -> None:
    a.set_running_state(CS_SOFT_EXECUTE)
    a.set_var("uuid_bridge", None)
    a.fire(
        "CHANNEL_EXECUTE",
        tail=[("Application", "uuid_bridge"), ("Application-Data", bridge.b.uuid)],
        calling=UUID_BRIDGE_EXECUTE_CALLING,
    )
    _bridge_loop(a, bridge)
    if not a.down:
        a.state = CS_EXECUTE


def run_inline(a: Channel, b: Channel) -> None:
    """The bridge application: ``a`` (running the app) bridges to the freshly answered ``b``."""
    bridge = Bridge(a, b)
    originatee = b.profile.clone()
    originatee.profile_index = ""
    originator = a.profile.clone()
    originator.profile_index = ""
    a.other_profile, a.other_type = originatee, "originatee"
    b.other_profile, b.other_type = originator, "originator"
    a.bridge = b.bridge = bridge
    b.set_state(CS_EXCHANGE_MEDIA)
    _bridge_loop(a, bridge)


def _bridge_loop(a: Channel, bridge: Bridge) -> None:
    """CHANNEL_BRIDGE, exchange DTMF until one leg goes, CHANNEL_UNBRIDGE."""
    b = bridge.b
    a.wait(None, events=False, until=lambda: b.down or b.running_state == CS_EXCHANGE_MEDIA)
    if b.down or a.down:
        bridge.ended = True
        bridge.started.set()
        b.wake()
        if not b.down or b.running_state == CS_EXCHANGE_MEDIA:
            bridge.b_left.wait()  # B is in the bridge, or will be: it leaves seeing it ended
        # else B hung up before it took the bridge: it never comes (nothing to wait for)
        bridge.torn_down.set()
        a.bridge = None
        return
    now = a.sim.clock.now_us()
    a.profile.times.bridged = b.profile.times.bridged = now
    a.bridge_partner, b.bridge_partner = b, a
    ids = [("Bridge-A-Unique-ID", a.uuid), ("Bridge-B-Unique-ID", b.uuid)]
    a.fire("CHANNEL_BRIDGE", pre=ids)
    _start_vars(a, b, b.profile.callee_id_name, b.profile.callee_id_number)
    b.set_var("call_uuid", a.uuid)
    _start_vars(b, a, a.profile.caller_id_name, a.profile.caller_id_number)
    bridge.started.set()
    b.wake()
    a.wait(None, on_dtmf=_forward_dtmf(b), until=bridge.b_left.is_set)
    bridge.ended = True
    b.wake()
    bridge.b_left.wait()
    a.bridge_partner = None
    a.set_var("bridge_to", None)
    # each leg learns how the other one ended; B gets its own call_uuid back
    if b.hangup_cause:
        a.set_var("bridge_hangup_cause", b.hangup_cause)
    if a.hangup_cause:
        b.set_var("bridge_hangup_cause", a.hangup_cause)
    b.set_var("call_uuid", b.uuid)
    bridge.torn_down.set()
    a.fire("CHANNEL_UNBRIDGE", pre=ids)
    a.bridge = None


def _originatee(b: Channel, bridge: Bridge) -> None:
    b.set_running_state(CS_EXCHANGE_MEDIA)
    bridge.a.wake()
    b.wait(None, on_dtmf=_forward_dtmf(bridge.a), until=lambda: bridge.ended)
    b.bridge_partner = None
    b.set_var("bridge_to", None)
    b.bridge = None
    if b.down:
        # B ended the bridge: A tears it down before B carries on to its hangup states
        bridge.b_left.set()
        bridge.a.wake()
        bridge.torn_down.wait()
    else:
        # A ended it: B hangs up and carries on; A tears down afterwards
        b.hangup("NORMAL_CLEARING")
        bridge.b_left.set()
        bridge.a.wake()
