"""Serving the app with gevent's WSGI server, with TCP_NODELAY on every accepted connection.

pywsgi writes a response's headers and body in separate sends. Without TCP_NODELAY, Nagle's
algorithm holds the second small send until the client ACKs the first, and the client delays
that ACK (~40 ms): every keep-alive response then takes ~44 ms. scripts/web_nodelay.py measures it.
"""

from __future__ import annotations

import logging
import socket
from typing import Any

from gevent.pywsgi import WSGIServer

log = logging.getLogger(__name__)


class NoDelayWSGIServer(WSGIServer):
    """`WSGIServer` that disables Nagle's algorithm on each connection it accepts."""

    def handle(self, sock: Any, address: Any) -> None:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError as exc:  # not TCP (e.g. a Unix socket): nothing to disable
            log.debug("TCP_NODELAY not set for %s: %s", address, exc)
        super().handle(sock, address)


def serve_web(app: Any, bind: str, port: int, *, nodelay: bool = True) -> WSGIServer:
    """Start serving `app` on bind:port (port 0: any free port) and return the running server.

    Call `server.stop()` to stop; `server.server_port` is the port actually bound.
    """
    server_class = NoDelayWSGIServer if nodelay else WSGIServer
    server = server_class(
        (bind, port),
        app,
        log=logging.getLogger("esl_callback.web.access"),
        error_log=logging.getLogger("esl_callback.web.errors"),
    )
    server.start()
    log.info("web portal listening on http://%s:%s/", bind, server.server_port)
    return server
