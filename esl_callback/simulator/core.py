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

from esl_callback.simulator import api, json_cdr
from esl_callback.simulator.channel import Channel
from esl_callback.simulator.clock import SimClock
from esl_callback.simulator.config import SimConfig, UserSpec, load
from esl_callback.simulator.connection import GOODBYE, EslConnection
from esl_callback.simulator.events import (
    CHAT_API_CALLING,
    CHAT_ERROR_CALLING,
    EventBus,
    Identity,
)
from esl_callback.simulator.originate import OriginateError
from esl_callback.simulator.scheduler import Scheduler
from esl_callback.switch.protocol import format_frame

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 20
# sofia_presence_chat_send, blocking: it polls for the MESSAGE's final response every 100 ms
# and gives up after 199 polls (a silent phone: the api waited 19.909 s in the capture).
CHAT_POLL_SECONDS = 0.1
CHAT_GIVE_UP_SECONDS = 19.9
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
    """An SMS sent with the ``chat`` API (what a real switch would send as SIP MESSAGE);
    ``delivered`` is None while sofia waits for the phone's answer."""

    proto: str
    sender: str
    recipient: str
    body: str
    content_type: str = ""
    delivered: bool | None = None


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
        cdr = self.config.json_cdr
        self.json_cdr = json_cdr.Poster(self, cdr) if cdr.enabled else None
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

    def pick_up(self, uuid: str) -> None:
        """The phone that channel ``uuid`` rings picks up now, as its `answer` application
        would (a loopback -a leg: the -b leg that runs the phone's extension answers)."""
        ch = self.channels[uuid]
        phone = (
            ch.loopback_peer if ch.loopback_peer is not None and ch.direction == "outbound" else ch
        )
        phone.answer()

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

    def register_user(
        self, user: str, contact: str = "127.0.0.1", answers_messages: bool = True
    ) -> None:
        """A SIP phone registers as directory user ``user`` from ``contact`` (host[:port]);
        ``answers_messages`` False: it never answers a SIP MESSAGE (see `send_chat`)."""
        spec = self.config.users.setdefault(user, UserSpec())
        spec.registered, spec.contact, spec.answers_messages = True, contact, answers_messages

    def unregister_user(self, user: str) -> None:
        spec = self.config.users.get(user)
        if spec is not None:
            spec.registered = False

    def contact(self, user: str) -> str | None:
        """Where a registered user's phone is, as `sofia_contact` shows it; None if not."""
        spec = self.config.users.get(user)
        if spec is None or not spec.registered:
            return None
        return f"sofia/internal/sip:{user}@{spec.contact}"

    def send_chat(self, proto: str, sender: str, recipient: str, body: str, ctype: str) -> bool:
        """The ``chat`` API (mod_dptools chat_api_function -> switch_core_chat_send_args with
        blocking true, do_chat_send): True for "Sent", False for "Error! Message Not Sent".

        With ``sip``, sofia sends the MESSAGE and, blocking, waits for its final response:
        sofia_presence_chat_send polls every 100 ms, 199 times at most. A registered phone that
        answers makes it return after one poll (0.1 s); one that is registered but silent holds
        it 19.9 s, and the caller (an `api` on an event socket: that whole connection) with it;
        no registration at a local domain: nobody to send to (sofia::error), at once. Then the
        MESSAGE event created at the start is fired with the result (Delivery-Result-Code when
        sofia sent something, Delivery-Failure), just before the API returns. Every message is
        kept in ``outbox`` from the start, with ``delivered`` set at the end.
        """
        created = self.bus.stamp()
        message = ChatMessage(proto, sender, recipient, body, ctype)
        self.outbox.append(message)
        headers = [("proto", "global"), ("from", sender), ("to", recipient)]
        if ctype:
            headers.append(("type", ctype))
        headers += [("skip_global_process", "true"), ("blocking", "true"), ("dest_proto", proto)]
        code = None  # another protocol: "Invalid chat interface", nothing sent
        if proto == "sip":
            code = self._sofia_chat_send("global", sender, recipient, body, blocking=True)
        if code is not None:
            headers.append(("Delivery-Result-Code", str(code)))
        message.delivered = code is not None and 200 <= code < 300
        headers.append(("Delivery-Failure", "false" if message.delivered else "true"))
        self.bus.fire(
            "MESSAGE", lambda: headers, body=body or None, calling=CHAT_API_CALLING, created=created
        )
        return message.delivered

    def _local_hosts(self) -> set[str]:
        """The hosts sofia_glue_find_profile knows: the profiles and the domain ($${domain},
        the switch's address unless set)."""
        return {"internal", "external", self.config.globals.get("domain", self.config.ipv4)}

    def _sofia_chat_send(
        self, proto: str, sender: str, recipient: str, body: str, *, blocking: bool
    ) -> int | None:
        """sofia_presence_chat_send to ``[profile/]user[@host]``: the final SIP status of the
        MESSAGE (200; 0 when a silent phone never answered), or None when there was nobody to
        send to (a local user without a registration: sofia::error "no recipient")."""
        target, _, host = recipient.partition("@")
        profile, slash, user = target.partition("/")
        if not slash:
            profile, user = "", target
        spec = self.config.users.get(user)
        if user.lower().startswith("sip:") or (spec is not None and spec.registered):
            answers = spec is None or spec.answers_messages or user.lower().startswith("sip:")
            if blocking:
                self.clock.sleep(CHAT_POLL_SECONDS if answers else CHAT_GIVE_UP_SECONDS)
            return 200 if answers else 0
        if host and host not in self._local_hosts():
            if blocking:  # sofia sends it to sip:user@host, where a phone answers
                self.clock.sleep(CHAT_POLL_SECONDS)
            return 200
        if proto == "sip":
            shown_from = sender  # an incoming SIP MESSAGE: its From as received
        else:
            name, _, domain = sender.partition("@")
            domain = domain or self.config.globals.get("domain", self.config.ipv4)
            shown_from = f'"{name}" <sip:{name}@{domain}>'
        self.bus.fire(
            "CUSTOM",
            lambda: [
                ("Error-Type", "chat"),
                ("Error-Reason", "no recipient"),
                ("Chat-Send-To", recipient),
                ("Chat-Send-From", shown_from),
                ("Chat-Send-Profile", profile or ("internal" if proto == "sip" else host)),
            ],
            lead=[("Event-Subclass", "sofia::error")],
            body=body,
            subclass="sofia::error",
            calling=CHAT_ERROR_CALLING,
        )
        return None

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
        """A SIP MESSAGE sofia accepted goes through mod_sms (switch_loadable_module.c
        do_chat_send), with the MESSAGE event sofia created (its core headers, sequence number
        and date, are the same in every copy fired):

        1. the chatplan (``config.chatplan``): the extension that matches ``to_user`` adds
           DP_MATCH and runs its actions; ``fire`` fires a copy of the event as it is then;
           ``stop`` ends the chatplan; ``final`` ends it and adds ``final_delivery: true``;
        2. unless ``final``: delivery to the recipient, like a chat to a local user (nobody
           registered: sofia::error, "Nobody to send to" in FreeSWITCH's log);
        3. the event fired once more, with ``Nonblocking-Delivery: true``.

        So an SMS an extension takes with fire + stop or fire + final gives TWO MESSAGE events
        (the second with Nonblocking-Delivery, after final also final_delivery), fire + final
        without the delivery attempt; one no extension takes gives one, after the attempt.
        """
        created = self.bus.stamp()
        display = f'"{display_name}" ' if display_name else ""
        from_full = f"{display}<sip:{sender}@{sender_host}>;tag={tag or uuidlib.uuid4().hex[:8]}"
        headers = [
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
        ]
        final = False
        try:
            extension, dp_match = self.config.chatplan.hunt(context, headers)
        except KeyError:
            extension = None
        if extension is not None:
            if dp_match:
                headers.append(("DP_MATCH", dp_match))
            for app in extension.actions:
                if app == "fire":
                    self._fire_message(list(headers), body, created)
                elif app == "final":
                    headers.append(("final_delivery", "true"))
                    final = True
                    break
                elif app == "stop":
                    break
        if not final:
            self._sofia_chat_send(
                "sip", from_full, f"{recipient}@{recipient_host}", body, blocking=False
            )
        self._fire_message([*headers, ("Nonblocking-Delivery", "true")], body, created)

    def _fire_message(
        self, headers: list[tuple[str, str]], body: str, created: tuple[int, int]
    ) -> None:
        self.bus.fire("MESSAGE", lambda: headers, body=body, created=created)
