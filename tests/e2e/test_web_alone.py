"""`esl-callback web`: the portal run alone, in its own process, placing calls through serve.

The platform is the simulator and the controller with its portal on, as `serve` runs them (in
this process); the alone portal is the real command (`python -m esl_callback web -c ...`) in a
subprocess on another port, on the same database and `web.secret`, its `web.controller_url`
pointing at serve's portal. Users talk to the alone portal's JSON API with an API token only.
Each test runs on SQLite and on PostgreSQL (the `db` fixture).

The test process runs serve in gevent without monkey patching, so everything that waits here
(HTTP requests, the status stream) runs in real threads from gevent's pool while serve answers.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import gevent
import gevent.socket
import pytest
from gevent import subprocess
from platform_helpers import Platform
from ports import free_port
from web_alone_config import write_web_alone_config

from esl_callback import accounts
from esl_callback.callback import billing
from esl_callback.db import Database
from esl_callback.models import Account, CallbackRequest, CallerId
from esl_callback.operator_client import server_sent_events
from esl_callback.web import auth

SECRET = "alone-portal-test-secret-0123456789abcdef"
SOURCE = "15550001001"  # alice's phone, registered on her account
NEW_PHONE = "15550001003"  # a phone alice proves she holds
FRIEND = "15550002001"
SILENT = "15550002003"  # rings and never answers
PHONES = {
    SOURCE: {"answer_after": 1},
    NEW_PHONE: {"answer_after": 0.5},
    FRIEND: {"answer_after": 1, "hangup_after": 3},
    SILENT: {"no_answer": True},
}


@dataclass
class Alone:
    """The alone portal's process and how to talk to it as alice."""

    process: subprocess.Popen
    url: str
    token: str
    log: Path

    def request(self, method: str, path: str, data: Any = None) -> tuple[int, Any]:
        return http(self.url + path, method, data, self.token)

    def events(self, request_id: int) -> list[tuple[str, dict]]:
        """The request's status stream on the alone portal, read to its `end`."""

        def read() -> list[tuple[str, dict]]:
            req = urllib.request.Request(
                f"{self.url}/api/v1/requests/{request_id}/events",
                headers={"Authorization": f"Bearer {self.token}"},
            )
            with opener().open(req, timeout=30) as response:
                found = []
                for name, data in server_sent_events(response):
                    found.append((name, json.loads(data)))
                    if name == "end":
                        return found
            raise AssertionError(f"the stream ended without `end`: {found}")

        return gevent.get_hub().threadpool.apply(read)


def opener() -> urllib.request.OpenerDirector:
    return urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http(url: str, method: str, data: Any = None, token: str | None = None) -> tuple[int, Any]:
    """A JSON request from a real thread, so that the serve in this process keeps answering."""

    def send() -> tuple[int, Any]:
        body = None if data is None else json.dumps(data).encode()
        headers = {"Content-Type": "application/json"} if body is not None else {}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        req = urllib.request.Request(url, data=body, method=method, headers=headers)
        try:
            with opener().open(req, timeout=20) as response:
                raw = response.read()
                return response.status, json.loads(raw) if raw.startswith(b"{") else raw
        except urllib.error.HTTPError as exc:
            with exc:
                return exc.code, json.loads(exc.read())

    return gevent.get_hub().threadpool.apply(send)


@pytest.fixture
def alice(db: Database) -> Account:
    account = accounts.create_account("alice", default_callback_number=SOURCE)
    billing.add_payment(account, "10", "voucher 1")
    return account


@pytest.fixture
def alone_portal(db: Database, alice: Account, tmp_path: Path) -> Iterator[Any]:
    """Start `esl-callback web` with serve's portal expected at `controller_port`."""
    started: list[Alone] = []
    user = accounts.add_web_user(alice, "alice", "a long password")
    token = auth.issue_token(user.id)

    def start(controller_port: int) -> Alone:
        port = free_port()
        controller_url = f"http://127.0.0.1:{controller_port}"
        config = write_web_alone_config(tmp_path / "web.yaml", db.url, port, SECRET, controller_url)
        env = {k: v for k, v in os.environ.items() if not k.startswith("ESL_CALLBACK_")}
        log = tmp_path / "web.log"
        with log.open("w") as sink:
            process = subprocess.Popen(
                [sys.executable, "-m", "esl_callback", "web", "-c", str(config)],
                stdout=sink,
                stderr=subprocess.STDOUT,
                env=dict(env, PYTHONUNBUFFERED="1"),
            )
        alone = Alone(process, f"http://127.0.0.1:{port}", token, log)
        started.append(alone)
        with gevent.Timeout(20, AssertionError("the alone portal did not start")):
            while True:
                assert process.poll() is None, f"it exited: {log.read_text()}"
                try:
                    gevent.socket.create_connection(("127.0.0.1", port), timeout=1).close()
                except OSError:
                    gevent.sleep(0.1)
                    continue
                assert http(f"{alone.url}/api/v1/openapi.yaml", "GET")[0] == 200
                return alone

    yield start
    for alone in started:
        alone.process.terminate()
        alone.process.wait(timeout=10)


def start_serve(platform: Any) -> Platform:
    port = free_port()
    web = {"bind": "127.0.0.1", "port": port, "secret": SECRET, "secure_cookies": False}
    return platform(PHONES, web=web)


def key_code(p: Platform, number: str, digits: str) -> None:
    """The person at phone `number` hears the prompt and keys `digits`."""
    with gevent.Timeout(15, AssertionError(f"no prompt on the call to {number}")):
        while (f"loopback/{number}-a", "play_and_get_digits") not in [
            (name, app) for name, app, _ in p.observer.executed
        ]:
            gevent.sleep(0.05)
    rows = json.loads(p.sim.api("show channels as json")).get("rows", [])
    phone = [row["uuid"] for row in rows if row["name"] == f"loopback/{number}-b"]
    assert phone, f"phone {number} is not on a call"
    assert p.sim.api(f"uuid_send_dtmf {phone[0]} {digits}").startswith("+OK")


def test_a_callback_and_a_number_check_placed_through_the_alone_portal(
    platform, alone_portal
) -> None:
    p = start_serve(platform)
    alone = alone_portal(p.service.settings.web.port)

    status, first = alone.request(
        "POST", "/api/v1/requests", {"source": SOURCE, "destination": FRIEND}
    )
    assert status == 201, first
    events = alone.events(first["id"])

    states = [data["state"] for name, data in events if name == "status"]
    assert "bridged" in states  # relayed as it happened: the stream's heartbeat is 15 s
    assert states[-1] == "completed" and events[-1][0] == "end"
    last = events[-2][1]
    assert last["final"] and [leg["status"] for leg in last["legs"]] == ["hung_up", "hung_up"]
    request = p.db.run(CallbackRequest.get_by_id, first["id"])
    assert (request.state, request.trigger, request.mode) == ("completed", "web", "source_first")
    leg_a, leg_b = p.legs(request.id)
    assert leg_a.billed and leg_b.billed and leg_a.cost > 0 and leg_b.cost > 0
    assert Account.get(Account.name == "alice").balance == Decimal(10) - leg_a.cost - leg_b.cost

    # A number verification: the alone portal stores it, serve calls the phone.
    status, check = alone.request("POST", "/api/v1/numbers/verifications", {"number": NEW_PHONE})
    assert status == 201, check
    assert check["status"] == "calling" and check["request_id"]
    key_code(p, NEW_PHONE, check["code"] + "#")
    assert alone.events(check["request_id"])[-2][1]["state"] == "completed"
    status, settled = alone.request("GET", f"/api/v1/numbers/verifications/{check['id']}")
    assert (status, settled["status"]) == (200, "verified")
    owner = CallerId.get(CallerId.number == NEW_PHONE).account_id
    assert owner == Account.get(Account.name == "alice").id
    p.wait_idle()


def test_a_call_the_alone_portal_did_not_place_is_followed_live_when_a_page_watches_it(
    platform, alone_portal
) -> None:
    p = start_serve(platform)
    alone = alone_portal(p.service.settings.web.port)
    alice = Account.get(Account.name == "alice")
    started = p.service.dialer.start_callback(alice, SOURCE, FRIEND, "source_first", "cli")

    states = [data["state"] for name, data in alone.events(started.id) if name == "status"]

    assert "bridged" in states  # relayed from serve as it happened, not seen on a heartbeat
    assert states[-1] == "completed"
    p.wait_idle()


def test_a_callback_is_cancelled_through_the_alone_portal(platform, alone_portal) -> None:
    p = start_serve(platform)
    alone = alone_portal(p.service.settings.web.port)

    status, first = alone.request(
        "POST", "/api/v1/requests", {"source": SOURCE, "destination": SILENT}
    )
    assert status == 201, first
    p.wait_request(lambda r: r.state == "calling_destination")
    status, cancelled = alone.request("POST", f"/api/v1/requests/{first['id']}/cancel")
    assert status == 200, cancelled

    assert alone.events(first["id"])[-2][1]["state"] == "cancelled"
    request = p.wait_request()
    assert (request.state, request.failure_cause) == ("cancelled", "USER_CANCELLED")
    assert request.failure_detail == "cancelled by web user alice"
    p.wait_idle()


def test_without_serve_calls_are_refused_clearly_and_the_rest_works(alone_portal) -> None:
    closed = free_port()
    alone = alone_portal(closed)

    status, error = alone.request(
        "POST", "/api/v1/requests", {"source": SOURCE, "destination": FRIEND}
    )
    assert (status, error["error"]["code"]) == (503, "unavailable")
    assert error["error"]["message"].startswith("calls cannot be placed right now")
    assert alone.request("GET", "/api/v1/requests")[0] == 200
    assert alone.request("GET", "/api/v1/payments")[0] == 200
    assert alone.request("GET", "/api/v1/account")[0] == 200
    assert CallbackRequest.select().count() == 0
    logged = alone.log.read_text()
    assert f"esl-callback serve at http://127.0.0.1:{closed} (web.controller_url)" in logged
    assert "check that serve is running there" in logged
