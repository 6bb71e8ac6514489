"""What the portal tests share (import as `web_helpers`): settings, users, the platform, phones.

`start_platform` runs what `esl-callback serve` runs, in this process: the controller
(`service.Service`: inbound ESL, outbound server, the real dialer and the portal it serves) and
the FreeSWITCH simulator with the virtual phones below, all over real sockets. Tests drive the
very Flask app the service serves (`WebPlatform.app`, or over HTTP on its port); `Switch` is an
independent ESL client that sees what the switch did to each phone and lets the person at a
phone key digits, as someone reading a code off the screen would.

The simulator runs `SPEED` times faster than real time; the phones' timings below are in
simulated seconds, as are the durations the switch reports (billsec).
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import gevent
from flask import Flask
from flask.testing import FlaskClient

# The end-to-end platform helpers live with the end-to-end tests.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "e2e"))

from platform_helpers import simulator_config
from ports import free_port

from esl_callback.callback import billing, requests, status
from esl_callback.callback.rating import RateRow, RateSnapshot
from esl_callback.config import Settings, settings_from_mapping
from esl_callback.models import Account, CallbackRequest, WebUser
from esl_callback.service import Service
from esl_callback.simulator.core import Simulator
from esl_callback.switch.connection import InboundConnection
from esl_callback.web import auth

PASSWORD = "correct horse battery"
CSRF_INPUT = re.compile(r'name="csrf_token" value="([^"]+)"')
FORM_TOKEN_INPUT = re.compile(r'name="form_token" value="([^"]+)"')

SPEED = 10.0  # the simulator's clock runs this many times faster than real time
ESL_PASSWORD = "test-secret"

# The virtual phones (E.164 digits, country code 49); timings in simulated seconds.
ALICE_PHONE = "4930111111"  # alice's callback number: answers after 2 s, stays on the line
BOB_PHONE = "4930222222"  # bob's: the same
FRIEND = "49402222222"  # answers after 2 s, talks 3 s, hangs up
BUSY = "4940333333"  # busy
SILENT = "4940444444"  # rings and never answers
MISSING = "4940555555"  # the network says the number does not exist
REJECTS = "4940666666"  # rings for 1 s, then the callee rejects the call
EARLY_MEDIA = "4940777777"  # an announcement as early media (2 s), answers, talks 2 s
NEW_PHONE = "49891234567"  # a phone alice wants to add: answers after 1 s and waits for keys

PHONES: dict[str, dict[str, Any]] = {
    ALICE_PHONE: {"answer_after": 2},
    BOB_PHONE: {"answer_after": 2},
    FRIEND: {"answer_after": 2, "hangup_after": 3},
    BUSY: {"busy": True},
    SILENT: {"no_answer": True},
    MISSING: {"actions": ["hangup UNALLOCATED_NUMBER"]},
    REJECTS: {"actions": ["ring_ready", "sleep 1000", "hangup CALL_REJECTED"]},
    EARLY_MEDIA: {
        "early_media": "tone_stream://%(2000,0,440)",
        "answer_after": 1,
        "hangup_after": 2,
    },
    NEW_PHONE: {"answer_after": 1},
}


def merged(defaults: dict[str, Any], sections: dict[str, Any]) -> dict[str, Any]:
    """`defaults` with `sections` on top: a mapping is merged key by key, anything else wins."""
    data = dict(defaults)
    for name, values in sections.items():
        if isinstance(values, dict) and isinstance(data.get(name), dict):
            data[name] = {**data[name], **values}
        else:
            data[name] = values
    return data


def web_settings(**sections: Any) -> Settings:
    """Settings for tests: a real secret, German national numbers, given sections merged in."""
    defaults = {
        "web": {"secret": "s" * 40, "login_max_failures": 3, "login_lockout_seconds": 600},
        "numbers": {"country_code": "49", "min_length": 7},
    }
    return settings_from_mapping(merged(defaults, sections), environ={})


def platform_settings(
    database_url: str, switch_port: int, outbound_port: int, **sections: Any
) -> Settings:
    """`web_settings` for a controller on the simulator at `switch_port`, serving the portal.

    Calls go out over loopback to the simulator's phones; a leg A that fails is not retried.
    `sections` are merged on top (see `merged`).
    """
    defaults: dict[str, Any] = {
        "database": {"url": database_url},
        "freeswitch": {
            "nodes": [{"name": "sim", "port": switch_port, "password": ESL_PASSWORD}],
            "reconnect_min_seconds": 0.2,
            "reconnect_max_seconds": 1,
        },
        "outbound": {"port": outbound_port},
        "web": {"port": free_port()},
        "metrics": {"enabled": False},
        "callback": {"leg_a_retries": 0, "originate_timeout_seconds": 20},
        "routes": [{"prefix": "", "template": "loopback/{number}/phones"}],
    }
    return web_settings(**merged(defaults, sections))


def german_rates() -> None:
    """0.60 EUR a minute to any German number, charged by the second: costs are easy to check."""
    billing.import_rates(
        [RateRow(RateSnapshot("49", Decimal("0.60"), Decimal(0), 1, 1), "Germany", 1)],
        replace=True,
    )


class Switch:
    """An independent ESL client on the simulator: what happened to each phone, and its keypad.

    It checks the controller's work without trusting the controller's own account of it.
    """

    def __init__(self, sim: Simulator) -> None:
        self.executed: list[tuple[str, str]] = []  # (channel name, application)
        self.hangups: dict[str, str] = {}  # channel name -> hangup cause
        self.connection = InboundConnection(
            name="phones",
            host="127.0.0.1",
            port=sim.port,
            password=ESL_PASSWORD,
            events=["CHANNEL_EXECUTE", "CHANNEL_HANGUP"],
            on_event=self.record,
        ).start()
        assert self.connection.wait_connected(5), "cannot watch the simulator"

    def record(self, event: Any, node: str) -> None:
        name = event.get("Channel-Name") or ""
        if event.get("Event-Name") == "CHANNEL_HANGUP":
            self.hangups[name] = event.get("Hangup-Cause") or ""
        else:
            self.executed.append((name, event.get("Application") or ""))

    def hangup_cause(self, number: str) -> str | None:
        """How phone `number`'s call was hung up; None while it is up or never rang."""
        return self.hangups.get(f"loopback/{number}-b")

    def wait_for_hangup(self, number: str, timeout: float = 5) -> str:
        """The cause phone `number`'s call was hung up with, once this client has heard of it."""
        with gevent.Timeout(timeout, AssertionError(f"phone {number} was never hung up")):
            while (cause := self.hangup_cause(number)) is None:
                gevent.sleep(0.02)
        return cause

    def wait_for(self, channel: str, application: str, timeout: float = 10) -> None:
        """Until `application` runs on `channel`."""
        with gevent.Timeout(timeout, AssertionError(f"{application} never ran on {channel}")):
            while (channel, application) not in self.executed:
                gevent.sleep(0.02)

    def wait_for_ringing(self, number: str) -> None:
        """Until phone `number` rings."""
        self.wait_for(f"loopback/{number}-b", "ring_ready")

    def wait_for_prompt(self, number: str, application: str = "play_and_get_digits") -> None:
        """Until the controller runs `application` on its call to `number` (the phone hears it)."""
        self.wait_for(f"loopback/{number}-a", application)

    def channels(self) -> list[str]:
        """The names of the channels up on the switch."""
        rows = json.loads(self.connection.api("show channels as json")).get("rows", [])
        return [row["name"] for row in rows]

    def key(self, number: str, digits: str) -> None:
        """The person at phone `number` presses `digits` on its keypad."""
        rows = json.loads(self.connection.api("show channels as json")).get("rows", [])
        phone = [row["uuid"] for row in rows if row["name"] == f"loopback/{number}-b"]
        assert phone, f"phone {number} is not on a call"
        reply = self.connection.api(f"uuid_send_dtmf {phone[0]} {digits}")
        assert reply.startswith("+OK"), reply


@dataclass
class WebPlatform:
    """The simulator and the controller serving the portal, as `esl-callback serve` runs it."""

    sim: Simulator
    service: Service
    switch: Switch

    @property
    def app(self) -> Flask:
        """The Flask app the service serves (on `port`)."""
        assert self.service.web_server is not None
        return self.service.web_server.application

    @property
    def port(self) -> int:
        assert self.service.web_server is not None
        return self.service.web_server.server_port

    def client(self) -> FlaskClient:
        return self.app.test_client()

    def live_calls(self) -> list[int]:
        return list(self.service.dialer.flows)

    def stop(self) -> None:
        """Hang up what is still ringing or talking, then take everything down."""
        for request_id in self.live_calls():
            self.service.dialer.cancel(request_id, "the test ended")
        with gevent.Timeout(5, False):
            while self.live_calls():
                gevent.sleep(0.02)
        self.switch.connection.stop()
        self.service.stop(timeout=0)
        self.sim.stop()


def start_platform(
    database_url: str, phones: dict[str, Any] | None = None, **sections: Any
) -> WebPlatform:
    """The simulator (with `phones`, default `PHONES`) and a controller serving the portal."""
    outbound_port = free_port()
    sim = Simulator(simulator_config(outbound_port, phones or PHONES, SPEED)).start()
    settings = platform_settings(database_url, sim.port, outbound_port, **sections)
    service = Service(settings).start()
    for node in service.nodes:
        assert node.wait_connected(5), "the controller did not connect to the simulator"
    running = WebPlatform(sim, service, Switch(sim))
    running.app.testing = True  # an error in a view fails the test instead of becoming a 500
    return running


def wait_until_ended(request_id: int, timeout: float = 20) -> dict[str, Any]:
    """The request's status once it has ended and all its legs are billed."""
    with gevent.Timeout(timeout, AssertionError(f"request {request_id} did not end")):
        while True:
            snap = status.snapshot(request_id)
            if snap is not None and snap["final"]:
                return snap
            gevent.sleep(0.05)


def is_live(request_id: int) -> bool:
    """The request has not ended yet."""
    return CallbackRequest.get_by_id(request_id).state in requests.LIVE


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


def form_token_from(html: str) -> str:
    """The one-use token of the form on the page (the call form's)."""
    match = FORM_TOKEN_INPUT.search(html)
    assert match, "no one-use token in the form on the page"
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

    def until_end(self, timeout: float = 30) -> list[dict[str, Any]]:
        """Every `status` snapshot up to the `end` event (the stream is then closed)."""
        seen: list[dict[str, Any]] = []
        with gevent.Timeout(timeout, AssertionError(f"no end event after {len(seen)} events")):
            while True:
                name, data = self.next()
                if name == "end":
                    break
                seen.append(data)
        self.close()
        return seen

    def close(self) -> None:
        self.response.close()


def legs_seen(snapshots: list[dict[str, Any]]) -> list[str]:
    """Each distinct state of the legs in order, as "source:ringing destination:queued"."""
    lines: list[str] = []
    for snap in snapshots:
        line = " ".join(f"{leg['role']}:{leg['status']}" for leg in snap["legs"])
        if not lines or lines[-1] != line:
            lines.append(line)
    return lines


def seen_in_order(lines: list[str], *patterns: str) -> None:
    """Fails unless each regular expression matches one of `lines`, in this order."""
    position = 0
    for pattern in patterns:
        while position < len(lines) and not re.search(pattern, lines[position]):
            position += 1
        assert position < len(lines), f"never saw {pattern!r} (in order) in {lines}"
