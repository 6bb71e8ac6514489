#!/usr/bin/env python3
"""Capacity of the FreeSWITCH simulator in one process: originates per second and concurrent
channels held.

It starts a simulator at real-time speed, connects one inbound ESL client subscribed to the
channel events the controller listens to (plain format, like the controller), and:

1. fires ``--calls`` ``bgapi originate loopback/<phone>/phones &park()`` as fast as the client
   can write them and times them until every BACKGROUND_JOB has come back +OK (each call is a
   loopback pair: two channels, both answered and parked);
2. holds them for ``--hold`` seconds, checking that ``api status`` still answers promptly and
   counting the channels the switch reports;
3. hangs everything up (``hupall``) and waits for the last CHANNEL_HANGUP_COMPLETE.

Targets: >= 300 originates/s and >= 5,000 concurrent channels.

    .venv/bin/python scripts/sim_capacity.py [--calls 3000] [--hold 5]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import gevent
import gevent.socket

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from esl_callback.simulator import Simulator
from esl_callback.simulator.config import from_mapping
from esl_callback.switch.protocol import parse_event, read_frame

EVENTS = (
    "CHANNEL_CREATE CHANNEL_ANSWER CHANNEL_BRIDGE CHANNEL_UNBRIDGE CHANNEL_HANGUP "
    "CHANNEL_HANGUP_COMPLETE CHANNEL_EXECUTE_COMPLETE DTMF BACKGROUND_JOB"
)


class Client:
    def __init__(self, host: str, port: int) -> None:
        self.sock = gevent.socket.create_connection((host, port))
        self.rfile = self.sock.makefile("rb")
        self.replies: list[bytes] = []
        self.jobs_ok = 0
        self.jobs_failed: list[str] = []
        self.hangups = 0
        self.events = 0
        self.reply_waiter = gevent.event.Event()
        self.progress = gevent.event.Event()
        read_frame(self.rfile)  # auth/request
        self.reader = gevent.spawn(self._read)

    def _read(self) -> None:
        while True:
            frame = read_frame(self.rfile)
            if frame is None:
                return
            ctype = frame.content_type or ""
            if ctype.startswith("text/event-"):
                self.events += 1
                name = frame.body[12:40].split(b"\n", 1)[0]  # "Event-Name: X"
                if name == b"BACKGROUND_JOB":
                    event = parse_event(frame)
                    if event.body.startswith(b"+OK"):
                        self.jobs_ok += 1
                    else:
                        self.jobs_failed.append(event.text.strip())
                    self.progress.set()
                elif name == b"CHANNEL_HANGUP_COMPLETE":
                    self.hangups += 1
                    self.progress.set()
            else:
                self.replies.append(frame.body or (frame.get("Reply-Text") or "").encode())
                self.reply_waiter.set()

    def command(self, line: str) -> bytes:
        count = len(self.replies)
        self.sock.sendall(f"{line}\n\n".encode())
        while len(self.replies) <= count:
            self.reply_waiter.clear()
            self.reply_waiter.wait(1)
        return self.replies[count]

    def wait(self, condition, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                return False
            self.progress.clear()
            self.progress.wait(0.5)
        return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=3000, help="calls (2 channels each)")
    parser.add_argument("--hold", type=float, default=5.0, help="seconds to hold them")
    args = parser.parse_args()

    config = from_mapping(
        {
            "esl": {"listen": "127.0.0.1:0"},
            "switch": {
                "max_sessions": 4 * args.calls + 100,
                "sessions_per_second": 100_000,
            },
            "phones": {"context": "phones", "lines": {"15550001001": {"answer_after": 0}}},
        }
    )
    sim = Simulator(config, speed=1.0).start()
    client = Client(sim.host, sim.port)
    client.command("auth ClueCon")
    client.command(f"event plain {EVENTS}")

    started = time.monotonic()
    batch = "".join(
        "bgapi originate {ignore_early_media=true}loopback/15550001001/phones &park()\n\n"
        for _ in range(args.calls)
    ).encode()
    client.sock.sendall(batch)
    done = client.wait(lambda: client.jobs_ok + len(client.jobs_failed) >= args.calls, timeout=600)
    elapsed = time.monotonic() - started
    rate = client.jobs_ok / elapsed if elapsed else 0.0
    first_error = f": {client.jobs_failed[0]}" if client.jobs_failed else ""
    print(
        f"originates: {client.jobs_ok} answered calls in {elapsed:.2f} s = {rate:.0f}/s"
        f" ({len(client.jobs_failed)} failed{first_error})"
    )
    if not done:
        print("  (gave up waiting for the rest)")

    held = len(sim.channels)
    worst = 0.0
    hold_until = time.monotonic() + args.hold
    while time.monotonic() < hold_until:
        t = time.monotonic()
        status = client.command("api status")
        worst = max(worst, time.monotonic() - t)
        assert status.startswith(b"UP "), status
        held = min(held, len(sim.channels))
        gevent.sleep(0.5)
    count = client.command("api show channels count").decode().strip()
    print(
        f"held: {held} concurrent channels for {args.hold:.0f} s "
        f"(show channels count: {count!r}; slowest 'api status' {worst * 1000:.0f} ms)"
    )

    before = client.hangups
    t = time.monotonic()
    client.command("api hupall")
    client.wait(lambda: client.hangups - before >= held, timeout=600)
    print(
        f"teardown: {client.hangups - before} channels hung up in {time.monotonic() - t:.2f} s;"
        f" {client.events} events delivered in all"
    )
    sim.stop()
    ok = rate >= 300 and held >= 5000
    print("targets (>= 300 originates/s, >= 5000 channels):", "met" if ok else "NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
