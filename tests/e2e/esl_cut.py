"""The controller's ESL connection to a switch through a relay that can be cut, as a network
cut would: while cut, the relayed connections are closed and every new one is closed at once
(the controller keeps trying to reconnect, in vain); restored, it gets through again. Other
ESL clients of the switch (the test's own witnesses) connect straight and see everything."""

from __future__ import annotations

import contextlib
import socket

import gevent
import gevent.socket
from gevent.server import StreamServer


class CuttableRelay:
    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.cut_off = False
        self.open: set[socket.socket] = set()
        self.server = StreamServer(("127.0.0.1", 0), self._relay)
        self.server.start()

    @property
    def port(self) -> int:
        return self.server.server_port

    def cut(self) -> None:
        self.cut_off = True
        for sock in list(self.open):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def restore(self) -> None:
        self.cut_off = False

    def stop(self) -> None:
        self.cut()
        self.server.stop(timeout=1)

    def _relay(self, controller_side: socket.socket, _address: object) -> None:
        if self.cut_off:
            controller_side.close()
            return
        switch_side = gevent.socket.create_connection(("127.0.0.1", self.target_port))
        self.open |= {controller_side, switch_side}
        gevent.joinall(
            [
                gevent.spawn(_pump, controller_side, switch_side),
                gevent.spawn(_pump, switch_side, controller_side),
            ]
        )
        for sock in (controller_side, switch_side):
            self.open.discard(sock)
            sock.close()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            sink.sendall(data)
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_RDWR)
