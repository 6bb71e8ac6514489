"""A minimal, strict ESL client for the simulator tests (gevent sockets, our own framing)."""

from __future__ import annotations

import time
from collections.abc import Callable

import gevent
import gevent.event
import gevent.queue
import gevent.socket

from esl_callback.switch.protocol import Frame, FrameError, parse_event, read_frame


class EslClient:
    """One ESL connection: replies and events are split into two queues.

    Inbound: ``EslClient(host, port)`` connects and authenticates. Outbound: ``EslClient.
    accepted(sock)`` wraps a socket our test server accepted from the simulator's ``socket`` app.
    """

    def __init__(self, host: str, port: int, password: str | None = "ClueCon", sock=None) -> None:
        self.sock = sock or gevent.socket.create_connection((host, port), timeout=10)
        self.rfile = self.sock.makefile("rb")
        self.replies: gevent.queue.Queue[Frame | None] = gevent.queue.Queue()
        self.events: gevent.queue.Queue[Frame] = gevent.queue.Queue()
        self.other: list[Frame] = []  # disconnect notices, log lines
        self.closed = gevent.event.Event()
        self.reader = gevent.spawn(self._read)
        if sock is not None:
            return
        greeting = self.reply()
        assert greeting.content_type == "auth/request", greeting
        if password is not None:
            reply = self.command(f"auth {password}")
            assert reply.get("Reply-Text") == "+OK accepted", reply

    @classmethod
    def accepted(cls, sock) -> EslClient:
        return cls("", 0, None, sock=sock)

    def connect(self) -> Frame:
        """The outbound ``connect``: the channel's data, decoded."""
        return self.command("connect").decoded()

    def execute(self, app: str, arg: str | None = None, uuid: str = "") -> Frame:
        lines = [f"sendmsg {uuid}".strip(), "call-command: execute", f"execute-app-name: {app}"]
        if arg is not None:
            lines.append(f"execute-app-arg: {arg}")
        return self.command("\n".join(lines))

    def _read(self) -> None:
        try:
            while True:
                frame = read_frame(self.rfile)
                if frame is None:
                    break
                ctype = frame.content_type or ""
                if ctype.startswith("text/event-"):
                    event = parse_event(frame)
                    event.arrived = time.monotonic()  # type: ignore[attr-defined]
                    self.events.put(event)
                elif ctype in ("command/reply", "api/response", "auth/request"):
                    self.replies.put(frame)
                else:
                    self.other.append(frame)
        except (OSError, FrameError):
            pass
        finally:
            self.replies.put(None)
            self.closed.set()

    def send(self, data: str | bytes) -> None:
        self.sock.sendall(data.encode() if isinstance(data, str) else data)

    def reply(self, timeout: float = 10.0) -> Frame:
        frame = self.replies.get(timeout=timeout)
        assert frame is not None, "connection closed"
        return frame

    def command(self, line: str, timeout: float = 10.0) -> Frame:
        self.send(f"{line}\n\n")
        return self.reply(timeout)

    def api(self, line: str, timeout: float = 10.0) -> str:
        frame = self.command(f"api {line}", timeout)
        assert frame.content_type == "api/response", frame
        return frame.text

    def bgapi(self, line: str) -> str:
        """Returns the Job-UUID."""
        reply = self.command(f"bgapi {line}")
        return reply.get("Job-UUID") or ""

    def event(
        self, name: str, match: Callable[[Frame], bool] = lambda e: True, timeout: float = 10.0
    ) -> Frame:
        """The next event called ``name`` satisfying ``match`` (others are dropped)."""
        with gevent.Timeout(timeout, AssertionError(f"no {name} within {timeout} s")):
            while True:
                event = self.events.get()
                if event.get("Event-Name") == name and match(event):
                    return event

    def drain(self) -> list[Frame]:
        out = []
        while not self.events.empty():
            out.append(self.events.get())
        return out

    def close(self) -> None:
        self.reader.kill()
        self.sock.close()


def channel(uuid: str) -> Callable[[Frame], bool]:
    return lambda e: e.get("Unique-ID") == uuid


def named(name: str) -> Callable[[Frame], bool]:
    return lambda e: e.get("Channel-Name") == name
