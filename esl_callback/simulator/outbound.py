"""The ``socket`` application: FreeSWITCH connects out to an ESL server and hands it the call.

In async mode the connection runs in its own greenlet while the channel parks and executes
what ``sendmsg`` queues; in static mode the channel's own session runs the connection and each
``sendmsg`` executes before its reply.
"""

from __future__ import annotations

import ipaddress
import logging
import socket as pysocket

import gevent.socket

from esl_callback.simulator.apps import app_park
from esl_callback.simulator.channel import Channel
from esl_callback.simulator.connection import EslConnection

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 5.0


def _connect(host: str, port: int) -> gevent.socket.socket:
    """A TCP connection; an IP address is connected to at once (no resolver thread)."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return gevent.socket.create_connection((host, port), timeout=CONNECT_TIMEOUT)
    family = pysocket.AF_INET6 if address.version == 6 else pysocket.AF_INET
    sock = gevent.socket.socket(family, pysocket.SOCK_STREAM)
    sock.settimeout(CONNECT_TIMEOUT)
    try:
        sock.connect((host, port))
    except BaseException:
        sock.close()
        raise
    return sock


def socket_app(ch: Channel, arg: str) -> None:
    """``socket <host>[:<port>] [async] [full]`` (mod_event_socket socket_function)."""
    argv = arg.split()
    if not argv:
        log.error("%s socket: parse error", ch.uuid)
        return
    target = argv[0]
    host, sep, port_text = target.rpartition(":")
    if not sep:
        host, port_text = target, "8084"
    port_text, _, path = port_text.partition("/")
    if path:
        ch.set_var("socket_path", path)
    ch.set_var("socket_host", host)
    flags = {a.lower() for a in argv[1:]}
    sim = ch.sim
    try:
        with sim.outbound_connect(ch.uuid):
            sock = _connect(host, int(port_text or 8084))
    except (OSError, ValueError) as exc:
        log.error("%s socket %s: %s", ch.uuid, target, exc)
        return
    sock.settimeout(None)
    conn = EslConnection(
        sim,
        sock,
        session=ch,
        outbound=True,
        full="full" in flags,
        async_mode="async" in flags,
    )
    ch.outbound = conn
    if not conn.async_mode:
        conn.serve()
        return
    gevent.spawn(conn.serve)
    ch.wait(None, events=False, until=conn.connected.is_set)
    if not conn.closed:
        app_park(ch, "")
