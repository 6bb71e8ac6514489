"""The HTTP client of serve's operator API (`web/operator_api.py`), signed as the operator.

Two programs talk to a running `esl-callback serve` this way, because the dialer lives there:
`esl-callback call` (a callback from a terminal) and `esl-callback web` (the portal run alone,
through `web.remote_dialer.RemoteDialer`). Every request carries a one-time operator credential
made from `web.secret` (`esl_callback.operator`). Failures come back as two exceptions:
`Unreachable` (serve did not answer) and `Refused` (serve answered with an error).

Blocking I/O with urllib: under gevent's monkey patching (both commands) it waits cooperatively.
"""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

from esl_callback import operator
from esl_callback.config import local_url

API = "/api/v1/operator"
REQUEST_TIMEOUT_SECONDS = 15
STREAM_TIMEOUT_SECONDS = 45  # the stream sends a fresh status at least every 15 s


class Unreachable(Exception):
    """serve did not answer (not running, wrong port, or it went away)."""


class Refused(Exception):
    """serve answered with an error; `status` is the HTTP status, the message is its message."""

    def __init__(
        self,
        status: int,
        message: str,
        field: str | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.field = field
        self.retry_after = retry_after


class OperatorClient:
    """The operator API of one running `esl-callback serve` at `base_url`."""

    def __init__(self, base_url: str, secret: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.secret = secret
        # Straight to serve, never through an HTTP proxy from the environment.
        self.opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def open(self, method: str, path: str, data: Any = None, timeout: float = 15) -> Any:
        """The response to a signed request (the caller closes it); Unreachable or Refused."""
        body = b"" if data is None else json.dumps(data).encode()
        req = urllib.request.Request(
            self.base_url + path, data=body if data is not None else None, method=method
        )
        req.add_header("Authorization", operator.sign(self.secret, method, path, body))
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            return self.opener.open(req, timeout=timeout)
        except urllib.error.HTTPError as exc:
            with exc:
                raise refused(exc) from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            raise Unreachable(str(getattr(exc, "reason", exc))) from None

    def call(self, method: str, path: str, data: Any = None) -> dict[str, Any]:
        """The JSON answer to a signed request."""
        with self.open(method, path, data, REQUEST_TIMEOUT_SECONDS) as response:
            try:
                return json.loads(response.read())
            except (ValueError, OSError, http.client.HTTPException) as exc:
                raise Unreachable(f"unexpected answer: {exc}") from None

    def start(
        self,
        account: str | int,
        source: str | None,
        destination: str,
        mode: str,
        trigger: str | None = None,
    ) -> dict[str, Any]:
        """Start a callback for the account (name or id); its status."""
        order: dict[str, Any] = {"account": account, "destination": destination, "mode": mode}
        if source:
            order["source"] = source
        if trigger:
            order["trigger"] = trigger
        return self.call("POST", f"{API}/requests", order)

    def status(self, request_id: int) -> dict[str, Any]:
        return self.call("GET", f"{API}/requests/{request_id}")

    def cancel(self, request_id: int, reason: str | None = None) -> dict[str, Any]:
        """Hang up both legs of a live request; its status."""
        data = {"reason": reason} if reason else {}
        return self.call("POST", f"{API}/requests/{request_id}/cancel", data)

    def call_verification(self, verification_id: int) -> dict[str, Any]:
        """Have serve call the number of a pending number verification; the verification."""
        return self.call("POST", f"{API}/numbers/verifications/{verification_id}/call", {})

    def events(self, request_id: int) -> Iterator[tuple[str, str]]:
        """(event name, data) of the request's status stream, until serve closes it."""
        path = f"{API}/requests/{request_id}/events"
        with self.open("GET", path, timeout=STREAM_TIMEOUT_SECONDS) as response:
            try:
                yield from server_sent_events(response)
            except (OSError, http.client.HTTPException) as exc:
                raise Unreachable(str(exc)) from None


def refused(exc: urllib.error.HTTPError) -> Refused:
    retry = (exc.headers.get("Retry-After") or "") if exc.headers else ""
    retry_after = int(retry) if retry.isascii() and retry.isdigit() else None
    try:
        error = json.loads(exc.read())["error"]
        return Refused(exc.code, error["message"], error.get("field"), retry_after)
    except (ValueError, KeyError, TypeError, OSError, http.client.HTTPException):
        return Refused(exc.code, f"HTTP {exc.code} {exc.reason}", retry_after=retry_after)


def server_sent_events(lines: Any) -> Iterator[tuple[str, str]]:
    """Parse a text/event-stream (bytes lines) into (event, data) pairs."""
    name, data = "message", []
    for raw in lines:
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        if not line:
            if data:
                yield name, "\n".join(data)
            name, data = "message", []
        elif not line.startswith(":"):
            key, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if key == "event":
                name = value
            elif key == "data":
                data.append(value)


def controller_url(settings: Any) -> str:
    """Where the serve these settings (config.Settings) belong to answers.

    `web.controller_url` when set (a portal run alone with `esl-callback web`, or a command on
    another machine); otherwise the portal of the serve using these very settings
    (`web.bind`/`web.port`, reached on loopback when it listens on every address).
    """
    web = settings.web
    if web.controller_url:
        return web.controller_url.rstrip("/")
    return local_url(web.bind, web.port)
