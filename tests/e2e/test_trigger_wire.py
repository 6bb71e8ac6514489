"""What the controller says on a trigger call's outbound socket, read off the wire.

A relay between the simulator and the controller keeps the bytes each side sent. The controller
must refuse the trigger with nothing but what FreeSWITCH 1.10.12 took in the recording
(tests/fixtures/freeswitch-wire/flow-pin-callback.trigger-socket.txt): `connect`, then one
`sendmsg` executing `hangup USER_BUSY`, in the same framing; no answer, no events asked for.
"""

from __future__ import annotations

import contextlib
import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import gevent
import gevent.event
import gevent.socket
import pytest
from gevent.server import StreamServer
from platform_helpers import PIN_ACCESS

from esl_callback import accounts

RECORDED = (
    Path(__file__).resolve().parent.parent
    / "fixtures"
    / "freeswitch-wire"
    / "flow-pin-callback.trigger-socket.txt"
)
CALLER = "15550001001"


@dataclass
class Relayed:
    """One relayed connection: what each side sent, and whether both sides are closed."""

    switch: bytearray = field(default_factory=bytearray)
    controller: bytearray = field(default_factory=bytearray)
    closed: gevent.event.Event = field(default_factory=gevent.event.Event)


class Relay:
    """Forwards each TCP connection to `target_port`, keeping what each side sent."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.sessions: list[Relayed] = []
        self.server = StreamServer(("127.0.0.1", 0), self._relay)
        self.server.start()

    @property
    def port(self) -> int:
        return self.server.server_port

    def _relay(self, switch_side: socket.socket, _address: object) -> None:
        controller_side = gevent.socket.create_connection(("127.0.0.1", self.target_port))
        relayed = Relayed()
        self.sessions.append(relayed)
        gevent.joinall(
            [
                gevent.spawn(_pump, switch_side, controller_side, relayed.switch),
                gevent.spawn(_pump, controller_side, switch_side, relayed.controller),
            ]
        )
        controller_side.close()
        relayed.closed.set()


def _pump(source: socket.socket, sink: socket.socket, into: bytearray) -> None:
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            into += data
            sink.sendall(data)
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)


def recorded_commands() -> list[str]:
    """The commands the recording's controller sent, as the lines of each."""
    lines = [line[4:] for line in RECORDED.read_text().splitlines() if line.startswith(">>>")]
    return [block.strip("\n") for block in "\n".join(lines).split("\n\n") if block.strip()]


@pytest.fixture
def relay() -> Iterator[list[Relay]]:
    """Relays the platform puts in front of the controller (see `trigger_port`)."""
    relays: list[Relay] = []
    yield relays
    for started in relays:
        started.server.stop(timeout=1)


def test_a_trigger_is_refused_with_connect_and_one_hangup_as_freeswitch_took_them(
    platform, relay: list[Relay]
) -> None:
    accounts.create_account("alice", pin="4711", default_callback_number=CALLER)
    accounts.add_access_number(PIN_ACCESS, "pin")

    def relay_to(controller_port: int) -> int:
        relay.append(Relay(controller_port))
        return relay[-1].port

    p = platform({CALLER: {"answer_after": 30}}, trigger_port=relay_to)
    p.trigger(CALLER, PIN_ACCESS)
    with gevent.Timeout(10, AssertionError("the trigger socket was not closed")):
        while not relay[0].sessions:
            gevent.sleep(0.05)
        relay[0].sessions[0].closed.wait()

    (session,) = relay[0].sessions
    sent = session.controller.decode()
    assert sent.endswith("\n\n") and "\r" not in sent
    commands = [
        re.sub(r"(?m)^Event-UUID: [0-9a-f-]{36}$", "Event-UUID: *", c)
        for c in sent.split("\n\n")[:-1]
    ]
    assert commands == [
        "connect",
        "sendmsg\ncall-command: execute\nexecute-app-name: hangup\n"
        "execute-app-arg: USER_BUSY\nEvent-UUID: *",
    ]
    # The recording's controller sent the same, with `myevents` (not needed) and no Event-UUID.
    recorded = [c for c in recorded_commands() if c != "myevents"]
    assert [c.removesuffix("\nEvent-UUID: *") for c in commands] == recorded
    # The switch saw the refusal and closed the socket itself: a disconnect notice.
    assert b"Content-Type: text/disconnect-notice" in session.switch
