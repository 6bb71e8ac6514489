"""mod_json_cdr's recorded POSTs (tests/fixtures/freeswitch-wire/http-json-cdr-*.txt) and a
listener that records what the simulator posts the same way the recording's listener did."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gevent
from gevent.server import StreamServer

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "freeswitch-wire"
_RAW = re.compile(
    rb"# BEGIN RAW REQUEST: ([^\n]*)\n(?:#[^\n]*\n)*(.*?)\n#=+\n# END RAW REQUEST", re.S
)
OK = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n"
    b"Connection: close\r\n\r\nOK\n"
)
ERROR = (
    b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\nContent-Length: 4\r\n"
    b"Connection: close\r\n\r\nERR\n"
)


def recorded(name: str) -> list[tuple[str, bytes]]:
    """(title, exact bytes) of each raw request of a capture file."""
    data = (FIXTURES / name).read_bytes()
    return [(title.decode(), raw) for title, raw in _RAW.findall(data)]


@dataclass
class Request:
    """One HTTP request as received: its head lines and its body."""

    raw: bytes

    @property
    def head(self) -> list[str]:
        return self.raw.split(b"\r\n\r\n", 1)[0].decode().split("\r\n")

    @property
    def body(self) -> bytes:
        return self.raw.split(b"\r\n\r\n", 1)[1]

    @property
    def document(self) -> Any:
        return json.loads(self.body)


class Listener:
    """Like the recording's: read the head, then Content-Length bytes, answer and close."""

    def __init__(
        self, answer: bytes = OK, on_request: Callable[[Request], None] | None = None
    ) -> None:
        self.answer = answer
        self.on_request = on_request
        self.requests: list[Request] = []
        self.server = StreamServer(("127.0.0.1", 0), self._handle)

    def start(self) -> Listener:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop(timeout=1)

    @property
    def port(self) -> int:
        return self.server.address[1]

    def _handle(self, sock: Any, _address: Any) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                return
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = int(re.search(rb"Content-Length: (\d+)", head).group(1))
        while len(body) < length:
            chunk = sock.recv(65536)
            if not chunk:
                return
            body += chunk
        request = Request(head + b"\r\n\r\n" + body)
        if self.on_request is not None:
            self.on_request(request)
        self.requests.append(request)
        sock.sendall(self.answer)
        sock.close()

    def wait_for(self, count: int, timeout: float = 30.0) -> list[Request]:
        with gevent.Timeout(timeout):
            while len(self.requests) < count:
                gevent.sleep(0.01)
        return self.requests
