"""One event-socket connection, inbound (a client connected to us) or outbound (the socket
application connected to a client), handled like mod_event_socket's listener thread.

The connection runs one greenlet: it reads a command, runs it to completion (``api`` blocks the
connection, ``bgapi`` does not), writes the reply, and writes queued events whenever no command
is waiting, when its ``poll_ms`` poll of the socket times out (FreeSWITCH polls the socket for
20 ms at a time, so events reach a listener up to 20 ms after they fire).

The polls are not run one by one: an idle connection sleeps until a command, an event or a
change of its channel comes, and then wakes up when the poll running at that moment would
have timed out (polls follow each other every ``poll_ms`` from the last command on). So events
are written at the same times as by a switch polling every 20 ms, and an idle connection costs
nothing.
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
import socket as pysocket
import time
import uuid as uuidlib
from collections import deque
from typing import TYPE_CHECKING

import gevent
import gevent.event

from esl_callback.simulator import api, session
from esl_callback.simulator.channel import CS_REPORTING
from esl_callback.simulator.events import EVENT_NAMES, SENDEVENT_CALLING, Event
from esl_callback.switch.protocol import (
    Command,
    FrameError,
    format_event_plain,
    format_frame,
    read_command,
    send_message,
)

if TYPE_CHECKING:
    from gevent.socket import socket

    from esl_callback.simulator.channel import Channel
    from esl_callback.simulator.core import Simulator

log = logging.getLogger(__name__)

GOODBYE = b"Disconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n"
AUTH_TIMEOUT = 25.0
MAX_PENDING_COMMANDS = 100
OUTBOUND_CONNECT_HOLD = 0.5  # s: at most, events of a channel wait for its outbound connect

MYEVENTS = frozenset(
    [
        "CHANNEL_ANSWER",
        "CHANNEL_APPLICATION",
        "CHANNEL_BRIDGE",
        "CHANNEL_CREATE",
        "CHANNEL_DATA",
        "CHANNEL_DESTROY",
        "CHANNEL_EXECUTE",
        "CHANNEL_EXECUTE_COMPLETE",
        "CHANNEL_HANGUP",
        "CHANNEL_HANGUP_COMPLETE",
        "CHANNEL_ORIGINATE",
        "CHANNEL_UUID",
        "CHANNEL_OUTGOING",
        "CHANNEL_PARK",
        "CHANNEL_PROGRESS",
        "CHANNEL_PROGRESS_MEDIA",
        "CHANNEL_STATE",
        "CHANNEL_UNBRIDGE",
        "CHANNEL_UNPARK",
        "DETECTED_SPEECH",
        "DTMF",
        "NOTALK",
        "TALK",
    ]
)
LOG_LEVELS = {
    "console": 0,
    "alert": 1,
    "crit": 2,
    "err": 3,
    "error": 3,
    "warning": 4,
    "notice": 5,
    "info": 6,
    "debug": 7,
}


def _true(value: str | None) -> bool:
    return (value or "").strip().lower() in ("true", "yes", "on", "1")


class EslConnection:
    """A listener: subscriptions and filters, the event queue, and the command loop."""

    def __init__(
        self,
        sim: Simulator,
        sock: socket,
        *,
        session: Channel | None = None,
        outbound: bool = False,
        full: bool = True,
        async_mode: bool = True,
    ) -> None:
        self.sim = sim
        self.sock = sock
        with contextlib.suppress(OSError):
            sock.setsockopt(pysocket.IPPROTO_TCP, pysocket.TCP_NODELAY, 1)
        self.rfile = sock.makefile("rb")
        self.session = session
        self.outbound = outbound
        self.full = full
        self.async_mode = async_mode
        self.authed = outbound
        self.running = True
        self.format = "plain"
        self.events_on = False
        self.all_events = False
        self.event_names: set[str] = set()
        self.subclasses: set[str] = set()
        self.filters: list[tuple[str, str]] = []
        self.myevents = False
        self.logging = False
        self.queue: deque[Event] = deque()
        self.lost = 0
        self.killed = False
        self.commands: deque[Command] = deque()
        self.reader_done = False
        self.wakeup = gevent.event.Event()
        self.room = gevent.event.Event()
        self.connected = gevent.event.Event()
        self.linger = False
        self.linger_seconds = -1
        self.handle_disco = False
        self.linger_deadline: float | None = None
        self.resume = False
        self.closed = False
        self.closed_event = gevent.event.Event()
        self.tick = sim.clock.real(sim.config.poll_ms / 1000.0)  # one poll, real seconds
        self.poll_began = time.monotonic()
        self.auth_deadline = sim.clock.now() + AUTH_TIMEOUT
        self.hold_began: float | None = None  # events held back for an outbound connect
        self._watch(session)

    def _watch(self, ch: Channel | None) -> None:
        """Be woken up when ``ch`` changes (hangup, states), to check it when a poll ends."""
        if ch is not None:
            ch.watchers.add(self.wakeup)

    @property
    def route(self) -> str | bool | None:
        """The events this listener can want (see EventSink): none, one channel's, or any."""
        if not self.events_on or self.killed:
            return False
        if self.myevents and self.session is not None:
            return self.session.uuid
        return None

    def _rerouted(self) -> None:
        self.sim.bus.reroute(self)

    # -- EventSink -----------------------------------------------------------------------------

    def wants(self, name: str, subclass: str | None, unique_id: str | None) -> bool:
        if not self.events_on or self.killed:
            return False
        if not self.all_events:
            if name not in self.event_names:
                return False
            if name == "CUSTOM" and subclass and subclass not in self.subclasses:
                return False
        if self.myevents:
            if unique_id is None:
                return False
            if self.session is not None and unique_id != self.session.uuid:
                return False
        return True

    def accepts(self, event: Event) -> bool:
        """The listener's filters (mod_event_socket event_handler)."""
        if not self.filters:
            return True
        send = False
        for name, value in self.filters:
            actual = event.get(name)
            if actual is None:
                continue
            positive = True
            compare = value
            while compare and compare[0] in "+- ":
                if compare[0] == "+":
                    positive = True
                elif compare[0] == "-":
                    positive = False
                compare = compare[1:]
            if send and positive:
                continue
            if not compare:
                continue
            if value.startswith("/"):
                pattern = compare.strip("/")
                matched = re.search(pattern, actual) is not None
            else:
                matched = actual.lower() == compare.lower()
            if matched:
                if not positive:
                    return False
                send = True
        return send

    def deliver(self, event: Event) -> None:
        config = self.sim.config
        if len(self.queue) >= config.event_queue_limit:
            self.lost += 1
            if self.lost > config.event_loss_limit:
                log.warning("listener fell %d events behind: dropping it", self.lost)
                self.kill()
            return
        self.lost = 0
        if not self.queue:
            self.wakeup.set()  # the poll running now writes it when it times out
        self.queue.append(event)

    def kill(self) -> None:
        """Drop a listener that cannot keep up: no notice, the socket just closes."""
        self.killed = True
        self.running = False
        self.queue.clear()
        self.sim.bus.unsubscribe(self)
        self._close_socket()
        self.wakeup.set()

    def _close_socket(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(pysocket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self.sock.close()

    # -- I/O -------------------------------------------------------------------------------------

    def send(self, data: bytes) -> None:
        if self.killed:
            return
        try:
            send_message(self.sock, data)
        except OSError:
            self.running = False

    def reply(self, text: str) -> None:
        self.send(format_frame([("Content-Type", "command/reply"), ("Reply-Text", text)]))

    def _reader(self) -> None:
        try:
            while self.running:
                if len(self.commands) >= MAX_PENDING_COMMANDS:
                    self.room.clear()
                    self.room.wait()
                    continue
                command = read_command(self.rfile)
                if command is None:
                    break
                self.commands.append(command)
                self.wakeup.set()
        except (FrameError, OSError, ValueError) as exc:
            if self.running:  # the peer's doing; a socket we closed ourselves is no news
                log.info("closing ESL connection: %s", exc)
        finally:
            self.reader_done = True
            self.wakeup.set()

    # -- main loop --------------------------------------------------------------------------------

    def serve(self) -> None:
        """Run the connection until it closes."""
        reader = gevent.spawn(self._reader)
        self.sim.bus.subscribe(self)
        self.sim.connections.add(self)
        try:
            if not self.outbound:
                self.send(b"Content-Type: auth/request\n\n")
            self._loop()
        finally:
            self._finish()
            reader.kill(block=False)
            self.sim.connections.discard(self)

    def _loop(self) -> None:
        clock = self.sim.clock
        tick = self.tick
        self.poll_began = time.monotonic()
        while self.running:
            if self.commands:
                command = self.commands.popleft()
                self.room.set()
                self.handle(command)
                if not self.commands and self.running:
                    self.flush()
                self.poll_began = time.monotonic()  # the next poll starts now
                continue
            if self.reader_done:
                break
            if not self.authed and clock.now() > self.auth_deadline:
                break
            self.wakeup.clear()
            due = self._due()
            if due is None:  # nothing to do when a poll ends: sleep until something happens
                self.wakeup.wait()
                continue
            now = time.monotonic()
            began = self.poll_began
            polls = max(1, math.ceil((max(due, now) - began) / tick - 1e-9))
            timeout = began + polls * tick  # when the poll running at `due` times out
            if timeout > now and self.wakeup.wait(timeout - now):
                if self.commands:  # the poll returns with the command: no events first
                    continue
                if time.monotonic() < timeout:  # something else happened: look again
                    continue
            self.poll_began = timeout
            if not self.commands:
                self.flush()
                self.session_checks()

    def _due(self) -> float | None:
        """When (monotonic seconds) a poll ending would have something to do; None: never."""
        now = time.monotonic()
        if self.queue and not self.killed:
            if self.hold_began is not None and self._head_held():
                return self.hold_began + OUTBOUND_CONNECT_HOLD  # or when the connect ends
            return now
        clock = self.sim.clock
        if not self.authed:
            return now + max(0.0, clock.real(self.auth_deadline - clock.now()))
        ch = self.session
        if ch is None:
            return None
        if self.handle_disco:
            if self.linger_deadline is None:
                return None
            until = self.linger_deadline + 1 - clock.now()  # floor(now) > deadline
            return now + max(0.0, clock.real(until))
        if ch.down and (self.linger or ch.running_state >= CS_REPORTING):
            return now
        return None

    def _held(self) -> set[str]:
        """The channels whose events wait: a trigger reaches its socket before listeners
        without a session hear of it (for OUTBOUND_CONNECT_HOLD at most)."""
        connecting = self.sim.connecting() if self.session is None else set()
        if connecting and (self.hold_began is None or not self.queue):
            self.hold_began = time.monotonic()
        if not connecting or time.monotonic() - self.hold_began >= OUTBOUND_CONNECT_HOLD:
            self.hold_began = None
            self.sim.connect_waiters.discard(self.wakeup)
            return set()
        self.sim.connect_waiters.add(self.wakeup)
        return connecting

    def _head_held(self) -> bool:
        return bool(self.queue) and self.queue[0].unique_id in self._held()

    def flush(self) -> None:
        """Write queued events (and the linger notice right after the session's hangup), up
        to the first one held back for an outbound connect."""
        if not self.queue or self.killed:
            return
        held = self._held()
        chunks: list[bytes] = []
        while self.queue:
            if held and self.queue[0].unique_id in held:
                break
            event = self.queue.popleft()
            chunks.append(event.message(self.format))
            if (
                self.linger
                and not self.handle_disco
                and event.name == "CHANNEL_HANGUP"
                and self.session is not None
                and event.unique_id == self.session.uuid
            ):
                chunks.append(self._linger_notice())
        if not self.queue:
            self.hold_began = None
            self.sim.connect_waiters.discard(self.wakeup)
        if chunks:
            self.send(b"".join(chunks))

    def _linger_notice(self) -> bytes:
        assert self.session is not None
        self.handle_disco = True
        if self.linger_seconds >= 0:
            self.linger_deadline = math.floor(self.sim.clock.now()) + self.linger_seconds
        return format_frame(
            [
                ("Content-Type", "text/disconnect-notice"),
                ("Controlled-Session-UUID", self.session.uuid),
                ("Content-Disposition", "linger"),
                ("Channel-Name", self.session.name),
                ("Linger-Time", str(self.linger_seconds)),
                ("Content-Length", "0"),
            ]
        )

    def session_checks(self) -> None:
        """What the listener does once its channel is gone: linger, or close."""
        ch = self.session
        if ch is None:
            return
        if self.handle_disco:
            if (
                self.linger_deadline is not None
                and math.floor(self.sim.clock.now()) > self.linger_deadline
            ):
                self.running = False
            return
        if not ch.down:
            return
        if self.linger:
            self.send(self._linger_notice())
        elif ch.running_state >= CS_REPORTING:
            self.handle_disco = True
            self.running = False

    def _finish(self) -> None:
        self.sim.bus.unsubscribe(self)
        self.sim.connect_waiters.discard(self.wakeup)
        if self.session is not None:
            self.session.watchers.discard(self.wakeup)
        self.queue.clear()
        self.running = False  # before the socket closes: the reader then knows it was ours
        if not self.killed:
            if self.session is not None:
                notice = [
                    ("Content-Type", "text/disconnect-notice"),
                    ("Controlled-Session-UUID", self.session.uuid),
                    ("Content-Disposition", "disconnect"),
                    ("Content-Length", str(len(GOODBYE))),
                ]
            else:
                notice = [
                    ("Content-Type", "text/disconnect-notice"),
                    ("Content-Length", str(len(GOODBYE))),
                ]
            self.send(format_frame(notice, GOODBYE))
            self._close_socket()
        self.closed = True
        self.closed_event.set()
        ch = self.session
        if ch is not None and self.outbound:
            ch.controlled = False
            if self.resume and not ch.down:
                ch.set_var("socket_resume", "true")
            ch.wake()
        self.connected.set()

    # -- commands (mod_event_socket parse_command) -----------------------------------------------

    def handle(self, command: Command) -> None:
        line = command.line
        lower = line.lower()
        if lower.startswith("exit") or line.startswith("..."):
            self.reply("+OK bye")
            self.running = False
            return
        if not self.authed:
            self._unauthenticated(command)
            return
        handler = self._dispatch(lower)
        if handler is None:
            self.reply("-ERR command not found")
            return
        handler(command)
        self._rerouted()

    def _unauthenticated(self, command: Command) -> None:
        line = command.line
        if line.lower().startswith("auth "):
            if line[5:] == self.sim.config.password:
                self.authed = True
                self.reply("+OK accepted")
            else:
                self.reply("-ERR invalid")
                self.running = False
            return
        if line.lower().startswith("userauth "):
            self.reply("-ERR invalid")
            self.running = False
            return
        self.reply("-ERR command not found")

    def _dispatch(self, lower: str):
        session_only = self.session is not None
        table = [
            ("filter ", self._filter, True),
            ("resume", self._resume, session_only),
            ("connect", self._connect, session_only),
            ("getvar", self._getvar, session_only),
            ("myevents", self._myevents, session_only or lower.startswith("myevents ")),
            ("divert_events", self._divert_events, True),
            ("sendmsg", self._sendmsg, True),
        ]
        for prefix, handler, allowed in table:
            if allowed and lower.startswith(prefix):
                return handler
        if self.outbound and not self.full:
            return None
        table = [
            ("sendevent", self._sendevent),
            ("api ", self._api),
            ("bgapi ", self._bgapi),
            ("log", self._log),
            ("linger", self._linger),
            ("nolinger", self._nolinger),
            ("nolog", self._nolog),
            ("event", self._event),
            ("nixevent", self._nixevent),
            ("noevents", self._noevents),
        ]
        for prefix, handler in table:
            if lower.startswith(prefix):
                return handler
        return None

    def _filter(self, command: Command) -> None:
        rest = command.line[7:].lstrip(" ")
        name, _, value = rest.partition(" ")
        if name.lower() == "delete" and value:
            name, _, value = value.partition(" ")
            if name.lower() == "all":
                self.filters.clear()
            else:
                self.filters = [
                    (n, v)
                    for n, v in self.filters
                    if not (n.lower() == name.lower() and (not value or v == value))
                ]
            self.reply(f"+OK filter deleted. [{name}][{value}]")
            return
        if not value:
            self.reply("-ERR invalid syntax")
            return
        if name.lower() == "add":
            name, _, value = value.partition(" ")
        self.filters.append((name, value))
        self.reply(f"+OK filter added. [{name}]=[{value}]")

    def _resume(self, command: Command) -> None:
        assert self.session is not None
        self.resume = True
        self.session.set_var("socket_resume", "true")
        self.reply("+OK")

    def _connect(self, command: Command) -> None:
        ch = self.session
        assert ch is not None
        headers = self.sim.bus.make("CHANNEL_DATA")
        headers += ch.profile.headers("Channel")
        headers += ch.event_data("CHANNEL_DATA")
        headers += [
            ("Content-Type", "command/reply"),
            ("Reply-Text", "+OK\n"),
            ("Socket-Mode", "async" if self.async_mode else "static"),
            ("Control", "full" if self.full else "single-channel"),
        ]
        self.send(format_event_plain(headers))
        self.connected.set()
        ch.wake()

    def _getvar(self, command: Command) -> None:
        assert self.session is not None
        _, _, name = command.line.partition(" ")
        value = self.session.get_var(name.strip()) if name.strip() else None
        self.reply(value or "")

    def _myevents(self, command: Command) -> None:
        if self.myevents:
            self.reply("-ERR aready enabled.")
            return
        line = command.line
        if self.session is None:
            uuid, _, fmt = line[9:].strip().partition(" ")
            ch = self.sim.channels.get(uuid)
            if ch is None and fmt:
                self.reply("-ERR invalid uuid")
                return
            self.session = ch
            self._watch(ch)
        self.event_names |= MYEVENTS
        self.myevents = True
        self.events_on = True
        if "xml" in line.lower():
            self.format = "xml"
        if "json" in line.lower():
            self.format = "json"
        self._rerouted()
        self.reply("+OK Events Enabled")

    def _divert_events(self, command: Command) -> None:
        if self.session is None:
            self.reply("-ERR not controlling a session.")
            return
        value = command.line[13:].strip().lower()
        if not value:
            self.reply("-ERR missing value.")
        elif value == "on":
            self.reply("+OK events diverted")
        else:
            self.reply("+OK events not diverted")

    def _sendmsg(self, command: Command) -> None:
        uuid = command.line[7:].strip() or (command.get("session-id") or "")
        own = self.session
        if own is not None and uuid == own.uuid:
            uuid = ""
        if not uuid and own is not None:
            if self.async_mode or _true(command.get("async")):
                session.queue_private_event(own, command)
            else:
                session.parse_event(own, command)
            self.reply("+OK")
            return
        target = self.sim.channels.get(uuid) if uuid else None
        if target is None:
            self.reply(f"-ERR invalid session id [{uuid}]")  # captured
            return
        session.queue_private_event(target, command)
        self.reply("+OK")

    def _sendevent(self, command: Command) -> None:
        event_uuid = str(uuidlib.uuid4())
        name = command.line[9:].strip().upper()
        if name not in EVENT_NAMES:
            name = "CLONE"
        headers = [("Command", command.line), *command.headers, ("Event-UUID", event_uuid)]
        subclass = None
        if name == "CUSTOM":
            subclass = next((v for k, v in headers if k.lower() == "event-subclass"), None)
            if subclass is not None:
                headers = [("Event-Subclass", subclass)] + [
                    (k, v) for k, v in headers if k.lower() != "event-subclass"
                ]
        body = command.body.decode("utf-8", "replace") if command.body else None
        unique_id = next((v for k, v in headers if k.lower() == "unique-id"), None)
        self.sim.bus.fire(
            name,
            lead=headers,
            body=body,
            subclass=subclass,
            unique_id=unique_id,
            calling=SENDEVENT_CALLING,
        )
        self.reply(f"+OK {event_uuid}")  # captured

    def _api(self, command: Command) -> None:
        text = command.line[4:]
        name, _, arg = text.partition(" ")
        output = api.execute(self.sim, name, arg or None) or "-ERR no reply\n"
        body = output.encode("utf-8")
        self.send(
            format_frame(
                [("Content-Type", "api/response"), ("Content-Length", str(len(body)))], body
            )
        )

    def _bgapi(self, command: Command) -> None:
        text = command.line[6:]
        name, _, arg = text.partition(" ")
        job_uuid = command.get("Job-UUID") or str(uuidlib.uuid4())
        self.send(
            format_frame(
                [
                    ("Content-Type", "command/reply"),
                    ("Reply-Text", f"+OK Job-UUID: {job_uuid}"),
                    ("Job-UUID", job_uuid),
                ]
            )
        )
        self.sim.spawn_job(job_uuid, name, arg or None)

    def _log(self, command: Command) -> None:
        level_text = command.line[4:] if len(command.line) > 3 else ""
        level = 7
        if level_text:
            level = (
                int(level_text) if level_text.isdigit() else LOG_LEVELS.get(level_text.lower(), -1)
            )
        if not 0 <= level <= 7:
            self.reply("-ERR invalid log level")
            return
        self.logging = True
        self.reply(f"+OK log level {level_text} [{level}]")

    def _nolog(self, command: Command) -> None:
        if self.logging:
            self.logging = False
            self.reply("+OK no longer logging")
        else:
            self.reply("-ERR not loging")

    def _linger(self, command: Command) -> None:
        if self.session is None:
            self.reply("-ERR not controlling a session")
            return
        rest = command.line[6:]
        if rest.startswith(" ") and rest[1:]:
            digits = re.match(r"-?\d+", rest[1:])
            self.linger_seconds = int(digits.group(0)) if digits else 0
            self.reply(f"+OK will linger {self.linger_seconds} seconds")
        else:
            self.linger_seconds = -1
            self.reply("+OK will linger")
        self.linger = True

    def _nolinger(self, command: Command) -> None:
        if self.session is None:
            self.reply("-ERR not controlling a session")
            return
        self.linger = False
        self.reply("+OK will not linger")

    def _event(self, command: Command) -> None:
        tokens = command.line[5:].split(" ")[1:] if " " in command.line[5:] else []
        keys = 0
        custom = False
        for i, token in enumerate(tokens):
            if not token:
                continue
            if i == 0 and token.lower() in ("plain", "json", "xml"):
                self.format = token.lower()
                continue
            if custom:
                self.subclasses.add(token)
                continue
            name = token.upper()
            if name not in EVENT_NAMES:
                continue
            keys += 1
            if name == "ALL":
                self.all_events = True
                self.event_names |= EVENT_NAMES
            self.event_names.add(name)
            if name == "CUSTOM":
                custom = True
        if not keys:
            self.reply("-ERR no keywords supplied")
            return
        self.events_on = True
        self._rerouted()
        self.reply(f"+OK event listener enabled {self.format}")

    def _nixevent(self, command: Command) -> None:
        tokens = command.line[5:].split(" ")[1:] if " " in command.line[5:] else []
        keys = 0
        custom = False
        for token in tokens:
            if not token:
                continue
            if custom:
                self.subclasses.discard(token)
                continue
            name = token.upper()
            if name not in EVENT_NAMES:
                continue
            keys += 1
            if name == "CUSTOM":
                custom = True
            elif name == "ALL":
                self.all_events = False
                self.event_names.clear()
            else:
                self.all_events = False
                self.event_names.discard(name)
        if not keys:
            self.reply("-ERR no keywords supplied")
            return
        self.events_on = True
        self._rerouted()
        self.reply("+OK events nixed")

    def _noevents(self, command: Command) -> None:
        self.queue.clear()
        if self.events_on:
            self.events_on = False
            self.all_events = False
            self.event_names.clear()
            self.subclasses.clear()
            self._rerouted()
            self.reply("+OK no longer listening for events")
        else:
            self.reply("-ERR not listening for events")
