"""A Server-Sent Events stream read with http.client, on a worker thread.

`EventStream.open` connects and checks the answer; `events()` yields each event's name and JSON
data as it comes; `close()` (from any thread) shuts the socket, so a thread blocked reading it
returns at once. Each read waits at most `read_timeout` seconds: the server sends a snapshot at
least every 15 s, so a longer silence means the connection is lost.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import ssl
import threading
import urllib.parse
from collections.abc import Iterator
from typing import Any

from esl_callback.desktop import api_errors


class EventStream:
    """One open stream."""

    def __init__(self, connection: http.client.HTTPConnection, response: Any) -> None:
        self._connection = connection
        self._response = response
        self._lock = threading.Lock()
        self.closed = False

    @classmethod
    def open(
        cls,
        url: str,
        headers: dict[str, str],
        context: ssl.SSLContext,
        *,
        connect_timeout: float,
        read_timeout: float,
    ) -> EventStream:
        """Connect to `url` and check that it streams events; ApiError otherwise."""
        parts = urllib.parse.urlsplit(url)
        server = f"{parts.scheme}://{parts.netloc}"
        connection: http.client.HTTPConnection
        if parts.scheme == "https":
            connection = http.client.HTTPSConnection(
                parts.hostname or "", parts.port, timeout=connect_timeout, context=context
            )
        else:
            connection = http.client.HTTPConnection(
                parts.hostname or "", parts.port, timeout=connect_timeout
            )
        try:
            connection.request(
                "GET", parts.path, headers={**headers, "Accept": "text/event-stream"}
            )
            response = connection.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            connection.close()
            raise api_errors.from_network(exc, server, connect_timeout) from None
        if response.status != 200:
            body = response.read()
            connection.close()
            try:
                parsed = json.loads(body)
            except ValueError:
                parsed = None
            raise api_errors.from_http(response.status, parsed, response.getheader("Retry-After"))
        if connection.sock is not None:
            connection.sock.settimeout(read_timeout)
        return cls(connection, response)

    def events(self) -> Iterator[tuple[str, Any]]:
        """(name, data) of each event until the server ends the stream.

        OSError (a timeout too) when the connection is lost; nothing once `close` was called.
        """
        name, data = "message", []
        while not self.closed:
            try:
                line = self._response.readline()
            except (OSError, ValueError, http.client.HTTPException):
                if self.closed:
                    return
                raise
            if not line:
                return
            text = line.decode("utf-8").rstrip("\r\n")
            if not text:
                if data:
                    yield name, json.loads("\n".join(data))
                name, data = "message", []
            elif text.startswith("event:"):
                name = text[6:].strip()
            elif text.startswith("data:"):
                data.append(text[5:].strip())

    def close(self) -> None:
        """Stop reading, from any thread."""
        with self._lock:
            if self.closed:
                return
            self.closed = True
            sock = self._connection.sock
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            self._connection.close()
