"""The simulated switch: channel registry, event bus, ESL server, and a Python API for tests.

sim = Simulator(config, speed=50).start()     # listens on a free port when port is 0
uuid = sim.place_call("15550001001", "18005550100", "access")
sim.wait_for(uuid, lambda ch: ch.down, timeout=5)
sim.stop()
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import uuid as uuidlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import gevent
import gevent.event
from gevent.server import StreamServer

from esl_callback.simulator import api
from esl_callback.simulator.channel import Channel
from esl_callback.simulator.clock import SimClock
from esl_callback.simulator.config import SimConfig, load
from esl_callback.simulator.connection import GOODBYE, EslConnection
from esl_callback.simulator.events import CHAT_ERROR_CALLING, EventBus, Identity
from esl_callback.simulator.originate import OriginateError
from esl_callback.simulator.scheduler import Scheduler
from esl_callback.switch.protocol import format_frame

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 20
# `show channels` reads FreeSWITCH's core database, which the switch updates asynchronously:
# a channel 23 ms old was not listed yet in a capture.
DB_LAG = 0.5


@dataclass
class SessionStats:
    """Counters behind ``status`` and the session limits of switch.conf.xml."""

    since_startup: int = 0
    peak: int = 0
    sps_peak: int = 0
    window_second: int = 0
    window_count: int = 0

    def current_sps(self) -> int:
        return self.window_count


@dataclass
class ChatMessage:
    """An SMS sent with the ``chat`` API (what a real switch would send as SIP MESSAGE)."""

    proto: str
    sender: str
    recipient: str
    body: str
    content_type: str = ""


@dataclass
class Simulator:
    """A FreeSWITCH 1.10 stand-in speaking the Event Socket protocol."""

    config: SimConfig = field(default_factory=load)
    speed: float | None = None
    listen: tuple[str, int] | None = None
    password: str | None = None

    def __post_init__(self) -> None:
        if self.speed is not None:
            self.config.speed = self.speed
        if self.listen is not None:
            self.config.listen_host, self.config.listen_port = self.listen
        if self.password is not None:
            self.config.password = self.password
        self.clock = SimClock(self.config.speed)
        self.identity = Identity(
            str(uuidlib.uuid4()), self.config.hostname, self.config.ipv4, self.config.ipv6
        )
        # Like switch_core_init: $${core_uuid} is the Core-UUID every event carries.
        self.config.globals.setdefault("core_uuid", self.identity.core_uuid)
        self.bus = EventBus(self.clock, self.identity)
        self.dialplan = self.config.dialplan
        self.channels: dict[str, Channel] = {}
        self.connections: set[EslConnection] = set()
        self.stats = SessionStats()
        self.scheduler = Scheduler(self.clock)
        self.outbox: list[ChatMessage] = []
        self.started_us = self.clock.now_us()
        self._session_ids = itertools.count(1)
        self._connecting: dict[object, str] = {}  # outbound connects under way: channel
        self.connect_waiters: set[gevent.event.Event] = set()  # set when a connect ends
        self._server: StreamServer | None = None
        self._greenlets: list[gevent.Greenlet] = []
        self._gone: dict[str, tuple[Channel, int]] = {}

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> Simulator:
        """Start listening for inbound ESL connections (port 0 picks a free port)."""
        cfg = self.config
        self._server = StreamServer((cfg.listen_host, cfg.listen_port), self._handle, backlog=1024)
        self._server.start()
        self._greenlets.append(gevent.spawn(self._heartbeat))
        log.info("simulator listening on %s:%d", self.host, self.port)
        return self

    def stop(self) -> None:
        """Hang up every call, close every connection, stop listening."""
        if self._server is not None:
            self._server.stop(timeout=1)
            self._server = None
        for ch in list(self.channels.values()):
            ch.hangup("SYSTEM_SHUTDOWN")
        gevent.sleep(0)
        for conn in list(self.connections):
            conn.kill()
        self.scheduler.stop()
        gevent.killall(self._greenlets, block=False)

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def host(self) -> str:
        assert self._server is not None, "not started"
        return self._server.address[0]

    @property
    def port(self) -> int:
        assert self._server is not None, "not started"
        return self._server.address[1]

    def _handle(self, sock, address) -> None:
        if not self.config.allows(address[0]):
            message = b"Access Denied, go away.\n"
            notice = format_frame(
                [("Content-Type", "text/rude-rejection"), ("Content-Length", str(len(message)))],
                message,
            )
            goodbye = format_frame(
                [("Content-Type", "text/disconnect-notice"), ("Content-Length", str(len(GOODBYE)))],
                GOODBYE,
            )
            with contextlib.suppress(OSError):
                sock.sendall(notice + goodbye)
            sock.close()
            return
        EslConnection(self, sock).serve()

    def _heartbeat(self) -> None:
        while True:
            self.clock.sleep(HEARTBEAT_SECONDS)
            self.bus.fire("HEARTBEAT", self._heartbeat_headers)

    def _heartbeat_headers(self) -> list[tuple[str, str]]:
        status = api.api_status(self, "").splitlines()
        uptime_ms = (self.clock.now_us() - self.started_us) // 1000
        return [
            ("Event-Info", "System Ready"),
            ("Up-Time", status[0][3:]),
            ("FreeSWITCH-Version", f"{api.VERSION}~64bit"),
            ("Uptime-msec", str(uptime_ms)),
            ("Session-Count", str(len(self.channels))),
            ("Max-Sessions", str(self.config.max_sessions)),
            ("Session-Per-Sec", str(self.config.sessions_per_second)),
            ("Session-Per-Sec-Last", str(self.stats.current_sps())),
            ("Session-Per-Sec-Max", str(self.stats.sps_peak)),
            ("Session-Per-Sec-FiveMin", str(self.stats.sps_peak)),
            ("Session-Since-Startup", str(self.stats.since_startup)),
            ("Session-Peak-Max", str(self.stats.peak)),
            ("Session-Peak-FiveMin", str(self.stats.peak)),
            ("Idle-CPU", "99.000000"),
        ]

    # -- channels ------------------------------------------------------------------------------

    def next_session_id(self) -> int:
        return next(self._session_ids)

    def claim_sessions(self, count: int) -> None:
        """switch_core_session_request's limits: max sessions, sessions per second."""
        cfg = self.config
        second = math.floor(self.clock.now())
        stats = self.stats
        if second != stats.window_second:
            stats.window_second, stats.window_count = second, 0
        if stats.window_count + count > cfg.sessions_per_second:
            raise OriginateError("DESTINATION_OUT_OF_ORDER")
        if len(self.channels) + count > cfg.max_sessions:
            raise OriginateError("DESTINATION_OUT_OF_ORDER")
        stats.window_count += count
        stats.sps_peak = max(stats.sps_peak, stats.window_count)
        stats.since_startup += count

    def register(self, ch: Channel) -> None:
        self.channels[ch.uuid] = ch
        self.stats.peak = max(self.stats.peak, len(self.channels))

    def forget(self, ch: Channel) -> None:
        if self.channels.get(ch.uuid) is ch:
            del self.channels[ch.uuid]
            now = self.clock.now_us()
            self._prune_gone(now)
            self._gone[ch.uuid] = (ch, now)

    def _prune_gone(self, now_us: int) -> None:
        """Drop the destroyed channels the core database no longer shows (oldest first)."""
        cutoff = now_us - int(DB_LAG * 1_000_000)
        gone = self._gone
        while gone:
            uuid, (_, when) = next(iter(gone.items()))
            if when >= cutoff:
                break
            del gone[uuid]

    def listed_channels(self) -> list[Channel]:
        """The channels the core database shows now (it lags behind by DB_LAG)."""
        cutoff = self.clock.now_us() - int(DB_LAG * 1_000_000)
        for uuid, (_, gone) in list(self._gone.items()):
            if gone < cutoff:
                del self._gone[uuid]
        live = [ch for ch in self.channels.values() if ch.profile.times.created <= cutoff]
        return live + [ch for ch, _ in self._gone.values()]

    def signal(self, ch: Channel) -> None:
        """Wake everybody waiting for ``ch`` to change (answer, hangup, state)."""
        changed, ch.changed = ch.changed, gevent.event.Event()
        changed.set()
        for watcher in ch.watchers:
            watcher.set()

    def schedule_hangup(self, runtime: int, uuid: str, cause: str, bleg: bool = False) -> int:
        """switch_ivr_schedule_hangup: a task in the channel's group (its id is returned); when
        it runs it hangs up the channel, or with ``bleg`` its bridge partner, if still there."""

        def hangup() -> None:
            ch = self.channels.get(uuid)
            if ch is not None and bleg:
                ch = ch.bridge_partner  # none: FreeSWITCH logs "No channel to hangup"
            if ch is not None:
                ch.hangup(cause)

        return self.scheduler.add(runtime, hangup, "switch_ivr_schedule_hangup", uuid)

    def schedule_broadcast(self, runtime: int, uuid: str, path: str, flags: int) -> int:
        """switch_ivr_schedule_broadcast: a task in the channel's group (its id is returned);
        when it runs it does what uuid_broadcast does (nothing if the channel is gone)."""
        return self.scheduler.add(
            runtime,
            lambda: api.broadcast(self, uuid, path, flags),
            "switch_ivr_schedule_broadcast",
            uuid,
        )

    # -- outbound connects (a trigger reaches the socket before inbound listeners see it) ------

    @contextlib.contextmanager
    def outbound_connect(self, uuid: str) -> Iterator[None]:
        """Channel ``uuid`` connects its socket application."""
        token = object()
        self._connecting[token] = uuid
        try:
            yield
        finally:
            del self._connecting[token]
            for waiter in self.connect_waiters:
                waiter.set()

    def connecting(self) -> set[str]:
        """The channels whose socket application is connecting now."""
        return set(self._connecting.values()) if self._connecting else set()

    # -- API ------------------------------------------------------------------------------------

    def api(self, line: str) -> str:
        """Run an API command like ``api <line>`` on an event socket and return its output."""
        name, _, arg = line.strip().partition(" ")
        return api.execute(self, name, arg or None)

    def spawn_job(self, job_uuid: str, name: str, arg: str | None) -> gevent.Greenlet:
        """A bgapi job: run the command, then fire BACKGROUND_JOB with its output."""

        def run() -> None:
            output = api.execute(self, name, arg)
            extra = [("Job-Command-Arg", arg)] if arg else []
            self.bus.fire(
                "BACKGROUND_JOB",
                lambda: [("Job-UUID", job_uuid), ("Job-Command", name), *extra],
                body=output or None,
            )

        return gevent.spawn(run)

    def place_call(
        self, caller: str, destination: str, context: str, uuid: str | None = None
    ) -> str:
        """A virtual phone dials: ``originate {origination_caller_id_number=caller}
        loopback/destination/context &park()`` as a background job. Returns the caller leg's uuid.
        """
        uuid = uuid or str(uuidlib.uuid4())
        dial = (
            f"{{origination_caller_id_number={caller},origination_uuid={uuid}}}"
            f"loopback/{destination}/{context}"
        )
        job = self.spawn_job(str(uuidlib.uuid4()), "originate", f"{dial} &park()")
        while uuid not in self.channels and not job.dead:  # until the caller leg exists
            gevent.sleep(0.001)
        return uuid

    def wait_for(
        self, uuid: str, predicate: Callable[[Channel], bool], timeout: float = 10.0
    ) -> Channel | None:
        """Wait (real seconds) until the channel satisfies ``predicate``; None if it is gone."""
        with gevent.Timeout(timeout, TimeoutError(f"channel {uuid} did not reach the state")):
            while True:
                ch = self.channels.get(uuid)
                if ch is None:
                    return None
                changed = ch.changed
                if predicate(ch):
                    return ch
                changed.wait()

    def wait_gone(self, uuid: str, timeout: float = 10.0) -> None:
        """Wait (real seconds) until the channel is destroyed."""
        with gevent.Timeout(timeout, TimeoutError(f"channel {uuid} is still up")):
            while uuid in self.channels:
                gevent.sleep(0.005)

    # -- SMS ------------------------------------------------------------------------------------

    def send_chat(self, proto: str, sender: str, recipient: str, body: str, ctype: str) -> None:
        """The ``chat`` API: remember the message; an unregistered recipient gets sofia::error."""
        self.outbox.append(ChatMessage(proto, sender, recipient, body, ctype))
        if proto == "sip":
            self._deliver_chat(sender, recipient, body)

    def _deliver_chat(self, sender: str, recipient: str, body: str) -> None:
        spec = self.config.users.get(recipient.split("@", 1)[0])
        if spec is not None and spec.registered:
            return
        self.bus.fire(
            "CUSTOM",
            lambda: [
                ("Error-Type", "chat"),
                ("Error-Reason", "no recipient"),
                ("Chat-Send-To", recipient),
                ("Chat-Send-From", sender),
                ("Chat-Send-Profile", "internal"),
            ],
            lead=[("Event-Subclass", "sofia::error")],
            body=body,
            subclass="sofia::error",
            calling=CHAT_ERROR_CALLING,
        )

    def receive_sms(
        self,
        sender: str,
        recipient: str,
        body: str,
        *,
        sender_host: str = "127.0.0.1",
        sender_port: int = 5060,
        recipient_host: str = "127.0.0.1",
        display_name: str = "",
        tag: str | None = None,
        context: str = "public",
    ) -> None:
        """A SIP MESSAGE arrives (mod_sms): MESSAGE fires, then delivery to the local user."""
        display = f'"{display_name}" ' if display_name else ""
        from_full = f"{display}<sip:{sender}@{sender_host}>;tag={tag or uuidlib.uuid4().hex[:8]}"
        self.bus.fire(
            "MESSAGE",
            lambda: [
                ("login", f"sip:mod_sofia@{recipient_host}:5060"),
                ("proto", "sip"),
                ("to_proto", "sip"),
                ("from", f"{sender}@{sender_host}"),
                ("from_user", sender),
                ("from_host", sender_host),
                ("to_user", recipient),
                ("to_host", recipient_host),
                ("from_sip_ip", sender_host),
                ("from_sip_port", str(sender_port)),
                ("to", f"{recipient}@{recipient_host}"),
                ("subject", "SIMPLE MESSAGE"),
                ("context", context),
                ("type", "text/plain"),
                ("from_full", from_full),
                ("sip_profile", "internal"),
                ("dest_proto", "sip"),
                ("max_forwards", "70"),
                ("Nonblocking-Delivery", "true"),
            ],
            body=body,
        )
        self._deliver_chat(from_full, f"{recipient}@{recipient_host}", body)
