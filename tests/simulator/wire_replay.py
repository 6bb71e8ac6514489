"""Replay the client side of a recorded FreeSWITCH wire transcript against the simulator.

A transcript (tests/fixtures/freeswitch-wire/*.txt) lists what a client sent (``>>>``) and what
FreeSWITCH 1.10.12 answered (``<<<``). A scenario replays every socket of one recording at once:
inbound sockets connect to the simulator, outbound sockets are accepted from it. Each client
message is sent once the messages recorded before it have arrived and its (sped-up) time has
come. Every message the simulator sends must equal the recorded one byte for byte after
normalising only what cannot be the same twice: UUIDs (mapped consistently, one recorded UUID to
one simulated UUID), timestamps and durations, sequence numbers, the test's own port.

Messages are compared per stream: command replies in order, and each channel's events in order
(one channel's events, or one job's, never overtake each other on a real switch either; how the
events of different channels interleave depends on thread timing).
"""

from __future__ import annotations

import contextlib
import re
import socket as pysocket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import gevent
import gevent.event
from gevent.server import StreamServer

from esl_callback.switch.protocol import (
    Frame,
    FrameError,
    format_event_json,
    format_event_plain,
    parse_event_json,
    parse_event_plain,
    read_frame,
)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "freeswitch-wire"
RECORDED_OUTBOUND_PORT = "8084"
UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_STEP_RE = re.compile(rb"# \[t=\+([0-9.]+)s\] (FreeSWITCH sent|client sent|connection closed)")

# Values derived from the clock (kept apart only as "zero" or "not zero").
TIME_HEADERS = re.compile(
    r"^(Caller|Other-Leg|Channel)-(.*-Time|Channel-Last-Hold|Channel-Hold-Accum)$"
)
TIME_VARIABLES = re.compile(
    r"^variable_(.*_stamp|.*_epoch|.*_uepoch|hold_accum_\w+|last_dtmf_duration)$"
)
# Durations and media positions depend on exact timing: only their presence is compared.
DURATION_VARIABLES = re.compile(
    r"^variable_((m|u)?duration|(bill|progress|answer|wait|progress_media|flow_bill)"
    r"(sec|msec|usec)|playback_(last_offset_pos|seconds|ms|samples))$"
)
SEQUENCE_HEADERS = {"Event-Sequence", "variable_session_id"}
DATE_HEADERS = {
    "Event-Date-Local",
    "Event-Date-GMT",
    "Event-Date-Timestamp",
    "Up-Time",
    "Uptime-msec",
}


@dataclass(frozen=True)
class After:
    """A client message the recording script sent in reaction to another socket's traffic:
    it waits until that socket has received the awaited message, then ``delay`` more seconds."""

    socket: str
    sends: str
    on: str
    event: str
    application: str | None = None
    occurrence: int = 1
    delay: float = 0.0

    def awaited(self, messages: list[Message]) -> Message:
        seen = 0
        for msg in messages:
            app_line = f"\nApplication: {self.application}\n"
            if msg.event_name == self.event and (
                self.application is None or app_line in msg.canonical
            ):
                seen += 1
                if seen == self.occurrence:
                    return msg
        raise LookupError(f"{self.on} never receives {self.event} {self.application}")


@dataclass(frozen=True)
class Outside:
    """Something that happened outside the event socket (a phone registering over SIP) between
    two client messages: done right before the client sends its ``occurrence``-th message
    containing ``before``, so that it is in place whatever the replay's timing."""

    socket: str
    before: str
    action: Callable[[], object]
    occurrence: int = 1


@dataclass(frozen=True)
class Race:
    """A recorded message whose place or content depends on FreeSWITCH thread timing (the
    recordings themselves disagree). ``skip`` leaves it out on both sides; otherwise it is
    compared without ``headers``."""

    socket: str
    channel: str
    event: str
    why: str
    headers: tuple[str, ...] = ()
    skip: bool = False

    def covers(self, socket: str, msg: Message) -> bool:
        return (socket, msg.channel, msg.event_name) == (self.socket, self.channel, self.event)


@dataclass
class Step:
    kind: str  # "send", "recv", "eof"
    at: float
    data: bytes = b""


def _unsimulated(data: bytes) -> bool:
    """Messages the simulator does not produce: log lines (``log`` is answered, but no
    log/data follows) and the periodic HEARTBEAT / RE_SCHEDULE timer events."""
    return data.startswith(b"Content-Type: log/data") or (
        data.startswith(b"Content-Length:")
        and (b"\nEvent-Name: HEARTBEAT\n" in data or b"\nEvent-Name: RE_SCHEDULE\n" in data)
    )


# Lines whose '\r' the recorder did not write: the header of these files says the body sipp
# sent was "CB 15550002001\r\n" (CRLF), and its Content-Length (16) counts the CR.
LOST_CR = {
    "inbound-sip-message-chatplan-stop.txt": b"CB 15550002001\n",
    "inbound-sip-message-chatplan-final.txt": b"CB 15550002001\n",
}


def load_steps(name: str) -> list[Step]:
    """The messages of one transcript, split exactly as the recorder split them."""
    steps: list[Step] = []
    current: Step | None = None
    for line in (FIXTURES / name).read_bytes().split(b"\n"):
        if line.startswith(b"#"):
            match = _STEP_RE.match(line)
            if match:
                kind = {
                    b"FreeSWITCH sent": "recv",
                    b"client sent": "send",
                    b"connection closed": "eof",
                }[match.group(2)]
                current = Step(kind, float(match.group(1)))
                steps.append(current)
            continue
        if line[:4] in (b"<<< ", b">>> ") and current is not None:
            text = line[4:]
            current.data += text[:-9] if text.endswith(b"  [no LF]") else text + b"\n"
    if name in LOST_CR:
        for step in steps:
            step.data = step.data.replace(LOST_CR[name], LOST_CR[name][:-1] + b"\r\n")
    return steps


def socket_start(name: str) -> float:
    """A flow socket's start time within its scenario (0 when the file does not say)."""
    match = re.search(rb"started at scenario time \+([0-9.]+)s", (FIXTURES / name).read_bytes())
    return float(match.group(1)) if match else 0.0


def recorded_epoch(name: str, steps: list[Step]) -> float | None:
    """The switch's clock at scenario time 0 in a recording (from the first event's date)."""
    for step in steps:
        match = re.search(rb"Event-Date-Timestamp: (\d+)", step.data)
        if step.kind == "recv" and match:
            return int(match.group(1)) / 1e6 - step.at - socket_start(name)
    return None


# -- normalisation -------------------------------------------------------------------------------


def _norm_value(name: str, value: str) -> str:
    if name in SEQUENCE_HEADERS:
        return "<SEQ>"
    if name in DATE_HEADERS:
        return "<DATE>"
    if TIME_HEADERS.match(name) or TIME_VARIABLES.match(name):
        return value if value == "0" else "<TIME>"
    if DURATION_VARIABLES.match(name):
        return "<DURATION>"
    if name in ("variable_transfer_history", "variable_transfer_source", "Caller-Transfer-Source"):
        return re.sub(r"^\d+:", "<TIME>:", value)
    return value


def _norm_body(body: str) -> str:
    body = re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", "<DATE>", body)
    body = re.sub(r"(?<![\d-])1\d{9}(?!\d)", "<EPOCH>", body)
    return body


def _norm_status(body: str) -> str:
    # the build's description differs between the builds recorded ("1.10.12-release  64bit",
    # "1.10.12-release git a88d069 2024-08-02 21:02:27Z 64bit")
    body = re.sub(r"\(Version [^)\n]*\)", "(Version <VERSION>)", body)
    return re.sub(r"\d+(\.\d+)?", "N", body)


@dataclass
class Message:
    """One received or recorded message, reduced to its comparable form."""

    raw: bytes
    stream: str = ""
    canonical: str = ""
    uuids: list[str] = field(default_factory=list)
    event_name: str = ""
    channel: str = ""
    unique_id: str | None = None
    matched: bool = False
    ignored: tuple[str, ...] = ()

    @property
    def summary(self) -> str:
        if self.event_name:
            return f"{self.event_name} {self.channel} {self.unique_id}"
        return self.canonical.split("\n", 2)[:2].__repr__()


def _event_text(frame: Frame) -> tuple[Frame, str]:
    if frame.content_type == "text/event-json":
        event = parse_event_json(frame.body)
        return event, "json"
    return parse_event_plain(frame.body), "plain"


def reduce(raw: bytes, local_port: int | None = None) -> Message:
    """Parse and normalise a message; UUIDs stay in (they are mapped while matching)."""
    msg = Message(raw)
    if raw == b"":
        msg.stream = "replies"
        msg.canonical = "<EOF>"
        return msg
    import io

    frame = read_frame(io.BytesIO(raw))
    assert frame is not None
    ctype = frame.content_type or ""
    if ctype.startswith("text/event-"):
        event, fmt = _event_text(frame)
        event_name = event.get("Event-Name") or ""
        headers = [(k, _norm_value(k, v)) for k, v in event.headers]
        body = event.body.decode("utf-8", "replace")
        inner = [h for h in headers]
        if body:
            # the inner Content-Length that serialisation adds back is the last one
            last = max(i for i, (k, _) in enumerate(inner) if k == "Content-Length")
            del inner[last]
        if fmt == "json":
            payload = format_event_json(inner, body or None)
        else:
            payload = format_event_plain(inner, body or None)
        msg.canonical = f"Content-Type: {ctype}\n\n" + payload.decode("utf-8", "replace")
        msg.event_name = event_name
        msg.channel = event.get("Channel-Name") or ""
        msg.unique_id = event.get("Unique-ID")
        if msg.unique_id:
            msg.stream = "channel"
        elif event_name == "BACKGROUND_JOB":
            msg.stream = "job:" + (event.get("Job-UUID") or "")
        else:
            msg.stream = "event:" + event_name + ":" + (event.get("Event-Subclass") or "")
    else:
        headers = [
            (k, _norm_value(k, v) if k not in ("Content-Length",) else "<LEN>")
            for k, v in frame.headers
        ]
        if any(k == "Event-Name" for k, _ in headers):  # the outbound connect reply
            from esl_callback.switch.protocol import url_decode

            headers = [(k, _norm_value(k, url_decode(v))) for k, v in frame.headers]
            text = format_event_plain(headers).decode()
        else:
            text = "".join(f"{k}: {v}\n" for k, v in headers) + "\n"
        body = frame.body.decode("utf-8", "replace")
        if body.startswith("UP "):
            body = _norm_status(body)
        elif ctype == "api/response" and re.fullmatch(r"\d+\n", body):
            body = "<UPTIME>\n"
        elif ctype == "api/response":
            body = _norm_body(body)
        msg.canonical = text + body
        msg.stream = "replies"
    if local_port is not None:
        for sep in (":", "%3A"):
            msg.canonical = msg.canonical.replace(
                f"127.0.0.1{sep}{local_port}", f"127.0.0.1{sep}{RECORDED_OUTBOUND_PORT}"
            )
    msg.uuids = UUID_RE.findall(msg.canonical)
    return msg


# -- matching ------------------------------------------------------------------------------------


def _kept(msg: Message, ignored: tuple[str, ...]) -> str:
    """The canonical text without the headers a Race says to ignore."""
    if not ignored:
        return msg.canonical
    lines = msg.canonical.split("\n")
    return "\n".join(ln for ln in lines if ln.split(": ", 1)[0] not in ignored)


class UuidMap:
    """Recorded UUID -> simulated UUID, one to one."""

    def __init__(self, known: set[str]) -> None:
        self.forward = {u: u for u in known}
        self.backward = {u: u for u in known}

    def compatible(self, recorded: list[str], actual: list[str]) -> bool:
        if len(recorded) != len(actual):
            return False
        pending: dict[str, str] = {}
        back: dict[str, str] = {}
        for r, a in zip(recorded, actual, strict=True):
            want = self.forward.get(r, pending.get(r))
            if want is not None and want != a:
                return False
            owner = self.backward.get(a, back.get(a))
            if owner is not None and owner != r:
                return False
            pending[r] = a
            back[a] = r
        return True

    def learn(self, recorded: list[str], actual: list[str]) -> None:
        for r, a in zip(recorded, actual, strict=True):
            self.forward[r] = a
            self.backward[a] = r

    def apply(self, data: bytes) -> bytes:
        return UUID_RE.sub(
            lambda m: self.forward.get(m.group(0), m.group(0)), data.decode()
        ).encode()

    def canonical(self, text: str) -> str:
        return UUID_RE.sub(lambda m: self.forward.get(m.group(0), "<UUID?>"), text)


@dataclass
class Mismatch:
    socket: str
    expected: Message
    candidates: list[Message]

    def describe(self, uuids: UuidMap) -> str:
        lines = [f"[{self.socket}] no match for {self.expected.summary}"]
        if self.candidates:
            best = self.candidates[0]
            lines.append(f"  closest received: {best.summary}")
            recorded = UUID_RE.sub(
                lambda m: uuids.forward.get(m.group(0), m.group(0)), self.expected.canonical
            )
            lines += _diff(recorded, best.canonical)
        return "\n".join(lines)


def _connect_channel(msg: Message) -> str | None:
    match = re.search(r"^Channel-Name: (.*)$", msg.canonical, re.M)
    return match.group(1) if match else None


def _stream_key(msg: Message) -> str:
    return msg.stream + ":" + (msg.unique_id or "") if msg.stream == "channel" else msg.stream


def _groups(messages: list[Message]) -> dict[str, list[Message]]:
    out: dict[str, list[Message]] = {}
    for msg in messages:
        out.setdefault(_stream_key(msg), []).append(msg)
    return out


def _diff(expected: str, actual: str) -> list[str]:
    import difflib

    out = []
    for line in difflib.unified_diff(
        expected.splitlines(), actual.splitlines(), "recorded", "simulated", lineterm="", n=1
    ):
        out.append("    " + line)
    return out[:80]


class SocketReplay:
    """Drives one socket of a scenario and matches what arrives against the recording."""

    def __init__(self, name: str, steps: list[Step], scenario: Scenario) -> None:
        self.name = name
        self.scenario = scenario
        self.steps = [s for s in steps if not _unsimulated(s.data)]
        outbound = bool(self.steps) and self.steps[0].data == b"connect\n\n"
        self.connect_channel: str | None = None
        self.expected: list[Message] = []
        self.plan: list[tuple[Step, int]] = []  # each send, with how many replies come first
        for step in self.steps:
            if step.kind == "send":
                self.plan.append((step, len(self.expected)))
                continue
            msg = reduce(step.data)
            if outbound and self.connect_channel is None:
                self.connect_channel = _connect_channel(msg)
            race = self._race(msg)
            if race is not None:
                msg.ignored = race.headers
            if not self._racy(msg) and not (race and race.skip):
                self.expected.append(msg)
        self.received: list[Message] = []
        self.sent_with: dict[str, int] = {}  # client messages sent so far containing a text
        self.streams: dict[str, list[Message]] = {}
        self.groups = list(_groups(self.expected).values())
        self.arrived = gevent.event.Event()
        self.done = False
        self.timeouts: list[str] = []

    def run(self, sock: pysocket.socket, started: float | None = None) -> None:
        sock.setsockopt(pysocket.IPPROTO_TCP, pysocket.TCP_NODELAY, 1)
        started = time.monotonic() if started is None else started
        reader = gevent.spawn(self._read, sock)
        speed = self.scenario.speed
        try:
            for step, expected_before in self.plan:
                self._wait_matched(expected_before)
                delay = started + step.at / speed - time.monotonic()
                if delay > 0:
                    gevent.sleep(delay)
                self._wait_for_others(step)
                self._outside(step)
                data = self.scenario.uuids.apply(step.data)
                data = data.replace(
                    f"127.0.0.1:{RECORDED_OUTBOUND_PORT}".encode(),
                    f"127.0.0.1:{self.scenario.outbound_port}".encode(),
                )
                if self.scenario.trace:
                    print(f"{time.monotonic() - self.scenario.t0:8.3f} send {data[:60]!r}")
                with contextlib.suppress(OSError):
                    sock.sendall(data)
            self._wait_matched(len(self.expected))
        finally:
            self.done = True
            reader.join(timeout=self.scenario.settle)
            reader.kill()
            sock.close()

    def _read(self, sock: pysocket.socket) -> None:
        rfile = sock.makefile("rb")
        while True:
            try:
                frame_bytes = _read_raw(rfile)
            except (OSError, FrameError):
                frame_bytes = None
            if frame_bytes is None:
                self._add(reduce(b""))
                return
            try:
                msg = reduce(frame_bytes, self.scenario.outbound_port)
            except FrameError as exc:
                msg = Message(frame_bytes, "replies", f"<UNPARSEABLE {exc}: {frame_bytes!r}>")
            if self.scenario.trace:
                print(f"{time.monotonic() - self.scenario.t0:8.3f} recv {msg.summary[:70]}")
            self._add(msg)

    def _race(self, msg: Message) -> Race | None:
        return next((r for r in self.scenario.races if r.covers(self.name, msg)), None)

    def _add(self, msg: Message) -> None:
        race = self._race(msg)
        if self._racy(msg) or (race and race.skip):
            return
        self.received.append(msg)
        self.streams.setdefault(_stream_key(msg), []).append(msg)
        self.scenario.match_all()
        self.arrived.set()

    def _wait_for_others(self, step: Step) -> None:
        for after in self.scenario.after:
            if after.socket != self.name or after.sends.encode() not in step.data:
                continue
            other = next(r for r in self.scenario.sockets if r.name == after.on)
            awaited = after.awaited(other.expected)
            deadline = time.monotonic() + self.scenario.timeout
            while not awaited.matched and time.monotonic() < deadline:
                other.arrived.clear()
                other.arrived.wait(0.05)
            gevent.sleep(after.delay / self.scenario.speed)

    def _outside(self, step: Step) -> None:
        mine = [o for o in self.scenario.outside if o.socket == self.name]
        for text in {o.before for o in mine if o.before.encode() in step.data}:
            self.sent_with[text] = self.sent_with.get(text, 0) + 1
        for outside in mine:
            sent = outside.before.encode() in step.data
            if sent and self.sent_with[outside.before] == outside.occurrence:
                outside.action()

    def _racy(self, msg: Message) -> bool:
        """CHANNEL_PARK right after an outbound 'connect' races the client's 'myevents' on a
        real switch (some recordings have it, some do not): it is left out of the comparison."""
        return msg.event_name == "CHANNEL_PARK" and msg.channel == self.connect_channel

    def _wait_matched(self, count: int) -> None:
        deadline = time.monotonic() + self.scenario.timeout
        while True:
            if all(m.matched for m in self.expected[:count]):
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                waiting = [m.summary for m in self.expected[:count] if not m.matched]
                self.timeouts.append(f"[{self.name}] gave up waiting for {waiting[:3]}")
                return
            self.arrived.clear()
            self.arrived.wait(min(remaining, 0.05))


def _read_raw(rfile) -> bytes | None:
    """One whole message as raw bytes (headers + blank line + body)."""
    head = b""
    while True:
        line = rfile.readline()
        if not line:
            return None
        if line == b"\n" and not head:
            continue
        head += line
        if line == b"\n":
            break
    length = 0
    for header in head.split(b"\n"):
        if header.lower().startswith(b"content-length:"):
            length = int(header.split(b":", 1)[1])
            break
    body = rfile.read(length) if length else b""
    return head + body


class Scenario:
    """All sockets of one recording, replayed together against one simulator."""

    def __init__(
        self,
        sim,
        inbound: list[str],
        outbound: list[str],
        speed: float,
        after=(),
        races=(),
        outside=(),
    ) -> None:
        self.sim = sim
        self.speed = speed
        self.after: tuple[After, ...] = tuple(after)
        self.races: tuple[Race, ...] = tuple(races)
        self.outside: tuple[Outside, ...] = tuple(outside)
        self.timeout = 20.0 / speed + 3.0
        self.settle = 0.3
        self.sockets = [SocketReplay(n, load_steps(n), self) for n in inbound + outbound]
        self.inbound = self.sockets[: len(inbound)]
        self.outbound = self.sockets[len(inbound) :]
        self.outbound_port = 0
        known: set[str] = set()
        for replay in self.sockets:
            seen: set[str] = set()
            for step in replay.steps:
                found = set(UUID_RE.findall(step.data.decode("utf-8", "replace")))
                if step.kind == "send":
                    known |= found - seen
                seen |= found
        self.uuids = UuidMap(known)
        self._accepted = 0
        self._server: StreamServer | None = None
        self.trace = False
        self.t0 = time.monotonic()

    def listen(self) -> int:
        """The outbound-socket server the simulator's socket application connects to."""
        self._server = StreamServer(("127.0.0.1", 0), self._accept)
        self._server.start()
        self.outbound_port = self._server.address[1]
        return self.outbound_port

    def _accept(self, sock, address) -> None:
        index = self._accepted
        self._accepted += 1
        if index < len(self.outbound):
            self.outbound[index].run(sock)
        else:
            sock.close()

    def run(self, setup: list[str] = (), actions=()) -> list[str]:
        """Replay everything; returns the list of problems (empty when it all matched).

        ``setup`` are API commands run first, to recreate calls that were already up when the
        recording started; ``actions`` are (recorded time, callable) pairs for what happened
        outside the event socket (a SIP MESSAGE arriving).
        """
        starts = [socket_start(r.name) for r in self.inbound]
        epoch = next(
            (e for r in self.sockets if (e := recorded_epoch(r.name, r.steps)) is not None), None
        )
        clock = self.sim.clock
        start = clock.now() + 1.0 if epoch is None else epoch
        clock.set(start - 1.0)
        # the switch was up before the recording started (`status` shows no negative uptime)
        self.sim.started_us = min(self.sim.started_us, clock.now_us())
        for line in setup:
            self.sim.api(line)
        # setup calls show in the core database by then; and the clock has the recording's
        # fraction of a second (the scheduler runs tasks on whole seconds)
        clock.sleep(start - clock.now())
        clock.set(start)
        t0 = self.t0 = time.monotonic()
        greenlets = [gevent.spawn_later(at / self.speed, action) for at, action in actions]
        for replay, start in zip(self.inbound, starts, strict=True):
            delay = t0 + start / self.speed - time.monotonic()
            if delay > 0:
                gevent.sleep(delay)
            sock = gevent.socket.create_connection((self.sim.host, self.sim.port))
            greenlets.append(gevent.spawn(replay.run, sock, t0 + start / self.speed))
        gevent.joinall(greenlets)
        deadline = time.monotonic() + self.timeout
        while any(not r.done for r in self.outbound) and time.monotonic() < deadline:
            gevent.sleep(0.05)
        if self._server is not None:
            self._server.stop()
        self.match_all()
        return self.problems()

    def match_all(self) -> None:
        progress = True
        while progress:
            progress = False
            for replay in self.sockets:
                for group in replay.groups:
                    expected = next((m for m in group if not m.matched), None)
                    if expected is not None and self._match(replay, expected):
                        progress = True

    def _match(self, replay: SocketReplay, expected: Message) -> bool:
        streams = replay.streams
        if expected.stream == "channel":
            mapped = self.uuids.forward.get(expected.unique_id or "")
            if mapped is not None:
                keys = [f"channel:{mapped}"]
            else:
                keys = [
                    k
                    for k in streams
                    if k.startswith("channel:") and k[8:] not in self.uuids.backward
                ]
        elif expected.stream.startswith("job:"):
            job = expected.stream[4:]
            keys = (
                [f"job:{self.uuids.forward[job]}"]
                if job in self.uuids.forward
                else [
                    k for k in streams if k.startswith("job:") and k[4:] not in self.uuids.backward
                ]
            )
        else:
            keys = [expected.stream]
        for key in keys:
            msg = next((m for m in streams.get(key, ()) if not m.matched), None)
            if msg is None or msg.event_name != expected.event_name:
                continue
            want, got = _kept(expected, expected.ignored), _kept(msg, expected.ignored)
            recorded, actual = UUID_RE.findall(want), UUID_RE.findall(got)
            if self.uuids.compatible(recorded, actual) and UUID_RE.sub("U", want) == UUID_RE.sub(
                "U", got
            ):
                self.uuids.learn(recorded, actual)
                expected.matched = msg.matched = True
                return True
        return False

    def problems(self) -> list[str]:
        out = []
        for replay in self.sockets:
            received = replay.streams
            for key, group in _groups(replay.expected).items():
                expected = next((m for m in group if not m.matched), None)
                if expected is None:
                    continue
                mapped = self.uuids.forward.get(expected.unique_id or "")
                rkey = f"channel:{mapped}" if mapped else key
                candidates = [m for m in received.get(rkey, ()) if not m.matched][:1]
                if not candidates:
                    candidates = [
                        m
                        for m in replay.received
                        if not m.matched
                        and m.event_name == expected.event_name
                        and m.channel == expected.channel
                    ][:1]
                left = sum(1 for m in group if not m.matched)
                out.append(
                    Mismatch(replay.name, expected, candidates).describe(self.uuids)
                    + f"\n  ({left} recorded messages of this stream unmatched)"
                )
            extra = [m for m in replay.received if not m.matched]
            for msg in extra[:10]:
                out.append(f"[{replay.name}] unexpected: {msg.summary}")
            if len(extra) > 10:
                out.append(f"[{replay.name}] ... {len(extra) - 10} more unexpected")
        return out
