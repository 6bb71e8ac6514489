"""The portal's JSON API over HTTP(S), with urllib: blocking calls, each with a timeout.

Never call these on the UI thread: the window runs them through `tasks.TaskRunner`. HTTPS
certificates are verified (the system's trusted authorities, or `ca_file`); a certificate that
cannot be verified refuses the connection before anything is sent. Every failure is an
`ApiError` whose message is a sentence to show.
"""

from __future__ import annotations

import http.client
import json
import platform
import ssl
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from esl_callback.desktop import api_errors
from esl_callback.desktop.event_stream import EventStream

API = "/api/v1"
DEFAULT_TIMEOUT = 10.0
USER_AGENT = "esl-callback-desktop/1"
TOKEN_LABEL = f"Desktop on {platform.node() or 'this computer'}"[:64]


def normalise_server(url: str) -> str:
    """The portal's base URL: `portal.example.com` means https://portal.example.com; no
    trailing slash. ValueError (a sentence) when it is no web address."""
    text = url.strip().rstrip("/")
    if not text:
        raise ValueError("Enter the server address, e.g. https://portal.example.com.")
    if "://" not in text:
        text = "https://" + text
    parts = urllib.parse.urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname or " " in text:
        raise ValueError(
            f"{url.strip()} is not a web address; enter one like https://portal.example.com."
        )
    return text


def is_plain_http_off_this_machine(url: str) -> bool:
    """True for an http:// server elsewhere than this computer: passwords would travel in clear."""
    parts = urllib.parse.urlsplit(url)
    return parts.scheme == "http" and parts.hostname not in ("localhost", "127.0.0.1", "::1")


class ApiClient:
    """One server and, once signed in, the API token."""

    def __init__(
        self,
        server: str,
        token: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        ca_file: str | None = None,
    ) -> None:
        self.server = normalise_server(server)
        self.token = token
        self.timeout = timeout
        self.context = ssl.create_default_context(cafile=ca_file)  # verification stays on
        self._opener = urllib.request.build_opener(
            urllib.request.HTTPSHandler(context=self.context)
        )

    # -- HTTP -----------------------------------------------------------------------------

    def call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        query: dict[str, Any] | None = None,
        *,
        signing_in: bool = False,
    ) -> Any:
        """The JSON answer of `method` `path` (under /api/v1); None for an empty answer."""
        url = self.server + API + path
        if query:
            url += "?" + urllib.parse.urlencode({k: v for k, v in query.items() if v is not None})
        headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if self.token and not signing_in:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(url, data=data, headers=headers, method=method)
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            with exc:
                raise api_errors.from_http(
                    exc.code,
                    parse_json(exc.read()),
                    exc.headers.get("Retry-After"),
                    signing_in=signing_in,
                ) from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            raise api_errors.from_network(exc, self.server, self.timeout) from None
        if not raw:
            return None
        answer = parse_json(raw)
        if answer is None:
            raise api_errors.from_http(200, None, None)
        return answer

    # -- the API --------------------------------------------------------------------------

    def sign_in(self, username: str, password: str) -> dict[str, Any]:
        """Get a token of its own for the username and password, named in the portal's list of
        tokens after this computer (Settings, where it can be revoked)."""
        fields = {"username": username, "password": password, "label": TOKEN_LABEL}
        answer = self.call("POST", "/auth/token", fields, signing_in=True)
        self.token = answer["token"]
        return answer

    def sign_out(self) -> None:
        """Revoke this app's token on the server."""
        self.call("DELETE", "/auth/token")

    def account(self) -> dict[str, Any]:
        return self.call("GET", "/account")

    def phone_book(self, search: str = "") -> list[dict[str, Any]]:
        return self.call("GET", "/phonebook", query={"q": search or None, "per_page": 100})["items"]

    def add_entry(self, name: str, number: str, notes: str = "") -> dict[str, Any]:
        return self.call("POST", "/phonebook", {"name": name, "number": number, "notes": notes})

    def update_entry(self, entry_id: int, name: str, number: str, notes: str) -> dict[str, Any]:
        fields = {"name": name, "number": number, "notes": notes}
        return self.call("PUT", f"/phonebook/{entry_id}", fields)

    def delete_entry(self, entry_id: int) -> None:
        self.call("DELETE", f"/phonebook/{entry_id}")

    def quote(self, source: str | None, destination: str, mode: str) -> dict[str, Any]:
        query = {"source": source or None, "destination": destination, "mode": mode}
        return self.call("GET", "/quote", query=query)

    def start_callback(self, source: str | None, destination: str, mode: str) -> dict[str, Any]:
        order = {"destination": destination, "mode": mode}
        if source:
            order["source"] = source
        return self.call("POST", "/requests", order)

    def cancel(self, request_id: int) -> dict[str, Any]:
        return self.call("POST", f"/requests/{request_id}/cancel")

    def request_status(self, request_id: int) -> dict[str, Any]:
        return self.call("GET", f"/requests/{request_id}")

    def recent_calls(self, count: int = 25) -> list[dict[str, Any]]:
        return self.call("GET", "/requests", query={"per_page": count})["items"]

    def sign_in_link(self, page: str) -> str:
        """A one-time link opening the portal's `page` signed in (good once, for a minute)."""
        return self.call("POST", "/sign-in-links", {"page": page})["url"]

    def status_stream(self, request_id: int, read_timeout: float) -> EventStream:
        """The live status of a request as Server-Sent Events (see `EventStream`)."""
        return EventStream.open(
            self.server + f"{API}/requests/{request_id}/events",
            {"Authorization": f"Bearer {self.token}", "User-Agent": USER_AGENT},
            self.context,
            connect_timeout=self.timeout,
            read_timeout=read_timeout,
        )


def parse_json(raw: bytes) -> Any:
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
