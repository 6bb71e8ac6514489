"""A simulated FreeSWITCH wired to our outbound server, for the switch layer's end-to-end tests.

The simulator listens for inbound ESL on a free port with a non-default password; its `access`
context hands calls to our `OutboundServer` (`socket 127.0.0.1:<port> async full`), and its
`phones` context has the virtual phones the tests dial through `loopback/<number>/phones`.
"""

from __future__ import annotations

import contextlib
import gc
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import gevent

from esl_callback.simulator import Simulator
from esl_callback.simulator.config import from_mapping
from esl_callback.switch import commands
from esl_callback.switch.connection import Backoff, InboundConnection
from esl_callback.switch.outbound import OutboundChannel, OutboundServer

PASSWORD = "lab-Secret-42"
PARKS = "15550001001"  # answers after 0.2 s, then stays up
HANGS_UP = "15550001003"  # answers after 0.2 s, hangs up 1 s later
RINGS = "15550002003"  # rings forever


@contextlib.contextmanager
def cycles_of(kind: type) -> Iterator[list[str]]:
    """What objects of `kind` the block left in reference cycles: with the collector off they
    are not freed, and a collection at the end finds them (listed by repr)."""
    found: list[str] = []
    gc.collect()
    gc.disable()
    try:
        yield found
        gc.set_debug(gc.DEBUG_SAVEALL)
        gc.collect()
        found += [repr(o) for o in gc.garbage if isinstance(o, kind)]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()


def wait_until(condition: Callable[[], Any], timeout: float = 5.0) -> None:
    with gevent.Timeout(timeout, AssertionError(f"condition not met within {timeout} s")):
        while not condition():
            gevent.sleep(0.01)


class SwitchLab:
    """One simulator, one outbound server whose handler a test sets, and our connections."""

    def __init__(self, **outbound: Any) -> None:
        self.handler: Callable[[OutboundChannel], None] = lambda channel: None
        self.server = OutboundServer(lambda channel: self.handler(channel), port=0, **outbound)
        self.server.start()
        self.connections: list[InboundConnection] = []
        self.port = 0
        self.sim = self._start_sim()

    def config(self, **esl: Any) -> Any:
        socket = f"socket 127.0.0.1:{self.server.port} async full"
        return from_mapping(
            {
                "esl": {"listen": f"127.0.0.1:{self.port}", "password": PASSWORD, **esl},
                "dialplan": {
                    "access": [
                        {"name": "trigger", "expression": r"^1800555\d{4}$", "actions": [socket]}
                    ]
                },
                "phones": {
                    "context": "phones",
                    "lines": {
                        PARKS: {"answer_after": 0.2},
                        HANGS_UP: {"answer_after": 0.2, "hangup_after": 1.0},
                        RINGS: {"no_answer": True},
                    },
                },
            }
        )

    def _start_sim(self, **esl: Any) -> Simulator:
        sim = Simulator(self.config(**esl)).start()
        self.port = sim.port
        return sim

    def restart_switch(self, down_for: float = 0.0, **esl: Any) -> None:
        """Stop the simulator (every connection drops) and start a new one on the same port."""
        self.sim.stop()
        gevent.sleep(down_for)
        self.sim = self._start_sim(**esl)

    def connect(self, events: list[str], **options: Any) -> InboundConnection:
        options.setdefault("backoff", Backoff(initial=0.05, maximum=0.2))
        conn = InboundConnection(
            name="fs-lab",
            host="127.0.0.1",
            port=self.port,
            password=options.pop("password", PASSWORD),
            events=events,
            **options,
        ).start()
        self.connections.append(conn)
        return conn

    def leg_a(self, conn: InboundConnection, number: str, request_id: str) -> str:
        """`bgapi originate` a leg that runs our outbound handler when it answers; its UUID."""
        leg = str(uuid.uuid4())
        conn.bgapi(
            commands.originate(
                commands.dial_string("loopback/{number}/phones", number),
                commands.socket_application(f"127.0.0.1:{self.server.port}"),
                {"origination_uuid": leg, "callback_request_id": request_id},
            )
        )
        return leg

    def close(self) -> None:
        for conn in self.connections:
            conn.stop()
        self.server.stop(timeout=2)
        self.sim.stop()
