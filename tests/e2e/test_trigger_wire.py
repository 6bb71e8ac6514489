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
from pathlib import Path

import gevent
import gevent.socket
import pytest
from gevent.server import StreamServer
from platform_helpers import (
    ACCESS_CONTEXT,
    PIN_ACCESS,
    controller_settings,
    free_port,
    simulator_config,
    standard_rates,
)

from esl_callback import accounts
from esl_callback.db import Database
from esl_callback.service import Service
from esl_callback.simulator.core import Simulator

RECORDED = (
    Path(__file__).resolve().parent.parent
    / "fixtures"
    / "freeswitch-wire"
    / "flow-pin-callback.trigger-socket.txt"
)
CALLER = "15550001001"


class Relay:
    """Forwards each TCP connection to `target_port`, keeping what each side sent."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.sessions: list[dict[str, bytearray]] = []
        self.server = StreamServer(("127.0.0.1", 0), self._relay)
        self.server.start()

    @property
    def port(self) -> int:
        return self.server.server_port

    def _relay(self, switch_side: socket.socket, _address: object) -> None:
        controller_side = gevent.socket.create_connection(("127.0.0.1", self.target_port))
        sent = {"switch": bytearray(), "controller": bytearray(), "closed": bytearray()}
        self.sessions.append(sent)
        gevent.joinall(
            [
                gevent.spawn(_pump, switch_side, controller_side, sent["switch"]),
                gevent.spawn(_pump, controller_side, switch_side, sent["controller"]),
            ]
        )
        sent["closed"] += b"yes"
        controller_side.close()


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
def relayed(db: Database) -> Iterator[tuple[Simulator, Relay]]:
    """Simulator -> relay -> controller for trigger calls (callback legs go straight)."""
    standard_rates()
    accounts.create_account("alice", pin="4711", default_callback_number=CALLER)
    accounts.add_access_number(PIN_ACCESS, "pin")
    controller_port = free_port()
    relay = Relay(controller_port)
    sim = Simulator(simulator_config(relay.port, {CALLER: {"answer_after": 30}}, 1.0)).start()
    service = Service(controller_settings(db.url, [sim.port], controller_port)).start()
    try:
        assert service.nodes[0].wait_connected(5)
        yield sim, relay
    finally:
        service.stop(timeout=0)
        sim.stop()
        relay.server.stop(timeout=1)


def test_a_trigger_is_refused_with_connect_and_one_hangup_as_freeswitch_took_them(
    relayed: tuple[Simulator, Relay],
) -> None:
    sim, relay = relayed
    sim.place_call(CALLER, PIN_ACCESS, ACCESS_CONTEXT)
    with gevent.Timeout(10, AssertionError("the trigger socket was not closed")):
        while not (relay.sessions and relay.sessions[0]["closed"]):
            gevent.sleep(0.05)

    (session,) = relay.sessions
    sent = session["controller"].decode()
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
    assert b"Content-Type: text/disconnect-notice" in session["switch"]
