"""Outbound-socket server: FreeSWITCH connects to us once per channel (`socket ... async full`).

`OutboundServer` accepts on gevent's `StreamServer` (no polling accept loop), drops peers outside
its allow-list, and runs the handler of each connection in a greenlet of its own: one failing
session never affects another. `stop()` stops accepting and lets live sessions finish, up to a
timeout.

`OutboundChannel` is what the handler (the IVR) gets. It speaks through greenswitch's
`OutboundSession` with our framing fixes (see `connection.FramedESL`), but exposes only calls that
are safe: `execute` sends `sendmsg` with an `Event-UUID` and waits for THE
CHANNEL_EXECUTE_COMPLETE whose Application-UUID matches (never "the next completion of an app of
that name"); once the channel hung up, every wait raises `ChannelGone`.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import socket
import uuid
from collections.abc import Callable, Iterable

import gevent
import gevent.event
import gevent.pool
from gevent.server import StreamServer
from greenswitch.esl import OutboundSession

from esl_callback.switch.commands import UnsafeCommand, event_filter
from esl_callback.switch.connection import (
    Awaited,
    CommandTimeout,
    FramedESL,
    NotConnected,
    expect_all_ok,
    expect_ok,
    reply_text,
    single_line,
)
from esl_callback.switch.protocol import Frame

log = logging.getLogger(__name__)

_APP_NAME = re.compile(r"[a-z_][a-z0-9_]{0,63}")
NEEDED_EVENTS = ("CHANNEL_EXECUTE_COMPLETE", "CHANNEL_HANGUP")


class ChannelGone(NotConnected):
    """The channel hung up, or its socket closed, while (or before) we waited for it."""


class _OutboundSession(FramedESL, OutboundSession):
    """greenswitch's OutboundSession with our framing, parsing and command timeouts."""

    def __init__(
        self,
        sock: socket.socket,
        address: tuple[str, int],
        deliver: Callable[[str, Frame | None], None],
        command_timeout: float,
    ) -> None:
        super().__init__(address, sock)
        self._setup_framing(f"outbound {address[0]}:{address[1]}", deliver, command_timeout)


class Execution(Awaited):
    """One `sendmsg execute`; completes with the CHANNEL_EXECUTE_COMPLETE carrying its UUID."""

    def __init__(self, event_uuid: str, app: str, arg: str) -> None:
        super().__init__()
        self.uuid = event_uuid
        self.app = app
        self.arg = arg

    def wait(self, timeout: float | None = None) -> Frame:
        """The CHANNEL_EXECUTE_COMPLETE event; ChannelGone if the channel hung up first."""
        return self._wait_frame(
            timeout, lambda: f"{self.app} ({self.uuid}) did not complete within {timeout:g} s"
        )


class OutboundChannel:
    """One channel handed to us by FreeSWITCH's `socket` application."""

    def __init__(
        self, sock: socket.socket, address: tuple[str, int], command_timeout: float = 10.0
    ) -> None:
        self.peer = f"{address[0]}:{address[1]}"
        self.uuid = ""
        self.data: Frame | None = None
        self.hangup_event: Frame | None = None
        self._gone = ""  # why the channel is gone, once it is
        self._ended = gevent.event.Event()
        self._executions: dict[str, Execution] = {}
        self._session = _OutboundSession(sock, address, self._deliver, command_timeout)

    def __str__(self) -> str:
        return f"channel {self.uuid or '?'} (from {self.peer})"

    # -- protocol --------------------------------------------------------------------------

    def connect(self) -> Frame:
        """`connect`: the channel data (Unique-ID, Caller-*, variable_*), decoded."""
        reply = self._send("connect")
        data = reply.decoded()
        expect_ok(data, "connect")
        self.data = data
        self.uuid = data.get("Unique-ID") or ""
        self._session.label = f"channel {self.uuid}"
        return data

    def myevents(self) -> None:
        """Receive this channel's completions and hangup: all `execute` and `gone` need.

        FreeSWITCH filters out its other events (DTMF, CHANNEL_STATE, CHANNEL_EXECUTE,
        PLAYBACK_*: some 30 per callback that would be sent, parsed and thrown away). The three
        commands go in one write (one round trip).
        """
        subscription = [
            "myevents",
            *(event_filter("Event-Name", name) for name in NEEDED_EVENTS),
        ]
        expect_all_ok(self._send_all(subscription), subscription)

    def linger(self, seconds: int | None = None) -> None:
        """Keep the socket open after hangup (forever without `seconds`: call `exit()`)."""
        command = "linger" if seconds is None else f"linger {int(seconds)}"
        expect_ok(self._send(command), command)

    def execute_async(self, app: str, arg: str = "", event_lock: bool = False) -> Execution:
        """Start `app arg` on the channel; `.wait()` the returned Execution for its completion."""
        self._raise_if_gone()
        if not _APP_NAME.fullmatch(app):
            raise UnsafeCommand(f"not an application name: {app!r}")
        execution = Execution(str(uuid.uuid4()), app, single_line(arg, f"{app} argument"))
        lines = ["sendmsg", "call-command: execute", f"execute-app-name: {app}"]
        if arg:
            lines.append(f"execute-app-arg: {arg}")
        if event_lock:
            lines.append("event-lock: true")
        lines.append(f"Event-UUID: {execution.uuid}")
        self._executions[execution.uuid] = execution
        try:
            expect_ok(self._send("\n".join(lines)), f"sendmsg execute {app}")
        except BaseException:
            self._executions.pop(execution.uuid, None)
            raise
        return execution

    def execute(
        self, app: str, arg: str = "", timeout: float | None = None, event_lock: bool = False
    ) -> Frame:
        """Run `app arg` and return its CHANNEL_EXECUTE_COMPLETE (matched by Application-UUID).

        Raises ChannelGone when the channel hangs up first, CommandTimeout after `timeout`.
        The `hangup` application returns the channel's CHANNEL_HANGUP event instead (its own
        completion only follows the hangup).
        """
        execution = self.execute_async(app, arg, event_lock)
        try:
            return execution.wait(timeout)
        finally:
            if not execution.done:
                self._executions.pop(execution.uuid, None)

    def api(self, command: str, timeout: float | None = None) -> str:
        """`api <command>` over this socket (still answered while lingering after hangup)."""
        return reply_text(self._send(f"api {single_line(command, 'api command')}", timeout))

    def wait_hangup(self, timeout: float | None = None) -> Frame | None:
        """Block until the channel hung up or the socket closed; its CHANNEL_HANGUP if seen."""
        if not self._ended.wait(timeout):
            raise CommandTimeout(f"channel {self.uuid} still up after {timeout:g} s")
        return self.hangup_event

    @property
    def gone(self) -> bool:
        return bool(self._gone)

    @property
    def connected(self) -> bool:
        """The socket is open (it stays open after hangup while lingering)."""
        return self._session.connected

    def exit(self, timeout: float = 1.0) -> None:
        """Say `exit` (with plain `linger` FreeSWITCH never closes the socket itself), close."""
        self._session.close(timeout)

    # -- internals -------------------------------------------------------------------------

    def _send(self, message: str, timeout: float | None = None) -> Frame:
        return self._send_all([message], timeout)[0]

    def _send_all(self, messages: list[str], timeout: float | None = None) -> list[Frame]:
        try:
            return self._session.send_all(messages, timeout)
        except ChannelGone:
            raise
        except NotConnected as exc:
            raise ChannelGone(f"channel {self.uuid or self.peer}: {exc}") from exc

    def _raise_if_gone(self) -> None:
        if self._gone:
            raise ChannelGone(self._gone)

    def _deliver(self, kind: str, frame: Frame | None) -> None:
        if kind == "closed":
            self._mark_gone(f"socket closed ({self._session.close_reason})")
        elif kind == "notice" and frame is not None:
            self._mark_gone(f"disconnect notice ({frame.get('Content-Disposition')})")
        elif frame is not None:
            name = frame.get("Event-Name")
            if name == "CHANNEL_EXECUTE_COMPLETE":
                execution = self._executions.pop(frame.get("Application-UUID") or "", None)
                if execution is not None:
                    execution.complete(frame)
            elif name == "CHANNEL_HANGUP" and frame.get("Unique-ID") == self.uuid:
                self.hangup_event = frame
                self._mark_gone(f"hung up ({frame.get('Hangup-Cause')})", frame)

    def _mark_gone(self, reason: str, hangup: Frame | None = None) -> None:
        """Fail every waiting execution, except that `hangup` gets the CHANNEL_HANGUP event."""
        if not self._gone:
            self._gone = f"channel {self.uuid or self.peer}: {reason}"
            log.debug("%s", self._gone)  # the flow logs what it means for the call
        pending, self._executions = self._executions, {}
        for execution in pending.values():
            if hangup is not None and execution.app == "hangup":
                execution.complete(hangup)
            else:
                execution.give_up(ChannelGone(self._gone))
        self._ended.set()


SessionHandler = Callable[[OutboundChannel], None]


class OutboundServer:
    """Accepts FreeSWITCH's outbound-socket connections and runs `handler(channel)` for each."""

    def __init__(
        self,
        handler: SessionHandler,
        host: str = "127.0.0.1",
        port: int = 8084,
        allow: Iterable[str] = ("127.0.0.1", "::1"),
        max_sessions: int = 1000,
        command_timeout: float = 10.0,
        stop_timeout: float = 10.0,
    ) -> None:
        self._handler = handler
        self._networks = [ipaddress.ip_network(entry, strict=False) for entry in allow]
        self.command_timeout = command_timeout
        self.stop_timeout = stop_timeout
        self._pool = gevent.pool.Pool(max_sessions)
        self._server = StreamServer((host, port), self._serve, spawn=self._pool)
        self.sessions = 0
        self.rejected = 0
        self.failed = 0

    def start(self) -> OutboundServer:
        self._server.start()
        log.info("outbound socket server listening on %s:%d", self.host, self.port)
        return self

    @property
    def host(self) -> str:
        return self._server.server_host

    @property
    def port(self) -> int:
        return self._server.server_port

    @property
    def live_sessions(self) -> int:
        return len(self._pool)

    def allowed(self, peer: str) -> bool:
        """Whether `peer` (an IP address) is in the allow-list."""
        try:
            address = ipaddress.ip_address(peer.split("%", 1)[0])
        except ValueError:
            return False
        mapped = getattr(address, "ipv4_mapped", None)
        candidates = [address, mapped] if mapped is not None else [address]
        return any(
            a in net for a in candidates for net in self._networks if a.version == net.version
        )

    def stop_accepting(self) -> None:
        """Take no new connection; the live sessions go on."""
        self._server.close()

    def stop(self, timeout: float | None = None) -> None:
        """Stop accepting, let live sessions finish for up to `timeout` s, then kill the rest."""
        limit = self.stop_timeout if timeout is None else timeout
        self.stop_accepting()
        if self._pool:
            log.info("outbound: waiting up to %g s for %d live sessions", limit, len(self._pool))
        self._pool.join(timeout=limit)
        if self._pool:
            left = len(self._pool)
            log.warning("outbound: %d sessions still live after %g s: killed", left, limit)
            self._pool.kill(block=True, timeout=1)

    def _serve(self, sock: socket.socket, address: tuple[str, int]) -> None:
        if not self.allowed(address[0]):
            self.rejected += 1
            log.warning(
                "outbound: dropped connection from %s:%d (not in the allow-list)", *address[:2]
            )
            sock.close()
            return
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sessions += 1
        channel = OutboundChannel(sock, address, self.command_timeout)
        graceful = True
        try:
            self._handler(channel)
        except ChannelGone as exc:
            log.info("outbound session ended: %s", exc)
        except Exception:
            self.failed += 1
            log.exception("outbound handler failed for %s", channel)
        except gevent.GreenletExit:
            graceful = False
            log.warning("outbound session of %s killed at server stop", channel)
            raise
        finally:
            channel.exit(timeout=1.0 if graceful else 0)
