"""One call leg: state machine, variables, signalling and the events it fires.

The model follows FreeSWITCH 1.10's core closely enough that the events a channel fires carry
the same headers, in the same order, with the same variables as the real switch (checked against
the wire captures). Each channel runs its own greenlet (the FreeSWITCH session thread); other
greenlets (API commands, the peer leg) act on it by setting flags and waking it up.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import TYPE_CHECKING

import gevent
import gevent.event

from esl_callback.simulator.causes import q850
from esl_callback.simulator.clock import local_stamp
from esl_callback.simulator.events import Event, Headers
from esl_callback.simulator.profile import CallerProfile

if TYPE_CHECKING:
    from esl_callback.simulator.bridge import Bridge
    from esl_callback.simulator.core import Simulator
    from esl_callback.simulator.outbound import OutboundSession
    from esl_callback.switch.protocol import Command

log = logging.getLogger(__name__)

STATE_NAMES = (
    "CS_NEW",
    "CS_INIT",
    "CS_ROUTING",
    "CS_SOFT_EXECUTE",
    "CS_EXECUTE",
    "CS_EXCHANGE_MEDIA",
    "CS_PARK",
    "CS_CONSUME_MEDIA",
    "CS_HIBERNATE",
    "CS_RESET",
    "CS_HANGUP",
    "CS_REPORTING",
    "CS_DESTROY",
)
(
    CS_NEW,
    CS_INIT,
    CS_ROUTING,
    CS_SOFT_EXECUTE,
    CS_EXECUTE,
    CS_EXCHANGE_MEDIA,
    CS_PARK,
    CS_CONSUME_MEDIA,
    CS_HIBERNATE,
    CS_RESET,
    CS_HANGUP,
    CS_REPORTING,
    CS_DESTROY,
) = range(13)

# Events that carry the channel variables (switch_channel_event_set_extended_data).
EXTENDED_EVENTS = frozenset(
    {
        "CHANNEL_CREATE",
        "CHANNEL_ORIGINATE",
        "CHANNEL_UUID",
        "CHANNEL_ANSWER",
        "CHANNEL_PARK",
        "CHANNEL_UNPARK",
        "CHANNEL_BRIDGE",
        "CHANNEL_UNBRIDGE",
        "CHANNEL_PROGRESS",
        "CHANNEL_PROGRESS_MEDIA",
        "CHANNEL_HANGUP",
        "CHANNEL_HANGUP_COMPLETE",
        "REQUEST_PARAMS",
        "CHANNEL_DATA",
        "CHANNEL_EXECUTE",
        "CHANNEL_EXECUTE_COMPLETE",
        "CHANNEL_DESTROY",
        "SESSION_HEARTBEAT",
        "API",
        "RECORD_START",
        "RECORD_STOP",
        "PLAYBACK_START",
        "PLAYBACK_STOP",
        "CALL_UPDATE",
        "MEDIA_BUG_START",
        "MEDIA_BUG_STOP",
        "CUSTOM",
    }
)

_VARIABLE_NAMES: dict[str, str] = {}  # variable name -> "variable_<name>"


@lru_cache(maxsize=64)
def _codec_headers(codec: tuple[str, int, int]) -> tuple[tuple[str, str], ...]:
    name, rate, bits = codec
    return tuple(
        header
        for side in ("Read", "Write")
        for header in (
            (f"Channel-{side}-Codec-Name", name),
            (f"Channel-{side}-Codec-Rate", str(rate)),
            (f"Channel-{side}-Codec-Bit-Rate", str(bits)),
        )
    )


# Why a blocking wait returned.
TIMEOUT, DTMF, BREAK, DOWN, DONE = "timeout", "dtmf", "break", "down", "done"

# switch_ivr_park without media: it sleeps 20 ms (switch_yield(20000)) between looks at the queue.
NO_MEDIA_POLL_US = 20_000


class Channel:
    """A FreeSWITCH session + channel."""

    def __init__(
        self,
        sim: Simulator,
        *,
        uuid: str,
        name: str,
        direction: str,
        profile: CallerProfile,
        codec: tuple[str, int, int] | None = ("L16", 8000, 128000),
    ) -> None:
        self.sim = sim
        self.uuid = uuid
        self.name = name
        self.direction = direction
        self.codec = codec
        now = sim.clock.now_us()
        profile.uuid = uuid
        profile.chan_name = name
        profile.profile_index = "1"
        profile.times.profile_created = profile.times.created = now
        self.profile = profile
        self.initial_cid = (profile.caller_id_name, profile.caller_id_number)
        self.initial_dest = profile.destination_number
        self.initial_context = profile.context
        self.other_profile: CallerProfile | None = None
        self.other_type: str | None = None
        self.vars: dict[str, str] = {}
        self.state = CS_NEW
        self.running_state = CS_NEW
        self.callstate = "DOWN"
        self.answered = False
        self.early_media = False
        self.ring_ready_flag = False
        self.hit_dialplan = direction == "inbound"
        self.hangup_cause: str | None = None
        # relations
        self.loopback_peer: Channel | None = None
        self.link_broken = False
        self.bridge_partner: Channel | None = None
        self.bridge: Bridge | None = None
        self.controlled = False
        self.profile_count = 1
        self.outbound: OutboundSession | None = None
        # session machinery
        self.extension: list[tuple[str, str | None]] = []
        self.extension_name = self.extension_number = ""  # the CDR's callflow names them
        self.ext_index = 0
        self.transfer: Callable[[], None] | None = None
        self.break_flag = False
        self.event_lock = 0
        self.app_depth = 0
        self.app_log: list[tuple[str, str | None, int]] = []  # (app, data, started at, us)
        self.private_events: deque[tuple[int, Command]] = deque()  # (queued at, sendmsg)
        self.parse_floor_us = 0  # no queued sendmsg is taken before the frame after this
        self.dtmf_queue: deque[tuple[str, int]] = deque()
        self.digits_dialed = ""
        self.silent = False
        self._wake = gevent.event.Event()
        self.created = gevent.event.Event()
        self.changed = gevent.event.Event()
        self.watchers: set[gevent.event.Event] = set()  # set on every change (ESL listeners)
        self.greenlet: gevent.Greenlet | None = None

    # -- variables ---------------------------------------------------------------------------

    def get_var(self, name: str) -> str | None:
        return self.vars.get(name)

    def set_var(self, name: str, value: str | None) -> None:
        """switch_channel_set_variable: a set value moves to the end; None deletes."""
        self.vars.pop(name, None)
        if value is not None and value != "":
            self.vars[name] = value

    def set_vars(self, pairs: Iterable[tuple[str, str | None]]) -> None:
        for name, value in pairs:
            self.set_var(name, value)

    # -- events -------------------------------------------------------------------------------

    @property
    def down(self) -> bool:
        return self.state >= CS_HANGUP

    def answer_state(self) -> str:
        if self.down:
            return "hangup"
        if self.answered:
            return "answered"
        if self.early_media:
            return "early"
        return "ringing"

    def basic_data(self) -> Headers:
        """switch_channel_event_set_basic_data."""
        direction = self.direction
        out: Headers = [
            ("Channel-State", STATE_NAMES[self.running_state]),
            ("Channel-Call-State", self.callstate),
            ("Channel-State-Number", str(self.state)),
            ("Channel-Name", self.name),
            ("Unique-ID", self.uuid),
            ("Call-Direction", direction),
            ("Presence-Call-Direction", direction),
            ("Channel-HIT-Dialplan", "true" if self.hit_dialplan else "false"),
        ]
        for var, header in (
            ("presence_id", "Channel-Presence-ID"),
            ("presence_data", "Channel-Presence-Data"),
        ):
            if var in self.vars:
                out.append((header, self.vars[var]))
        out.append(("Channel-Call-UUID", self.vars.get("call_uuid", self.uuid)))
        out.append(("Answer-State", self.answer_state()))
        if self.hangup_cause:
            out.append(("Hangup-Cause", self.hangup_cause))
        if self.codec:
            out += _codec_headers(self.codec)
        out += self.profile.headers("Caller")
        if self.other_profile is not None and self.other_type:
            out.append(("Other-Type", self.other_type))
            out += self.other_profile.headers("Other-Leg")
        return out

    def variable_headers(self) -> Headers:
        names = _VARIABLE_NAMES
        out = []
        for k, v in self.vars.items():
            name = names.get(k)
            if name is None:
                if len(names) > 10_000:
                    names.clear()
                name = names[k] = f"variable_{k}"
            out.append((name, v))
        return out

    def event_data(self, name: str) -> Headers:
        """switch_channel_event_set_data: basic data, plus variables for the listed events."""
        data = self.basic_data()
        if name in EXTENDED_EVENTS:
            data += self.variable_headers()
        return data

    def fire(
        self,
        name: str,
        *,
        pre: Iterable[tuple[str, str]] = (),
        tail: Iterable[tuple[str, str]] = (),
        lead: Iterable[tuple[str, str]] = (),
        calling: tuple[str, str, int] | None = None,
    ) -> Event | None:
        """Fire a channel event: core headers, ``pre``, channel data, then ``tail``."""
        if self.silent:
            return None
        return self.sim.bus.fire(
            name,
            lambda: [*pre, *self.event_data(name), *tail],
            lead=lead,
            unique_id=self.uuid,
            calling=calling,
        )

    # -- state ----------------------------------------------------------------------------------

    def set_callstate(self, callstate: str) -> None:
        """switch_channel_perform_set_callstate (fires CHANNEL_CALLSTATE on a change)."""
        if callstate == self.callstate:
            return
        original = self.callstate
        self.callstate = callstate
        numbers = {
            "DOWN": 0,
            "DIALING": 1,
            "RINGING": 2,
            "EARLY": 3,
            "ACTIVE": 4,
            "HELD": 5,
            "RING_WAIT": 6,
            "HANGUP": 7,
            "UNHOLD": 8,
        }
        self.fire(
            "CHANNEL_CALLSTATE",
            pre=[
                ("Original-Channel-Call-State", original),
                ("Channel-Call-State-Number", str(numbers.get(callstate, 0))),
            ],
        )

    def set_running_state(self, state: int) -> None:
        """switch_channel_perform_set_running_state (fires CHANNEL_STATE)."""
        self.running_state = state
        if self.direction == "inbound" and state < CS_HANGUP:
            if state == CS_ROUTING:
                self.set_callstate("RINGING")
            elif self.answered:
                self.set_callstate("ACTIVE")
            elif self.early_media:
                self.set_callstate("EARLY")
        self.fire("CHANNEL_STATE")
        self.sim.signal(self)

    def set_state(self, state: int) -> None:
        """Ask the session to move to ``state`` (like switch_channel_set_state)."""
        if self.down and state < self.state:
            return
        self.state = state
        self.wake()

    def wake(self) -> None:
        self._wake.set()

    def sleep_until_woken(self, state: int) -> None:
        """Idle until something changes the state, hangs up or asks for a transfer."""
        self._wake.clear()
        if self.state == state and not self.down and self.transfer is None:
            self._wake.wait()

    # -- signalling ------------------------------------------------------------------------------

    def mark_ring_ready(self) -> None:
        """switch_channel_perform_mark_ring_ready_value: CHANNEL_PROGRESS, then RINGING."""
        if self.ring_ready_flag or self.down:
            return
        self.ring_ready_flag = True
        self.profile.times.progress = self.sim.clock.now_us()
        self.fire("CHANNEL_PROGRESS")
        if self.callstate in ("DOWN", "DIALING"):
            self.set_callstate("RINGING")
        self.execute_on("execute_on_ring")
        self.sim.signal(self)

    def mark_pre_answered(self) -> None:
        """switch_channel_perform_mark_pre_answered: CHANNEL_PROGRESS_MEDIA, then EARLY."""
        if self.early_media or self.answered or self.down:
            return
        self.early_media = True
        self.profile.times.progress_media = self.sim.clock.now_us()
        self.fire("CHANNEL_PROGRESS_MEDIA")
        self.set_var("endpoint_disposition", "EARLY MEDIA")
        self.set_callstate("EARLY")
        self.execute_on("execute_on_pre_answer")
        self.execute_on("execute_on_media")
        self.sim.signal(self)

    def mark_answered(self) -> None:
        """switch_channel_perform_mark_answered: CHANNEL_ANSWER, disposition, then ACTIVE."""
        if self.answered or self.down:
            return
        self.answered = True
        self.profile.times.answered = self.sim.clock.now_us()
        self.fire("CHANNEL_ANSWER")
        self.set_var("endpoint_disposition", "ANSWER")
        self.set_callstate("ACTIVE")
        self.execute_on("execute_on_answer")
        if not self.early_media:
            self.execute_on("execute_on_pre_answer")
            self.execute_on("execute_on_media")
        self.sim.signal(self)

    def execute_on(self, prefix: str) -> None:
        """switch_channel_execute_on: run the application in every variable (global or
        channel) whose name starts with ``prefix``: ``app arg`` or ``app:arg`` right here,
        ``app::arg`` in the background."""
        from esl_callback.simulator.session import execute

        merged = {**self.sim.config.globals, **self.vars}
        for name, value in list(merged.items()):
            if not name.lower().startswith(prefix) or not value:
                continue
            background = False
            app, arg = value, None
            for i, ch in enumerate(value):
                if ch == ":" and value[i + 1 : i + 2] == ":":
                    background = True
                    app, arg = value[:i], value[i + 2 :] or None
                    break
                if ch in " :":
                    app, arg = value[:i], value[i + 1 :] or None
                    break
            if background:
                gevent.spawn(execute, self, app, arg)
            else:
                execute(self, app, arg)

    def ring_ready(self) -> None:
        """Indicate ringing; a loopback -b leg passes it to its -a leg first."""
        if self.loopback_peer is not None and self.direction == "inbound":
            self.loopback_peer.mark_ring_ready()
        self.mark_ring_ready()

    def pre_answer(self) -> None:
        if self.answered:
            return
        if self.loopback_peer is not None and self.direction == "inbound":
            self.loopback_peer.mark_pre_answered()
        self.mark_pre_answered()

    def answer(self) -> None:
        if self.answered:
            return
        if self.loopback_peer is not None and self.direction == "inbound":
            self.loopback_peer.mark_answered()
        self.mark_answered()

    @property
    def media_ready(self) -> bool:
        return (self.answered or self.early_media) and not self.down

    # -- hangup -----------------------------------------------------------------------------------

    def hangup(self, cause: str = "NORMAL_CLEARING") -> bool:
        """switch_channel_perform_hangup. False if the channel was already down."""
        if self.down:
            return False
        if cause == "NONE":
            cause = "NORMAL_CLEARING"
        log.debug("%s hangup %s (%s)", self.uuid, cause, self.name)
        partner = self.bridge_partner
        if partner is not None:
            role = (
                "originator" if self.bridge is not None and self.bridge.a is self else "originatee"
            )
            self.set_var("last_bridge_role", role)
            partner.set_var("last_bridge_hangup_cause", cause)
        self.hangup_cause = cause
        self.state = CS_HANGUP
        self.fire("CHANNEL_HANGUP")
        self.wake()
        peer = self.loopback_peer
        if peer is not None:
            peer.link_broken = True
            peer.wake()
        self.sim.signal(self)
        return True

    def _hangup_state(self) -> None:
        """CS_HANGUP: state events, then mod_loopback hangs up the other leg with our cause."""
        self.set_running_state(CS_HANGUP)
        self.profile.times.hungup = self.sim.clock.now_us()
        self.set_callstate("HANGUP")
        peer = self.loopback_peer
        if peer is not None and not peer.down:
            peer.hangup(self.hangup_cause or "NORMAL_CLEARING")

    def _reporting_state(self) -> None:
        """CS_REPORTING: the CDR variables, the CDR post (simulator/json_cdr.py), then
        CHANNEL_HANGUP_COMPLETE."""
        self.state = CS_REPORTING
        self.set_running_state(CS_REPORTING)
        cause = self.hangup_cause or "NORMAL_CLEARING"
        self.set_var("hangup_cause", cause)
        self.set_var("hangup_cause_q850", str(q850(cause)))
        self.set_var("digits_dialed", self.digits_dialed or "none")
        self.set_vars(cdr_variables(self))
        poster = self.sim.json_cdr
        if poster is not None and not self.silent:
            poster.report(self)  # mod_json_cdr's on_reporting: HANGUP_COMPLETE waits for it
        self.fire("CHANNEL_HANGUP_COMPLETE", pre=[("Hangup-Cause", cause)])

    def _destroy_state(self) -> None:
        """The session is destroyed once nobody holds it: a lingering outbound socket does."""
        conn = self.outbound
        if conn is not None:
            conn.closed_event.wait()
        self.state = CS_DESTROY
        self.running_state = CS_DESTROY
        self.fire("CHANNEL_DESTROY")
        self.sim.forget(self)
        # Reference counting frees the channel now, not a full garbage collection later (with
        # thousands of channels that paused the whole switch for most of a second).
        self.outbound = self.loopback_peer = None

    # -- the session greenlet ----------------------------------------------------------------------

    def start(self) -> None:
        """Launch the session: CS_INIT (CHANNEL_CREATE), then the state machine."""
        self.greenlet = gevent.spawn(self._session)

    def _session(self) -> None:
        from esl_callback.simulator import session

        try:
            session.run(self)
        except Exception:
            log.exception("%s session crashed", self.uuid)
            self.hangup("CRASH")
            session.finish(self)

    # -- waiting -----------------------------------------------------------------------------------

    def interrupted(self) -> bool:
        """The current application must stop (hangup, transfer, or the loopback link is gone)."""
        return self.down or self.transfer is not None or self.link_broken

    def wait(
        self,
        seconds: float | None,
        *,
        on_dtmf: Callable[[str], bool] | None = None,
        events: bool = True,
        until: Callable[[], bool] | None = None,
    ) -> str:
        """Block for a simulated duration, serving DTMF and queued sendmsg like a media loop.

        ``on_dtmf`` is called for each digit read; returning True ends the wait with DTMF.
        ``until`` ends the wait (DONE) as soon as it returns True; call :meth:`wake` after
        changing what it looks at. A queued sendmsg is taken at the next media frame (see
        :meth:`pickup_due_us`); DTMF, breaks and hangups are seen at once.
        """
        clock = self.sim.clock
        deadline = None if seconds is None else clock.now() + seconds
        while True:
            self._wake.clear()
            if self.interrupted():
                return DOWN
            if self.break_flag:
                self.break_flag = False
                return BREAK
            if until is not None and until():
                return DONE
            pickup = None
            if events and self.private_events and not self.event_lock:
                due_us = self.pickup_due_us()
                if clock.now_us() >= due_us:
                    self._parse_next_event()
                    if self.down:
                        return BREAK
                    continue
                pickup = due_us / 1_000_000
            while self.dtmf_queue and not self.interrupted():
                digit = self.dequeue_dtmf()
                if on_dtmf is not None and on_dtmf(digit):
                    return DTMF
            if self.interrupted():
                return DOWN
            if deadline is not None and deadline <= clock.now():
                return TIMEOUT
            times = [t for t in (deadline, pickup) if t is not None]
            if times:
                self._wake.wait(clock.real(max(0.0, min(times) - clock.now())))
            else:
                self._wake.wait()

    def _parse_next_event(self) -> None:
        """switch_ivr_parse_next_event. With media the session goes on with the rest of the queue
        at once (switch_ivr_parse_all_events) unless the break flag is up; without media it takes
        one per look (switch_ivr_park), and the rest waits for the next look."""
        from esl_callback.simulator import session

        media = self.media_ready
        session.parse_next_event(self, fire_private=media)
        if not media or self.break_flag:
            self.parse_floor_us = self.sim.clock.now_us()

    # -- media frames ------------------------------------------------------------------------------

    def frame_grid(self) -> tuple[int, int]:
        """(first tick, period) of the timer the session reads its media frames by, in us.

        mod_loopback starts a channel's frame timer as it creates the channel (tech_init) and
        FreeSWITCH 1.10 on Linux gives every timer its own timerfd (switch_time.c, TFD=2,
        _timerfd_init), so ticks come every frame from the channel's creation, not on a grid
        shared by the switch (the captures agree: sendmsg executes land 20 ms apart from
        Caller-Channel-Created-Time). Other endpoints' RTP timers start with their media.
        Without media a parked channel looks at its queue every 20 ms (switch_ivr_park).
        """
        times = self.profile.times
        if not self.media_ready:
            return times.created, NO_MEDIA_POLL_US
        origin = times.created
        if not self.name.startswith("loopback/"):
            origin = times.progress_media or times.answered or origin
        return origin, self.sim.config.media_frame_ms * 1000

    def next_frame_us(self, moment_us: int) -> int:
        """The first frame tick after ``moment_us``."""
        origin, period = self.frame_grid()
        return origin + ((moment_us - origin) // period + 1) * period

    def pickup_due_us(self) -> int:
        """When the queued sendmsg at the head is taken: a parked (or playing) session reads a
        frame, then parses its queued private events (switch_ivr_park, switch_ivr_play_file:
        switch_ivr_parse_all_events between frames), so a sendmsg waits for the first frame
        tick after it was queued (a tick the session missed while busy has passed already)."""
        queued_us = self.private_events[0][0]
        return self.next_frame_us(max(queued_us, self.parse_floor_us))

    def read_frames(self, count: int) -> bool:
        """switch_core_session_read_frame ``count`` times: until the count-th frame tick from
        now. Nothing else is served meanwhile; False when the channel goes down first."""
        clock = self.sim.clock
        period = self.frame_grid()[1]
        due_us = self.next_frame_us(clock.now_us()) + (count - 1) * period
        while not self.down:
            remaining = due_us - clock.now_us()
            if remaining <= 0:
                return True
            self._wake.clear()
            self._wake.wait(clock.real(remaining / 1_000_000))
        return False

    def flush_private_events(self) -> int:
        """switch_core_session_flush_private_events: drop every queued sendmsg."""
        count = len(self.private_events)
        self.private_events.clear()
        return count

    # -- DTMF --------------------------------------------------------------------------------------

    def queue_dtmf(self, digit: str, duration: int = 2000) -> None:
        """switch_channel_queue_dtmf (a digit arrives from the far end)."""
        if self.down:
            return
        self.dtmf_queue.append((digit, duration))
        self.wake()

    def dequeue_dtmf(self) -> str:
        """switch_channel_dequeue_dtmf: fires the DTMF event and logs the digit."""
        digit, duration = self.dtmf_queue.popleft()
        self.digits_dialed += digit
        self.fire(
            "DTMF",
            tail=[
                ("DTMF-Digit", digit),
                ("DTMF-Duration", str(duration)),
                ("DTMF-Source", "UNKNOWN"),
            ],
        )
        return digit

    def send_dtmf(self, digits: str, spacing: float = 0.0) -> None:
        """Send DTMF out of this leg; over loopback it arrives on the other leg."""
        valid = [d for d in digits if d in "0123456789*#ABCDabcd"]
        self.set_var("last_dtmf_duration", str(500 * len(valid)))
        peer = self.loopback_peer
        if peer is None or not valid:
            return
        if not spacing:
            for digit in valid:
                peer.queue_dtmf(digit.upper())
            return

        def deliver() -> None:
            for digit in valid:
                self.sim.clock.sleep(spacing)
                peer.queue_dtmf(digit.upper())

        gevent.spawn(deliver)


def cdr_variables(channel: Channel) -> list[tuple[str, str]]:
    """switch_channel_set_timestamps: *_stamp, *_epoch and duration variables, in order."""
    t = channel.profile.times
    out: list[tuple[str, str]] = [
        ("start_stamp", local_stamp(t.created)),
        ("profile_start_stamp", local_stamp(t.profile_created)),
    ]
    for name, value in (
        ("answer_stamp", t.answered),
        ("bridge_stamp", t.bridged),
        ("hold_stamp", t.last_hold),
        ("resurrect_stamp", t.resurrected),
        ("progress_stamp", t.progress),
        ("progress_media_stamp", t.progress_media),
    ):
        if value:
            out.append((name, local_stamp(value)))
    out.append(("end_stamp", local_stamp(t.hungup)))
    for name, value in (
        ("start", t.created),
        ("profile_start", t.profile_created),
        ("answer", t.answered),
        ("bridge", t.bridged),
        ("last_hold", t.last_hold),
    ):
        out += [(f"{name}_epoch", str(value // 1_000_000)), (f"{name}_uepoch", str(value))]
    out += [
        ("hold_accum_seconds", str(t.hold_accum // 1_000_000)),
        ("hold_accum_usec", str(t.hold_accum)),
        ("hold_accum_ms", str(t.hold_accum // 1000)),
    ]
    for name, value in (
        ("resurrect", t.resurrected),
        ("progress", t.progress),
        ("progress_media", t.progress_media),
        ("end", t.hungup),
    ):
        out += [(f"{name}_epoch", str(value // 1_000_000)), (f"{name}_uepoch", str(value))]
    if channel.app_log:
        app, arg, _ = channel.app_log[-1]
        out.append(("last_app", app))
        if arg:
            out.append(("last_arg", arg))
    p = channel.profile
    caller_id = (
        f'"{p.caller_id_name}" <{p.caller_id_number}>' if p.caller_id_name else p.caller_id_number
    )
    out.append(("caller_id", caller_id))

    def span(start: int, unit: int) -> int:
        return (t.hungup // unit - start // unit) if start else 0

    def delta(end: int, unit: int) -> int:
        return (end // unit - t.created // unit) if end else 0

    for unit, suffix in ((1_000_000, "sec"), (1000, "msec"), (1, "usec")):
        prefix = {"sec": "", "msec": "m", "usec": "u"}[suffix]
        out += [
            (f"{prefix}duration", str(span(t.created, unit))),
            (f"bill{suffix}", str(span(t.answered, unit))),
            (f"progress{suffix}", str(delta(t.progress, unit))),
            (f"answer{suffix}", str(delta(t.answered, unit))),
            (f"wait{suffix}", str(delta(t.bridged, unit))),
            (f"progress_media{suffix}", str(delta(t.progress_media, unit))),
            (f"flow_bill{suffix}", str(span(t.created, unit) if t.answered else 0)),
        ]
    if channel.get_var("loopback_leg"):
        out.append(("is_loopback", "1"))
    return out
