"""A socket peer that replays bytes recorded on a real FreeSWITCH (or deliberately broken ones).

The simulator always frames correctly; to feed our connection a real capture byte for byte, or
a Content-Length FreeSWITCH would never send, this peer answers the inbound handshake the way
FreeSWITCH 1.10.12 does (auth/request, `+OK accepted`, `+OK event listener enabled plain`) and
then sends exactly the bytes a test gives it, over a real TCP socket. It also takes `userauth`
for the users it is given (mod_event_socket answers `+OK accepted` / `-ERR invalid` and hangs up).
"""

from __future__ import annotations

from pathlib import Path

import gevent
from gevent.server import StreamServer

from esl_callback.switch import protocol

WIRE = Path(__file__).resolve().parent.parent / "fixtures" / "freeswitch-wire"


class ReplayPeer:
    """Accepts inbound ESL connections; after each subscription sends `payload` (if any)."""

    def __init__(self) -> None:
        self.users: set[str] = set()  # "user@domain:password" accepted by userauth
        self.hang_up_on: set[str] = set()  # commands (first word) answered by closing the socket
        self.payloads: list[bytes] = []
        self.commands: list[str] = []
        self.connections = 0
        self._server = StreamServer(("127.0.0.1", 0), self._serve)
        self._server.start()

    @property
    def port(self) -> int:
        return self._server.server_port

    def stop(self) -> None:
        self._server.stop(timeout=1)

    def _serve(self, sock, address) -> None:
        self.connections += 1
        payload = self.payloads.pop(0) if self.payloads else b""
        reader = sock.makefile("rb")
        try:
            sock.sendall(b"Content-Type: auth/request\n\n")
            while (command := protocol.read_command(reader)) is not None:
                self.commands.append(command.line)
                verb = command.line.split(" ", 1)[0]
                if verb in self.hang_up_on:
                    break
                if verb == "auth" or (verb == "userauth" and command.line[9:] in self.users):
                    sock.sendall(b"Content-Type: command/reply\nReply-Text: +OK accepted\n\n")
                elif verb == "userauth":
                    sock.sendall(b"Content-Type: command/reply\nReply-Text: -ERR invalid\n\n")
                    break
                elif verb == "event":
                    sock.sendall(
                        b"Content-Type: command/reply\n"
                        b"Reply-Text: +OK event listener enabled plain\n\n" + payload
                    )
                elif verb == "bgapi":  # accepted; its BACKGROUND_JOB never comes
                    job_uuid = dict(command.headers)["Job-UUID"]
                    sock.sendall(
                        b"Content-Type: command/reply\n"
                        b"Reply-Text: +OK Job-UUID: %s\nJob-UUID: %s\n\n"
                        % (job_uuid.encode(), job_uuid.encode())
                    )
                elif verb == "exit":
                    sock.sendall(b"Content-Type: command/reply\nReply-Text: +OK bye\n\n")
                    break
        finally:
            gevent.sleep(0.05)
            sock.shutdown(2)
