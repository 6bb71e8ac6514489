"""Inbound Event Socket connection to one FreeSWITCH node, built on greenswitch.

greenswitch 0.0.19 keeps the socket, the auth handshake and the in-order queue of command replies.
`FramedESL` (mixed into its protocol classes, here and in `outbound.py`) replaces what it gets
wrong:

- frames are read with `protocol.read_frame`: headers and body are split first and every value is
  decoded after, so a caller's `%0A` cannot forge a header and an event's body (a BACKGROUND_JOB
  result, a MESSAGE text) is never folded into its last header; a bad, negative or absurd
  `Content-Length` closes the connection;
- every command has a timeout (`CommandTimeout`); a switch that stays silent while a command waits
  is treated as dead and its connection closed, so the supervisor reconnects;
- events are handed over by the reader itself, in wire order, so `deliver` must never block
  (the controller's `EventRouter` queues each event for its call; an outbound channel completes
  a waiting result): no second greenlet and queue per connection.

`InboundConnection` supervises one node: a fresh greenswitch connection for every (re)connect,
exponential backoff with jitter, one log line per backoff step saying what to check, `auth` or
`userauth`, a subscription to exactly the events asked for, `bgapi` jobs matched by Job-UUID.

Events are subscribed as `event plain` by default: every value arrives percent-encoded, so no
caller-supplied byte (a newline, or a display name that is not UTF-8, which would make a JSON
event undecodable) can break an event; it is the encoding of the outbound `connect` reply too (one
parser for both sides), and `protocol.parse_event_plain` splits before it decodes.
`event_format="json"` also works and parses faster; an event that cannot be decoded is dropped
and counted (`bad_events`), only a framing error closes the connection.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import random
import sys
import termios
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any, Protocol

import gevent
import gevent.event
from greenswitch.esl import InboundESL

from esl_callback.switch import commands, protocol
from esl_callback.switch.commands import UnsafeCommand
from esl_callback.switch.protocol import Frame, send_message

log = logging.getLogger(__name__)

EVENT_CONTENT_TYPES = frozenset({"text/event-plain", "text/event-json"})
YIELD_EVERY = 64  # frames read in a row before the reader lets other greenlets run
BACKLOG_SAMPLE = 16  # events between two looks at the unread backlog (a system call)

EventCallback = Callable[[Frame, str], None]


class Traffic:
    """ESL frames read and commands written by this process, all connections (for metrics)."""

    frames_in = 0
    frames_out = 0


TRAFFIC = Traffic()


class ESLError(Exception):
    """Base of every Event Socket error raised by this package."""


class NotConnected(ESLError):
    """There is no usable connection (never made, lost, or closed)."""


class CommandTimeout(ESLError):
    """No reply (or no result) within the time allowed."""


class CommandFailed(ESLError):
    """FreeSWITCH answered a command with something other than `+OK`."""


class AuthenticationFailed(ESLError):
    """`auth` / `userauth` was refused."""


def single_line(value: str, what: str) -> str:
    """`value` unchanged, or UnsafeCommand if it could end the command and start another."""
    if "\n" in value or "\r" in value:
        raise UnsafeCommand(f"{what} must not contain a line break: {value!r}")
    return value


def _describe(message: str) -> str:
    """The first line of a command, with passwords masked, for logs and errors."""
    first = message.split("\n", 1)[0]
    verb = first.split(" ", 1)[0]
    return f"{verb} ***" if verb in ("auth", "userauth") else first


def reply_text(frame: Frame) -> str:
    """What a reply says: an api/response body, or a command/reply's Reply-Text."""
    if frame.content_type == "api/response":
        return frame.text
    return frame.get("Reply-Text", "") or ""


def expect_ok(frame: Frame, command: str) -> str:
    """The reply text if it starts with `+OK`, else CommandFailed."""
    text = reply_text(frame)
    if not text.startswith("+OK"):
        raise CommandFailed(f"{_describe(command)}: {text.strip() or 'empty reply'}")
    return text


def expect_all_ok(frames: list[Frame], commands: list[str]) -> None:
    """CommandFailed for the first of commands sent together whose reply is not `+OK`."""
    for frame, command in zip(frames, commands, strict=True):
        expect_ok(frame, command)


class FramedESL:
    """Overrides for greenswitch's `ESLProtocol`: framing, parsing, timeouts, event hand-over.

    Mixed in before a greenswitch class; `_setup_framing` must run right after its `__init__`
    (greenswitch spawns the reader there, which starts only when the caller next yields).
    Items handed to `deliver(kind, frame)`: ("event", decoded event), ("notice", disconnect
    notice frame) and, once, ("closed", None) after the connection ended.
    """

    # Set by greenswitch's ESLProtocol.__init__ / connect:
    sock: Any
    sock_file: Any
    connected: bool
    _run: bool
    _commands_sent: list[gevent.event.AsyncResult]
    _auth_request_event: gevent.event.Event
    _receive_events_greenlet: gevent.Greenlet | None

    def _setup_framing(
        self,
        label: str,
        deliver: Callable[[str, Frame | None], None],
        command_timeout: float,
        max_body: int = protocol.DEFAULT_MAX_BODY,
    ) -> None:
        self.label = label
        self.command_timeout = command_timeout
        self.max_body = max_body
        self.closed = gevent.event.Event()
        self.close_reason = ""
        self.rejection = ""
        self.bad_events = 0
        self.events_in = 0
        self.event_bytes_in = 0  # their mean size turns unread bytes into events
        self._deliver = deliver
        self._last_frame_at = time.monotonic()
        # greenswitch's event queue and handler table stay unused (the reader hands events
        # over); dropped, they no longer cost every channel's socket a few KB.
        self._esl_event_queue = None
        self.event_handlers = {}

    # -- reading ---------------------------------------------------------------------------

    def receive_events(self) -> None:
        """Read frames until EOF or garbage; then close and fail whatever still waits."""
        reason = "closed by FreeSWITCH"
        frames = 0
        try:
            while self._run:
                frame = protocol.read_frame(self.sock_file, max_body=self.max_body)
                if frame is None:
                    break
                self._last_frame_at = time.monotonic()
                self._handle_frame(frame)
                del frame  # not kept alive (5 KB a channel) while the next one is awaited
                frames += 1
                if frames % YIELD_EVERY == 0:
                    gevent.sleep(0)  # while data keeps coming, reads never block: let others run
        except protocol.FrameError as exc:
            reason = f"protocol error: {exc}"
            log.error("%s: %s; closing the connection", self.label, reason)
        except OSError as exc:
            reason = f"socket error: {exc}" if self._run else "closed locally"
        except Exception as exc:
            reason = f"unexpected error while reading: {exc!r}"
            log.exception("%s: %s; closing the connection", self.label, reason)
        finally:
            self._connection_lost(reason)
            self.sock_file.close()

    def start_event_handlers(self) -> None:
        """One greenlet per connection: the reader, which also hands events over."""
        self._receive_events_greenlet = gevent.spawn(self.receive_events)

    def unread_bytes(self) -> int:
        """Bytes the switch has sent that this side has not read yet (the socket's buffer)."""
        if not self.connected:
            return 0
        try:
            waiting = fcntl.ioctl(self.sock.fileno(), termios.FIONREAD, b"\0\0\0\0")
        except OSError:
            return 0
        return int.from_bytes(waiting, sys.byteorder)

    def _handle_frame(self, frame: Frame) -> None:
        TRAFFIC.frames_in += 1
        kind = frame.content_type
        if kind in ("command/reply", "api/response"):
            if self._commands_sent:
                self._commands_sent.pop(0).set(frame)
            else:
                log.warning("%s: reply without a command waiting: %r", self.label, frame.headers)
        elif kind in EVENT_CONTENT_TYPES:
            try:
                event = protocol.parse_event(frame)
            except protocol.FrameError as exc:  # framing is intact: drop this event only
                self.bad_events += 1
                log.error("%s: undecodable event dropped: %s", self.label, exc)
                return
            self.events_in += 1
            self.event_bytes_in += len(frame.body)
            self._safe_deliver("event", event)
        elif kind == "text/disconnect-notice":
            self._safe_deliver("notice", frame)
            if frame.get("Content-Disposition") != "linger":  # FreeSWITCH closes right after it
                self._connection_lost("disconnected by FreeSWITCH")
        elif kind == "auth/request":
            self._auth_request_event.set()
        elif kind == "text/rude-rejection":
            self.rejection = frame.text.strip() or "rude rejection"
        # log/data and anything else we never asked for is ignored.

    def _safe_deliver(self, kind: str, frame: Frame | None) -> None:
        try:
            self._deliver(kind, frame)
        except Exception:
            log.exception("%s: event delivery failed", self.label)

    # -- commands --------------------------------------------------------------------------

    def send(self, data: str, timeout: float | None = None) -> Frame:
        """Send one command (lines joined by `\\n`, no blank line) and wait for its reply.

        Raises CommandTimeout after `timeout` seconds (default `command_timeout`), NotConnected
        if the connection is or gets lost. Replies are matched in order, so a late reply to a
        command that timed out is consumed by its own slot, never by the next command.
        """
        return self.send_all([data], timeout)[0]

    def send_all(self, commands: list[str], timeout: float | None = None) -> list[Frame]:
        """Send commands in one write (FreeSWITCH runs them in order) and wait for every reply,
        all within `timeout`: one round trip instead of one per command. Errors as `send`.
        """
        for data in commands:
            if "\r" in data or "\n\n" in data or data.endswith("\n"):
                raise UnsafeCommand(f"command would break ESL framing: {_describe(data)!r}")
        if not self.connected:
            raise NotConnected(f"{self.label}: not connected ({self.close_reason or 'closed'})")
        limit = self.command_timeout if timeout is None else timeout
        replies = [gevent.event.AsyncResult() for _ in commands]
        self._commands_sent.extend(replies)
        sent_at = time.monotonic()
        written = False
        timer = gevent.Timeout(limit)
        timer.start()
        try:
            send_message(self.sock, "".join(f"{data}\n\n" for data in commands).encode("utf-8"))
            written = True
            TRAFFIC.frames_out += len(commands)
            frames = [reply.get() for reply in replies]
            if any(frame is None for frame in frames):  # lost first (see _connection_lost)
                raise NotConnected(f"{self.label}: connection lost ({self.close_reason})")
            return frames
        except gevent.Timeout as exc:
            if exc is not timer:
                raise
            waiting = next(  # (the last reply may have come as the timer fired)
                (data for data, reply in zip(commands, replies, strict=True) if not reply.ready()),
                commands[-1],
            )
            if not written or self._last_frame_at < sent_at:
                self._connection_lost(f"no answer from FreeSWITCH for {limit:g} s")
            raise CommandTimeout(
                f"{self.label}: no reply to {_describe(waiting)!r} within {limit:g} s"
            ) from None
        except OSError as exc:
            self._connection_lost(f"socket error: {exc}")
            raise NotConnected(f"{self.label}: {exc}") from exc
        finally:
            timer.close()

    def close(self, timeout: float = 1.0) -> None:
        """Say `exit` if still connected (bounded by `timeout`), then close the socket."""
        if self.connected and timeout > 0:
            with contextlib.suppress(ESLError):
                self.send("exit", timeout)
        self._connection_lost("closed locally")

    def _connection_lost(self, reason: str) -> None:
        if self.closed.is_set():
            return
        self.close_reason = reason
        self.connected = False
        self._run = False
        sock = getattr(self, "sock", None)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(2)  # wakes the reader even while a makefile() holds the socket
            sock.close()
        # Waiting commands get None and raise a NotConnected of their own: an exception kept in
        # their result and raised from the frame holding it would be a reference cycle.
        pending, self._commands_sent[:] = list(self._commands_sent), []
        for waiting in pending:
            waiting.set(None)
        self._auth_request_event.set()
        self._safe_deliver("closed", None)
        # That was the last delivery. Letting go of the receiver (which holds this connection)
        # lets reference counting free both now, not a full garbage collection later.
        self._deliver = _nothing_after_close
        self.closed.set()


def _nothing_after_close(kind: str, frame: Frame | None) -> None:
    """Where a closed connection's deliveries go: a frame still in its buffer is dropped."""


class _InboundESL(FramedESL, InboundESL):
    """greenswitch's InboundESL with our framing, plus `userauth`."""

    def __init__(
        self,
        host: str,
        port: int,
        password: str,
        user: str | None,
        connect_timeout: float,
        label: str,
        deliver: Callable[[str, Frame | None], None],
        command_timeout: float,
    ) -> None:
        super().__init__(host, port, password, timeout=connect_timeout)
        self._setup_framing(label, deliver, command_timeout)
        self.user = user

    def authenticate(self) -> None:
        """`auth <password>`, or `userauth <user@domain>:<password>` when a user is set."""
        secret = single_line(self.password, "password")
        if self.user:
            command = f"userauth {single_line(self.user, 'user')}:{secret}"
        else:
            command = f"auth {secret}"
        reply = self.send(command)
        if reply_text(reply) != "+OK accepted":
            raise AuthenticationFailed(reply_text(reply).strip() or "no reply text")


class NodeSettings(Protocol):
    """What a configured FreeSWITCH node provides (config's `freeswitch.nodes[i]`)."""

    name: str
    host: str
    port: int
    password: str
    user: str | None


class Awaited:
    """A frame the switch sends later (a job's result, an application's completion), or the
    failure that ends the wait for it.

    Each waiter of a failure raises a fresh exception like it: one kept in the result and raised
    again would hold its traceback's frames, and through them whoever holds this (a reference
    cycle, left to the garbage collector).
    """

    def __init__(self) -> None:
        self._result: gevent.event.AsyncResult = gevent.event.AsyncResult()
        self._failure: ESLError | None = None

    @property
    def done(self) -> bool:
        return self._result.ready()

    def complete(self, frame: Frame) -> None:
        """The frame arrived."""
        self._result.set(frame)

    def give_up(self, failure: ESLError) -> None:
        """No frame will come: waiters raise an exception like `failure`."""
        self._failure = failure
        self._result.set(None)

    def _wait_frame(self, timeout: float | None, late: Callable[[], str]) -> Frame:
        """The frame; or the failure; or CommandTimeout(late()) after `timeout` seconds."""
        try:
            frame: Frame | None = self._result.get(timeout=timeout)
        except gevent.Timeout:
            raise CommandTimeout(late()) from None
        if frame is None:
            failure = self._failure
            raise type(failure)(*failure.args)
        return frame


class Job(Awaited):
    """A `bgapi` command; its result arrives later in the BACKGROUND_JOB with the same Job-UUID."""

    def __init__(self, job_uuid: str, command: str) -> None:
        super().__init__()
        self.uuid = job_uuid
        self.command = command
        self.created = time.monotonic()

    @property
    def event(self) -> Frame | None:
        """The BACKGROUND_JOB event, once it arrived."""
        return self._result.value

    def wait(self, timeout: float | None = None) -> str:
        """The job's output (`+OK <uuid>\\n`, `-ERR USER_BUSY\\n`); CommandTimeout if late."""
        return self._wait_frame(
            timeout,
            lambda: (
                f"no BACKGROUND_JOB for {_describe(self.command)!r} (job {self.uuid}) "
                f"within {timeout:g} s"
            ),
        ).text

    @property
    def ok(self) -> bool:
        event = self.event
        return event is not None and event.text.startswith("+OK")


class Backoff:
    """Exponential delays with jitter: attempt n waits about initial * 2**(n-1), capped."""

    def __init__(self, initial: float = 0.5, maximum: float = 30.0) -> None:
        self.initial = initial
        self.maximum = maximum

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry `attempt` (1-based): between half and all of the step."""
        step = min(self.maximum, self.initial * 2 ** min(attempt - 1, 32))
        return step * random.uniform(0.5, 1.0)


def _what_to_check(exc: BaseException, esl: _InboundESL) -> str:
    if esl.rejection:
        return (
            f"FreeSWITCH refused us ({esl.rejection}): check apply-inbound-acl in "
            "event_socket.conf.xml lets this controller's address in"
        )
    if isinstance(exc, AuthenticationFailed):
        if esl.user:
            return (
                f"check the user {esl.user} exists with that ESL password "
                "(esl-password in the directory) and esl-allowed-events/api"
            )
        return "check the password (event_socket.conf.xml, param password)"
    if isinstance(exc, ConnectionRefusedError):
        return (
            "nothing listens there: check host/port and that mod_event_socket is loaded "
            "(event_socket.conf.xml listen-ip/listen-port)"
        )
    if isinstance(exc, CommandFailed):
        return "check the event names and filters of the subscription"
    return (
        "check host/port, that the host is reachable (routing, firewall) and that "
        "apply-inbound-acl in event_socket.conf.xml lets this controller in"
    )


class InboundConnection:
    """The controller's inbound Event Socket connection to one FreeSWITCH node.

    Give either `node` (an object with name, host, port, password, user) or the plain values.
    `on_event(event, node_name)` receives every subscribed event (decoded, in wire order, from
    one greenlet per connection: hand it to an `EventRouter`, which never blocks). With
    `filters` ((header, value) pairs, see `commands.event_filter`) the switch sends only the
    subscribed events that one of them passes.
    `on_connected(connection)` runs in its own greenlet after every successful (re)connect and
    subscription: the place to reconcile with the switch.
    """

    def __init__(
        self,
        node: NodeSettings | None = None,
        *,
        name: str | None = None,
        host: str | None = None,
        port: int = 8021,
        password: str | None = None,
        user: str | None = None,
        events: Iterable[str] = (),
        filters: Iterable[tuple[str, str]] = (),
        on_event: EventCallback | None = None,
        on_connected: Callable[[InboundConnection], None] | None = None,
        event_format: str = "plain",
        command_timeout: float = 10.0,
        connect_timeout: float = 5.0,
        backoff: Backoff | None = None,
        stable_after: float = 10.0,
        job_ttl: float = 600.0,
    ) -> None:
        if node is not None:
            name, host, port = node.name, node.host, node.port
            password, user = node.password, getattr(node, "user", None)
        if not host or password is None:
            raise ValueError("an inbound connection needs a host and a password")
        if event_format not in ("plain", "json"):
            raise ValueError(f"event_format must be plain or json, not {event_format!r}")
        self.host = host
        self.port = int(port)
        self.name = name or f"{host}:{self.port}"
        self._password = password
        self._user = user or None
        self.subscription = commands.event_subscription(event_format, events)
        self.filters = [commands.event_filter(header, value) for header, value in filters]
        self._on_event = on_event
        self._on_connected = on_connected
        self.command_timeout = command_timeout
        self.connect_timeout = connect_timeout
        self.backoff = backoff or Backoff()
        self.stable_after = stable_after
        self.job_ttl = job_ttl
        self.connections_made = 0
        # When the current connection came up (epoch seconds): what was sent before it may have
        # had events that were lost; everything sent after it gets its events.
        self.up_since = 0.0
        self.peak_backlog = 0  # the most events seen waiting unread, since start
        self._esl: _InboundESL | None = None
        self._jobs: dict[str, Job] = {}
        self._up = gevent.event.Event()
        self._stopping = gevent.event.Event()
        self._supervisor: gevent.Greenlet | None = None

    # -- life cycle ------------------------------------------------------------------------

    def start(self) -> InboundConnection:
        """Connect in the background (and keep reconnecting) until `stop()`."""
        if self._supervisor is None:
            self._supervisor = gevent.spawn(self._supervise)
        return self

    @property
    def connected(self) -> bool:
        esl = self._esl
        return esl is not None and esl.connected

    def wait_connected(self, timeout: float | None = None) -> bool:
        """True once connected and subscribed (False if `timeout` passed first)."""
        return self._up.wait(timeout)

    def stop(self, timeout: float = 2.0) -> None:
        """Stop reconnecting, say `exit`, close; jobs still waiting fail with NotConnected."""
        self._stopping.set()
        esl = self._esl
        if esl is not None:
            esl.close(timeout)
        if self._supervisor is not None:
            self._supervisor.join(timeout)
            self._supervisor.kill()
        error = NotConnected(f"{self.name}: connection stopped")
        for job in self._jobs.values():
            job.give_up(error)
        self._jobs.clear()

    def _supervise(self) -> None:
        failures = 0
        delay = 0.0
        while not self._stopping.is_set():
            if failures and self._stopping.wait(delay):
                return
            esl = self._new_esl()
            try:
                self._open(esl)
            except Exception as exc:  # whatever went wrong, back off and try again
                failures += 1
                delay = self.backoff.delay(failures)
                log.warning(
                    "%s: cannot connect to FreeSWITCH at %s:%d: %s; retry %d in %.1f s; %s",
                    self.name,
                    self.host,
                    self.port,
                    exc or type(exc).__name__,
                    failures,
                    delay,
                    _what_to_check(exc, esl),
                )
                continue
            up_since = time.monotonic()
            esl.closed.wait()
            self._up.clear()
            self._esl = None
            if self._stopping.is_set():
                return
            failures = 0 if time.monotonic() - up_since >= self.stable_after else failures + 1
            delay = self.backoff.delay(failures) if failures else 0.0
            log.warning(
                "%s: connection to %s:%d lost (%s); reconnecting %s",
                self.name,
                self.host,
                self.port,
                esl.close_reason,
                f"in {delay:.1f} s" if failures else "now",
            )

    def _new_esl(self) -> _InboundESL:
        """A fresh greenswitch connection: greenswitch cannot reuse one that dropped."""
        return _InboundESL(
            self.host,
            self.port,
            self._password,
            self._user,
            self.connect_timeout,
            self.name,
            self._deliver,
            self.command_timeout,
        )

    def _open(self, esl: _InboundESL) -> None:
        """Connect, authenticate and subscribe, all within `connect_timeout`; close on failure."""
        try:
            with gevent.Timeout(
                self.connect_timeout,
                NotConnected(f"no auth/request within {self.connect_timeout:g} s"),
            ):
                esl.connect()
            setup = [self.subscription, *self.filters]
            expect_all_ok(esl.send_all(setup), setup)
        except BaseException:
            esl.close(timeout=0)
            raise
        self.up_since = time.time()
        self._esl = esl
        self.connections_made += 1
        self._up.set()
        log.info(
            "%s: connected to %s:%d, %s",
            self.name,
            self.host,
            self.port,
            "; ".join([self.subscription, *self.filters]),
        )
        if self._on_connected is not None:
            gevent.spawn(self._run_on_connected, self._on_connected)

    def _run_on_connected(self, callback: Callable[[InboundConnection], None]) -> None:
        try:
            callback(self)
        except Exception:
            log.exception("%s: on_connected failed", self.name)

    def _deliver(self, kind: str, frame: Frame | None) -> None:
        if kind == "notice" and frame is not None:
            log.info("%s: disconnect notice from FreeSWITCH: %s", self.name, frame.text.strip())
        if kind != "event" or frame is None:
            return
        if self._esl is not None and self._esl.events_in % BACKLOG_SAMPLE == 0:
            self.queued_events()  # keeps peak_backlog
        if frame.get("Event-Name") == "BACKGROUND_JOB":
            job = self._jobs.pop(frame.get("Job-UUID") or "", None)
            if job is not None:
                job.complete(frame)
        if self._on_event is not None:
            self._on_event(frame, self.name)

    # -- commands --------------------------------------------------------------------------

    def _current(self) -> _InboundESL:
        esl = self._esl
        if esl is None or not esl.connected:
            raise NotConnected(f"{self.name}: not connected to {self.host}:{self.port}")
        return esl

    def add_filter(self, header: str, value: str) -> None:
        """Also receive the events whose `header` is `value`, from now on and after every
        reconnect (a filter of the subscription; see `commands.event_filter`)."""
        command = commands.event_filter(header, value)
        if command in self.filters:
            return
        self.filters.append(command)
        esl = self._esl
        if esl is not None and esl.connected:
            expect_all_ok(esl.send_all([command]), [command])

    def api(self, command: str, timeout: float | None = None) -> str:
        """Run `api <command>` and return its output; CommandTimeout after `timeout` seconds.

        The switch runs this connection's `api` commands one at a time and sends no event
        meanwhile: only commands that return at once belong here (the audit in
        `switch.commands`); one that waits (originate, chat) goes with `bgapi`.
        """
        return self._api([command], timeout)[0]

    def api_all(self, commands: list[str], timeout: float | None = None) -> list[str]:
        """Run several `api` commands sent in one write and return their outputs, in order.

        FreeSWITCH runs a connection's commands one after the other, so this is one round trip
        instead of one per command; `timeout` bounds them all.
        """
        return self._api(commands, timeout)

    def _api(self, commands: list[str], timeout: float | None) -> list[str]:
        """What `api` and `api_all` do (each is timed on its own by metrics.instrument)."""
        for command in commands:
            single_line(command, "api command")
        replies = self._current().send_all([f"api {command}" for command in commands], timeout)
        return [reply_text(reply) for reply in replies]

    def bgapi(self, command: str, job_uuid: str | None = None, timeout: float | None = None) -> Job:
        """Run `bgapi <command>`; the Job completes with its BACKGROUND_JOB (by Job-UUID).

        Pass your own `job_uuid` to bind it (e.g. in the EventRouter) before anything is sent.
        A job still pending after a reconnect completes if the switch delivers its result on
        the new connection; jobs older than `job_ttl` are given up (CommandTimeout).
        """
        single_line(command, "bgapi command")
        job = Job(single_line(job_uuid or str(uuid.uuid4()), "Job-UUID"), command)
        self._expire_jobs()
        self._jobs[job.uuid] = job
        message = f"bgapi {command}\nJob-UUID: {job.uuid}"
        try:
            expect_ok(self._current().send(message, timeout), message)
        except BaseException:
            self._jobs.pop(job.uuid, None)
            raise
        return job

    def pending_jobs(self) -> int:
        return len(self._jobs)

    def queued_events(self) -> int:
        """Events the switch has sent and we have not read yet (the backlog FreeSWITCH counts
        towards its limit of 500), estimated from the bytes waiting in the socket's buffer.
        """
        esl = self._esl
        if esl is None or not esl.event_bytes_in:  # (an event message may have no body)
            return 0
        backlog = round(esl.unread_bytes() * esl.events_in / esl.event_bytes_in)
        self.peak_backlog = max(self.peak_backlog, backlog)
        return backlog

    def _expire_jobs(self) -> None:
        """Give up the jobs older than `job_ttl`: the oldest come first in `_jobs`."""
        oldest = time.monotonic() - self.job_ttl
        while self._jobs:
            job = next(iter(self._jobs.values()))
            if job.created >= oldest:
                return
            del self._jobs[job.uuid]
            job.give_up(
                CommandTimeout(f"{self.name}: job {job.uuid} got no result in {self.job_ttl} s")
            )
