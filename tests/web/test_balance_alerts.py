"""The low-balance alert: set in Settings, sent once when a call takes the balance below it (by
e-mail through an SMTP server standing in for the operator's, or by SMS through the reply path:
a gateway's reply_url, or FreeSWITCH's chat), not on the calls after it, and again after a
top-up lifted the balance above it; offered only as configured.

Calls are real calls on the simulator (`web_helpers`): alice's phone to FRIEND, 0.60 EUR a
minute on each leg, billed by the second; one such call costs about 0.08 EUR.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from decimal import Decimal
from email import message_from_string
from typing import Any

import gevent
import pytest
from flask.testing import FlaskClient
from gevent.pywsgi import WSGIServer
from gevent.server import StreamServer
from web_helpers import ALICE_PHONE, FRIEND, User, WebPlatform, login, wait_until_ended

from esl_callback import alerts
from esl_callback.callback import billing
from esl_callback.config import settings_from_mapping
from esl_callback.models import Account, SmsMessage

SMS_NUMBER = "4930100300"
GATEWAY_TOKEN = "alert-test-token-0123456789"


class MailCatcher:
    """An SMTP server standing in for the operator's: keeps every message it is given."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], str]] = []  # sender, recipients, message
        self.server = StreamServer(("127.0.0.1", 0), self.handle)
        self.server.start()

    @property
    def port(self) -> int:
        return self.server.server_port

    def handle(self, sock: Any, address: Any) -> None:
        stream = sock.makefile("rwb")

        def say(*lines: str) -> None:
            stream.write(b"".join(line.encode() + b"\r\n" for line in lines))
            stream.flush()

        say("220 catcher ESMTP")
        sender, recipients, data, in_data = "", [], [], False
        for raw in iter(stream.readline, b""):
            line = raw.decode().rstrip("\r\n")
            if in_data:
                if line == ".":
                    self.messages.append((sender, recipients, "\n".join(data)))
                    sender, recipients, data, in_data = "", [], [], False
                    say("250 queued")
                else:
                    data.append(line[1:] if line.startswith("..") else line)
                continue
            verb = line[:4].upper()
            if verb == "EHLO":
                say("250-catcher", "250 8BITMIME")
            elif verb == "MAIL":
                sender = line.partition(":")[2].strip()
                say("250 OK")
            elif verb == "RCPT":
                recipients.append(line.partition(":")[2].strip())
                say("250 OK")
            elif verb == "DATA":
                in_data = True
                say("354 go ahead")
            elif verb == "QUIT":
                say("221 bye")
                return
            else:
                say("250 OK")

    def wait(self, count: int, timeout: float = 10) -> list[tuple[str, list[str], str]]:
        with gevent.Timeout(timeout, AssertionError(f"{count} e-mails not sent")):
            while len(self.messages) < count:
                gevent.sleep(0.05)
        return self.messages

    def stop(self) -> None:
        self.server.stop()


class ReplyCatcher:
    """An SMS gateway's send endpoint (its reply_url): keeps what it is POSTed."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], Any]] = []
        self.server = WSGIServer(("127.0.0.1", 0), self.app, log=None)
        self.server.start()

    def app(self, environ: dict, start_response: Any) -> list[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        headers = {k[5:]: v for k, v in environ.items() if k.startswith("HTTP_")}
        self.received.append((headers, json.loads(environ["wsgi.input"].read(length))))
        start_response("200 OK", [("Content-Type", "application/json")])
        return [b"{}"]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/send"

    def wait(self, count: int, timeout: float = 10) -> list[tuple[dict[str, str], Any]]:
        with gevent.Timeout(timeout, AssertionError(f"{count} SMS not posted")):
            while len(self.received) < count:
                gevent.sleep(0.05)
        return self.received


@pytest.fixture
def mail() -> Iterator[MailCatcher]:
    catcher = MailCatcher()
    yield catcher
    catcher.stop()


def email_section(mail: MailCatcher) -> dict[str, Any]:
    return {
        "smtp_host": "127.0.0.1",
        "smtp_port": mail.port,
        "security": "none",
        "from_address": "Callback <alerts@callback.example>",
    }


def set_alert(client: FlaskClient, csrf: str, **fields: str):
    return client.post("/settings/alert", data={"csrf_token": csrf, **fields})


def call_and_wait(client: FlaskClient, user: User) -> Decimal:
    """A call from alice's phone to FRIEND, to its end; the balance after it."""
    response = client.post(
        "/api/v1/requests",
        json={"source": ALICE_PHONE, "destination": FRIEND},
        headers=user.auth,
    )
    assert response.status_code == 201, response.json
    assert wait_until_ended(response.json["id"])["state"] == "completed"
    return Account.get_by_id(user.account.id).balance


def top_up_to(user: User, wanted: str) -> None:
    balance = Account.get_by_id(user.account.id).balance
    billing.add_payment(user.account, Decimal(wanted) - balance, "top-up")


def test_an_email_goes_once_when_a_call_crosses_the_amount_and_again_after_a_top_up(
    platform_with: Callable[..., WebPlatform],
    make_user: Callable[..., User],
    mail: MailCatcher,
) -> None:
    running = platform_with(email=email_section(mail))
    alice = make_user("alice", balance="1.05")
    client = running.client()
    csrf = login(client, alice)
    saved = set_alert(
        client, csrf, alert_below="1", alert_by="email", alert_email="alice@example.org"
    )
    assert saved.status_code == 302
    page = client.get("/settings").text
    assert "We will e-mail alice@example.org when a call takes your balance below 1.00 EUR." in page
    assert 'name="alert_below" type="text" inputmode="decimal"' in page and 'value="1.00"' in page

    after = call_and_wait(client, alice)  # 1.05 -> below 1.00
    assert after < Decimal(1)
    (sender, recipients, text), *_ = mail.wait(1)
    message = message_from_string(text)
    assert (sender, recipients) == ("<alerts@callback.example>", ["<alice@example.org>"])
    # The balance the debit that crossed left: the call's first leg billed, or both.
    shown = message["Subject"].removeprefix("Your balance is low: ")
    assert after <= Decimal(shown.removesuffix(" EUR")) < 1
    assert message["To"] == "alice@example.org"
    assert (
        f"Your callback balance is {shown}, below the 1.00 EUR you asked to be told about."
        in message.get_payload(decode=True).decode()
    )
    assert Account.get_by_id(alice.account.id).low_balance_alerted_at is not None

    call_and_wait(client, alice)  # below already: nothing more
    gevent.sleep(0.5)
    assert len(mail.messages) == 1

    top_up_to(alice, "1.03")  # lifted above: the next crossing alerts again
    call_and_wait(client, alice)
    mail.wait(2)
    gevent.sleep(0.5)
    assert len(mail.messages) == 2
    home = client.get("/").text
    assert "Your balance is low, below 1.00 EUR" in home  # the home page's notice follows it
    assert "We e-mail you when a call takes it below 1.00 EUR" in home


def test_an_sms_alert_goes_through_the_gateways_reply_url_or_freeswitch(
    platform_with: Callable[..., WebPlatform], make_user: Callable[..., User]
) -> None:
    catcher = ReplyCatcher()
    sms = {
        "enabled": True,
        "numbers": [f"+{SMS_NUMBER}"],
        "gateways": [{"name": "gw", "token": GATEWAY_TOKEN, "reply_url": catcher.url}],
    }
    running = platform_with(sms=sms)
    alice = make_user("alice", balance="1.05")
    client = running.client()
    csrf = login(client, alice)
    settings = client.get("/settings").text
    assert 'value="email"' not in settings  # no SMTP server configured: no e-mail alert
    assert set_alert(client, csrf, alert_below="1.00", alert_by="sms").status_code == 302
    assert "We will text your number +49 30 111111" in client.get("/settings").text

    call_and_wait(client, alice)
    (_, posted), *_ = catcher.wait(1)
    assert posted["to"] == f"+{ALICE_PHONE}" and posted["from"] == f"+{SMS_NUMBER}"
    assert posted["text"].startswith("Your callback balance is ")
    sent = SmsMessage.get(SmsMessage.direction == "out")
    assert (sent.channel, sent.destination, sent.action) == ("gw", f"+{ALICE_PHONE}", "sent")

    # alice texted us through FreeSWITCH since (from a phone registered at a SIP domain the
    # simulator sends on to): the next alert goes back that way, with `chat`.
    SmsMessage.create(
        direction="in",
        source=ALICE_PHONE,
        destination=SMS_NUMBER,
        body="BAL",
        channel="freeswitch",
        message_id=f"{ALICE_PHONE}@sip.example.net;tag=t1",
        action="balance",
    )
    top_up_to(alice, "1.03")
    call_and_wait(client, alice)
    with gevent.Timeout(10, AssertionError("no chat reply stored")):
        while not SmsMessage.select().where(SmsMessage.channel == "freeswitch").count() > 1:
            gevent.sleep(0.05)
    chat = SmsMessage.get(SmsMessage.channel == "freeswitch", SmsMessage.direction == "out")
    assert (chat.source, chat.destination) == (
        f"{SMS_NUMBER}@sip.example.net",
        f"{ALICE_PHONE}@sip.example.net",
    )
    assert chat.body.startswith("Your callback balance is ") and chat.action == "sent"
    assert len(catcher.received) == 1


def test_the_form_refuses_what_cannot_be_kept_in_sentences_next_to_the_field(
    platform_with: Callable[..., WebPlatform], make_user: Callable[..., User], mail: MailCatcher
) -> None:
    running = platform_with(
        email=email_section(mail), sms={"enabled": True, "numbers": ["+4930100300"]}
    )
    alice = make_user("alice")
    client = running.client()
    csrf = login(client, alice)
    refusals = [
        ({"alert_below": "five"}, "alert_below", "Write the amount as a number, such as 5 or"),
        ({"alert_below": "0"}, "alert_below", "The amount must be more than 0 and at most 100"),
        ({"alert_below": "1.005"}, "alert_below", "Amounts in EUR have 2 decimals."),
        ({"alert_below": "2", "alert_by": "fax"}, "alert_by", "Choose how we should tell you"),
        ({"alert_below": "2"}, "alert_email", "Type the e-mail address the alert should go to."),
        ({"alert_below": "2", "alert_email": "at home"}, "alert_email", "That does not look"),
    ]
    for fields, field, message in refusals:
        fields = {"alert_by": "email", **fields}
        refused = set_alert(client, csrf, **fields)
        assert refused.status_code == 422
        assert f'<p class="field-error" id="{field}-error">{message}' in refused.text
        assert f'value="{fields["alert_below"]}"' in refused.text  # what was typed stays
    assert Account.get_by_id(alice.account.id).low_balance_alert is None
    set_alert(client, csrf, alert_below="2,5", alert_by="sms")
    kept = Account.get_by_id(alice.account.id)
    assert (kept.low_balance_alert, kept.low_balance_alert_by) == (Decimal("2.5"), "sms")
    set_alert(client, csrf, alert_below="", alert_by="sms")
    assert Account.get_by_id(alice.account.id).low_balance_alert is None
    assert "Low-balance alerts are off." in client.get("/settings").text


def test_alerts_are_offered_only_as_the_installation_can_send_them(
    platform_with: Callable[..., WebPlatform], make_user: Callable[..., User]
) -> None:
    assert alerts.channels_offered(settings_from_mapping({}, {})) == ()
    client = platform_with().client()
    login(client, make_user("alice"))
    page = client.get("/settings").text
    assert "Your provider does not send alerts by e-mail or SMS" in page
    assert 'name="alert_below"' not in page
