"""What the portal tests share (import as `web_helpers`): settings, users, a stand-in dialer.

`RecordingDialer` stands in for `callback.dialer.Dialer` where no switch runs: it stores each
request exactly as the real one does (`requests.create`) and records what it was asked to do; the
tests then play the switch's part by writing legs and calling `notify`, as the dialer would.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from flask.testing import FlaskClient

from esl_callback.callback import requests
from esl_callback.callback.requests import State
from esl_callback.config import Settings, settings_from_mapping
from esl_callback.db import Database
from esl_callback.models import Account, CallbackRequest, WebUser
from esl_callback.web import auth

PASSWORD = "correct horse battery"
CSRF_INPUT = re.compile(r'name="csrf_token" value="([^"]+)"')


def web_settings(**sections: dict[str, Any]) -> Settings:
    """Settings for tests: a real secret, German national numbers, given sections merged in."""
    data: dict[str, dict[str, Any]] = {
        "web": {"secret": "s" * 40, "login_max_failures": 3, "login_lockout_seconds": 600},
        "numbers": {"country_code": "49", "min_length": 7},
    }
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    return settings_from_mapping(data, environ={})


class RecordingDialer:
    """The dialer's interface (start_callback, cancel, verify_number, listeners), no switch."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.listeners: list[Callable[[int], None]] = []
        self.started: list[int] = []
        self.cancelled: list[tuple[int, str]] = []
        self.codes: dict[str, str] = {}

    def start_callback(
        self, account: Account, source: str, destination: str, mode: str, trigger: str = "web"
    ) -> CallbackRequest:
        request = self.db.run(
            requests.create,
            trigger=trigger,
            method="web",
            account=account,
            mode=mode,
            source=source,
            destination=destination,
        )
        self.started.append(request.id)
        return request

    def cancel(self, request_id: int, reason: str = "cancelled") -> bool:
        if request_id not in self.started:
            return False
        self.cancelled.append((request_id, reason))
        self.db.run(requests.finish, request_id, State.CANCELLED, failure_cause="USER_CANCELLED")
        self.notify(request_id)
        return True

    def verify_number(self, account: Account, number: str, code: str) -> CallbackRequest:
        self.codes[number] = code
        request = self.db.run(
            requests.create,
            trigger="web",
            method="web",
            account=account,
            mode="verify",
            source=number,
        )
        self.started.append(request.id)
        return request

    def notify(self, request_id: int) -> None:
        for listener in self.listeners:
            listener(request_id)


@dataclass
class User:
    account: Account
    username: str
    password: str = PASSWORD
    token: str | None = None

    @property
    def auth(self) -> dict[str, str]:
        assert self.token, "create the user with token=True"
        return {"Authorization": f"Bearer {self.token}"}


def csrf_from(html: str) -> str:
    match = CSRF_INPUT.search(html)
    assert match, "no CSRF token on the page"
    return match.group(1)


def login(client: FlaskClient, user: User) -> str:
    """Log in through the form; the session's CSRF token for later posts."""
    token = csrf_from(client.get("/login").text)
    response = client.post(
        "/login", data={"username": user.username, "password": user.password, "csrf_token": token}
    )
    assert response.status_code == 302, response.text
    return csrf_from(client.get("/call").text)


def api_token(username: str) -> str:
    """A fresh API token for the user."""
    return auth.issue_token(WebUser.get(WebUser.username == username).id)


class EventReader:
    """Reads Server-Sent Events from a streamed (unbuffered) test-client response."""

    def __init__(self, response: Any) -> None:
        self.response = response
        self.chunks: Iterator[bytes | str] = iter(response.response)
        self.buffer = ""

    def next(self) -> tuple[str, dict[str, Any]]:
        """The next event's name and JSON data (comments and `retry:` lines are skipped)."""
        while True:
            while "\n\n" not in self.buffer:
                chunk = next(self.chunks)
                self.buffer += chunk.decode() if isinstance(chunk, bytes) else chunk
            block, self.buffer = self.buffer.split("\n\n", 1)
            fields = dict(
                line.split(": ", 1) for line in block.split("\n") if not line.startswith(":")
            )
            if "event" in fields:
                return fields["event"], json.loads(fields["data"])

    def close(self) -> None:
        self.response.close()
