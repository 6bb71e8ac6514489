"""A TLS front for the test portal, as an operator's reverse proxy would be: it terminates HTTPS
with a certificate from a test certificate authority (trustme) and passes the bytes on to
serve's plain HTTP port. It counts the connections it passed on: a refused handshake passes
none."""

from __future__ import annotations

import select
import socket
import ssl
import threading

import trustme


class TlsFront:
    """Listens on 127.0.0.1:`port` until `close`."""

    def __init__(self, backend_port: int, authority: trustme.CA) -> None:
        self.backend_port = backend_port
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        authority.issue_cert("127.0.0.1").configure_cert(self.context)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.passed_on = 0
        self.refused_handshakes = 0
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # closed
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            secure = self.context.wrap_socket(client, server_side=True)
        except (ssl.SSLError, OSError):
            self.refused_handshakes += 1
            client.close()
            return
        self.passed_on += 1
        with secure, socket.create_connection(("127.0.0.1", self.backend_port)) as backend:
            self._pump(secure, backend)

    @staticmethod
    def _pump(secure: ssl.SSLSocket, backend: socket.socket) -> None:
        while True:
            ready = [secure] if secure.pending() else []
            if not ready:
                ready, _, _ = select.select([secure, backend], [], [], 120)
                if not ready:
                    return
            for side in ready:
                try:
                    data = side.recv(65536)
                except (OSError, ssl.SSLError):
                    return
                if not data:
                    return
                (backend if side is secure else secure).sendall(data)

    def close(self) -> None:
        self.listener.close()
