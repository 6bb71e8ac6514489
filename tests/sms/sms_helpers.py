"""The platform for SMS tests: simulator + the real controller with its web server, and the two
ways an SMS reaches it (a FreeSWITCH MESSAGE event, a gateway's HTTP POST), over real sockets.
"""

from __future__ import annotations

import itertools
import json
import urllib.error
import urllib.parse
import urllib.request
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gevent
from gevent.pywsgi import WSGIServer
from gevent.server import StreamServer
from platform_helpers import (
    Observer,
    Platform,
    controller_settings,
    free_port,
    simulator_config,
)

from esl_callback.config import settings_from_mapping, settings_to_dict
from esl_callback.models import SmsMessage
from esl_callback.service import Service
from esl_callback.simulator.core import Simulator

SMS_NUMBER = "18005550300"  # the number SMS are sent to
GATEWAY = "phone1"
TOKEN = "gateway-token-0123456789"
MARKER = "15559990000"  # an unregistered sender whose SMS mark that earlier ones were handled
CHANNELS = ("freeswitch", "gateway")
CALLER = "15550001001"  # alice's mobile, her registered number
SHIPPED_CHATPLAN = (
    Path(__file__).resolve().parents[2] / "freeswitch" / "chatplan" / "esl-callback.xml"
)
# Alice's mobile is also a SIP phone registered on the switch: `chat` replies reach it ("Sent").
# Other senders have no registration: FreeSWITCH has nobody to send their replies to.
REGISTERED_PHONES = {CALLER: {"registered": True}}


def shipped_chatplan(sms_numbers: list[str]) -> dict[str, Any]:
    """freeswitch/chatplan/esl-callback.xml as the simulator's chatplan: its context, field and
    actions (fire, final), its to_user pattern made of `sms_numbers` (as the README says to)."""
    context = ET.parse(SHIPPED_CHATPLAN).getroot().find("context")
    assert context is not None
    extension = context.find("extension")
    assert extension is not None
    condition = extension.find("condition")
    assert condition is not None
    digits = "|".join(number.lstrip("+") for number in sms_numbers)
    return {
        context.get("name"): [
            {
                "name": extension.get("name"),
                "field": condition.get("field"),
                "expression": rf"^\+?({digits})$",
                "actions": [action.get("application") for action in condition.iter("action")],
            }
        ]
    }


def post(url: str, *, json_body: Any = None, form: dict | None = None, headers=None):
    """POST from a worker thread (the test's own hub serves the web app): (status, JSON)."""
    sent_headers = dict(headers or {})
    if form is not None:
        data = urllib.parse.urlencode(form).encode()
        sent_headers["Content-Type"] = "application/x-www-form-urlencoded"
    else:
        data = json.dumps(json_body).encode()
        sent_headers["Content-Type"] = "application/json"

    def call() -> tuple[int, Any]:
        outgoing = urllib.request.Request(url, data=data, headers=sent_headers, method="POST")
        try:
            with urllib.request.urlopen(outgoing, timeout=15) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    return gevent.get_hub().threadpool.apply(call)


class ReplyCatcher:
    """An HTTP server standing in for a gateway's send endpoint: records what it is sent."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], Any]] = []
        self.server = WSGIServer(("127.0.0.1", 0), self.app, log=None)
        self.server.start()

    def app(self, environ: dict, start_response: Any) -> list[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = json.loads(environ["wsgi.input"].read(length))
        headers = {k[5:]: v for k, v in environ.items() if k.startswith("HTTP_")}
        headers["PATH"] = environ["PATH_INFO"] + "?" + environ.get("QUERY_STRING", "")
        self.received.append((headers, body))
        start_response("200 OK", [("Content-Type", "application/json")])
        return [b"{}"]

    @property
    def url(self) -> str:
        return f"http://gw-user:s3cret%21@127.0.0.1:{self.server.server_port}/send?via=test"

    def wait(self, count: int, timeout: float = 10) -> list[tuple[dict[str, str], Any]]:
        with gevent.Timeout(timeout, AssertionError(f"{count} replies not posted")):
            while len(self.received) < count:
                gevent.sleep(0.05)
        return self.received


class TrickleCatcher:
    """A gateway's send endpoint that takes the request, then answers a byte every 10 ms: its
    status line and one header that never ends."""

    def __init__(self) -> None:
        self.requests = 0
        self.open = 0
        self.server = StreamServer(("127.0.0.1", 0), self.answer)
        self.server.start()

    def answer(self, connection: Any, _address: Any) -> None:
        self.open += 1
        try:
            received = b""
            while b"\r\n\r\n" not in received:
                chunk = connection.recv(4096)
                if not chunk:
                    return
                received += chunk
            self.requests += 1
            connection.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
            while True:
                connection.sendall(b"a")
                gevent.sleep(0.01)
        except OSError:
            return  # the controller hung up
        finally:
            self.open -= 1

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/send"

    def wait(self, requests: int, open: int, timeout: float = 10) -> None:
        """Until it was sent `requests` requests and has `open` connections open."""
        with gevent.Timeout(timeout, AssertionError(f"{self.requests} requests, {self.open} open")):
            while (self.requests, self.open) != (requests, open):
                gevent.sleep(0.02)

    def close(self) -> None:
        self.server.stop(timeout=1)


@dataclass
class SmsPlatform(Platform):
    web_port: int = 0
    markers: int = field(default=0)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}/api/v1"

    def send(self, channel: str, sender: str, text: str, message_id: str | None = None):
        """Send an SMS one of the two ways; what the sender got back (None: no reply)."""
        if channel == "gateway":
            status, body = self.post_sms(sender, text, message_id)
            assert status == 200, body
            return body["reply"]
        outbox_before = len(self.sim.outbox)
        self.sim.receive_sms(sender, SMS_NUMBER, text, tag=message_id)
        self.sync()
        replies = [
            message.body
            for message in self.sim.outbox[outbox_before:]
            if message.recipient.split("@")[0] == sender
        ]
        assert len(replies) <= 1, replies
        return replies[0] if replies else None

    def post_sms(self, sender: str, text: str, message_id: str | None = None, **extra: Any):
        fields = {"from": sender, "to": SMS_NUMBER, "text": text, "message_id": message_id}
        return post(
            f"{self.base_url}/sms/inbound",
            json_body={**fields, **extra},
            headers={"X-Gateway-Token": TOKEN},
        )

    def report_call(self, caller: str, called: str, call_id: str | None = None):
        return post(
            f"{self.base_url}/gateway/call",
            json_body={"from": caller, "to": called, "call_id": call_id},
            headers={"Authorization": f"Bearer {TOKEN}"},
        )

    def sync(self, timeout: float = 10) -> None:
        """Until every MESSAGE sent so far was handled (they are handled in order)."""
        self.markers += 1
        self.sim.receive_sms(MARKER, SMS_NUMBER, f"marker {self.markers}", tag=uuid.uuid4().hex)
        with gevent.Timeout(timeout, AssertionError("the MESSAGE events were not handled")):
            while not self.db.run(
                lambda: (
                    SmsMessage.select()
                    .where(
                        SmsMessage.body == f"marker {self.markers}",
                        SmsMessage.action != "received",
                    )
                    .exists()
                )
            ):
                gevent.sleep(0.05)

    def incoming(self, sender: str) -> list[SmsMessage]:
        """The SMS stored from `sender`, oldest first."""
        return self.db.run(
            lambda: list(
                SmsMessage.select()
                .where(SmsMessage.direction == "in", SmsMessage.source == sender)
                .order_by(SmsMessage.id)
            )
        )


def start_sms_platform(
    database_url: str,
    phones: dict[str, Any],
    *,
    sms: dict[str, Any] | None = None,
    reply_url: str | None = None,
    billing: dict[str, Any] | None = None,
    speed: float = 1.0,
    users: dict[str, Any] | None = None,
    command_timeout: float | None = None,
    branding: dict[str, Any] | None = None,
    **callback: Any,
) -> SmsPlatform:
    """Simulator + controller with its web server; tried again if a free port was taken.

    `billing`: keys of the controller's billing section; `callback`: of its callback section;
    `speed`: how many times faster than real time the simulator's clock runs; `users`: the
    switch's SIP phones (default REGISTERED_PHONES); `command_timeout`: the node's
    command_timeout_seconds; `branding`: keys of the branding section. The switch runs the
    shipped chatplan for the SMS numbers.
    """
    gateway = {"name": GATEWAY, "token": TOKEN, "reply_url": reply_url}
    sms_section = {"enabled": True, "numbers": [SMS_NUMBER], "gateways": [gateway]}
    sms_section.update(sms or {})
    chatplan = shipped_chatplan(sms_section["numbers"]) if sms_section["numbers"] else {}
    for attempt in itertools.count(1):
        outbound_port, web_port = free_port(), free_port()
        sim_users = REGISTERED_PHONES if users is None else users
        config = simulator_config(outbound_port, phones, speed, users=sim_users, chatplan=chatplan)
        sim = Simulator(config).start()
        data = settings_to_dict(
            controller_settings(
                database_url, [sim.port], outbound_port, billing=billing, **callback
            ),
            masked=False,
        )
        data["web"].update(enabled=True, port=web_port, secret="s" * 40, secure_cookies=False)
        data["sms"].update(sms_section)
        data["branding"].update(branding or {})
        if command_timeout is not None:
            data["freeswitch"]["nodes"][0]["command_timeout_seconds"] = command_timeout
        service = Service(settings_from_mapping(data, environ={}))
        try:
            service.start()
        except OSError:  # another process bound a port between free_port() and us
            service.stop(timeout=0)
            sim.stop()
            if attempt == 3:
                raise
            continue
        for node in service.nodes:
            assert node.wait_connected(5), "controller did not connect to the simulator"
        return SmsPlatform(sim, service, Observer(sim), web_port=web_port)
