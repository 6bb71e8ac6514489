"""Ports for servers the tests start: one chooser for every test and test process."""

from __future__ import annotations

import random
import socket

# Below Linux's ephemeral range (32768-60999): a port chosen here is not taken, between the
# choice and the bind, by the local end of an outgoing connection or a server bound to port 0.
LISTEN_PORTS = range(20000, 32000)


def free_port() -> int:
    """A port nothing listens on, for a server the test starts next."""
    while True:
        port = random.choice(LISTEN_PORTS)
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
