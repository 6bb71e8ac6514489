"""Fixtures of the simulator tests: a sped-up simulator with test phones, and ESL clients."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from gevent.server import StreamServer
from sim_client import EslClient
from sim_setup import sim_config

from esl_callback.simulator import Simulator

SPEED = 20.0


@pytest.fixture
def sim() -> Iterator[Simulator]:
    simulator = Simulator(sim_config(), speed=SPEED).start()
    try:
        yield simulator
    finally:
        simulator.stop()


@pytest.fixture
def make_sim() -> Iterator[Callable[..., Simulator]]:
    """Start simulators with a custom configuration (``outbound`` server, switch settings)."""
    started: list[Simulator] = []

    def make(outbound: str | None = None, speed: float = SPEED, **switch: Any) -> Simulator:
        simulator = Simulator(sim_config(outbound, **switch), speed=speed).start()
        started.append(simulator)
        return simulator

    try:
        yield make
    finally:
        for simulator in started:
            simulator.stop()


@pytest.fixture
def client(sim: Simulator) -> Iterator[Callable[..., EslClient]]:
    """Open authenticated ESL connections to ``sim``."""
    opened: list[EslClient] = []

    def connect(password: str | None = "ClueCon") -> EslClient:
        conn = EslClient(sim.host, sim.port, password)
        opened.append(conn)
        return conn

    try:
        yield connect
    finally:
        for conn in opened:
            conn.close()


@pytest.fixture
def outbound_server() -> Iterator[Callable[[Callable], str]]:
    """An outbound-socket server with a handler(sock, address); yields its HOST:PORT."""
    servers: list[StreamServer] = []

    def serve(handler: Callable) -> str:
        server = StreamServer(("127.0.0.1", 0), handler)
        server.start()
        servers.append(server)
        return f"127.0.0.1:{server.address[1]}"

    try:
        yield serve
    finally:
        for server in servers:
            server.stop(timeout=1)
