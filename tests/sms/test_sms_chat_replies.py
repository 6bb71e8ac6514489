"""SMS replies through FreeSWITCH and the shipped chatplan, end to end (issue #23).

`chat` returns only once the sender's phone answered the SIP MESSAGE, 19.9 s later when that
phone is registered but silent (tests/fixtures/freeswitch-wire/inbound-chat-api-blocks-on-
silent-user.txt): sent as `api` on the controller's one connection to the switch it held every
other call's commands and events that long, and past the command timeout the connection was
dropped with the events queued behind it. The reply goes with `bgapi`, and what the switch
answered is stored when its BACKGROUND_JOB comes. On SQLite and PostgreSQL, over real sockets.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import gevent
import pytest
from sms_helpers import CALLER, REGISTERED_PHONES, SMS_NUMBER

from esl_callback import accounts
from esl_callback.callback import billing
from esl_callback.models import SmsMessage
from esl_callback.switch.connection import InboundConnection

BOB = "15550001002"
FRIEND = "15550002001"
SILENT_PHONE = {CALLER: {"registered": True, "answers_messages": False}}
SPEED = 4.0
# Below the 19.9 s / SPEED that `chat` waits for a silent phone: as an `api` command it timed out.
COMMAND_TIMEOUT = 3.0


def wait_until(condition: Callable[[], object], what: str, timeout: float = 20) -> None:
    with gevent.Timeout(timeout, AssertionError(f"timed out waiting for {what}")):
        while not condition():
            gevent.sleep(0.05)


def replies_to(p, number: str) -> list[SmsMessage]:
    """The replies stored for `number`, oldest first."""
    return p.db.run(
        lambda: list(
            SmsMessage.select()
            .where(SmsMessage.direction == "out", SmsMessage.destination.startswith(number))
            .order_by(SmsMessage.id)
        )
    )


def reply_warnings(caplog) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.WARNING and r.getMessage().startswith("sms reply")
    ]


def test_a_reply_to_a_phone_that_never_answers_holds_up_no_other_call(
    sms_platform, alice, caplog
) -> None:
    bob = accounts.create_account("bob", default_callback_number=BOB)
    billing.add_payment(bob, "10", "voucher 2")
    p = sms_platform(
        {BOB: {"answer_after": 0.5}, FRIEND: {"no_answer": True}},
        users=SILENT_PHONE,
        speed=SPEED,
        command_timeout=COMMAND_TIMEOUT,
        originate_timeout_seconds=120,
    )
    caplog.set_level(logging.INFO)
    # Bob's callback (his SMS came through a gateway): he answered, his friend's phone rings.
    assert p.send("gateway", BOB, FRIEND).startswith("OK, we are calling you back")
    request = p.wait_request(lambda r: r.state == "calling_destination")
    (leg_b,) = [leg for leg in p.legs(request.id) if leg.leg == "b"]
    p.sim.wait_for(leg_b.uuid, lambda ch: ch.ring_ready_flag)

    # Alice texts BAL from her phone, registered but deaf to SIP MESSAGE: sofia waits for it.
    p.sim.receive_sms(CALLER, SMS_NUMBER, "BAL", tag="alice-1")
    wait_until(
        lambda: any(m.recipient.startswith(CALLER) for m in p.sim.outbox), "the reply's chat"
    )
    # Meanwhile Bob's friend answers: his call must be connected now, not 20 s later or never.
    p.sim.pick_up(leg_b.uuid)
    connected = p.wait_request(lambda r: r.state != "calling_destination", timeout=20)
    p.sim.api(f"uuid_kill {leg_b.uuid}")  # the friend hangs up
    ended = p.wait_request()
    p.wait_idle()
    wait_until(lambda: replies_to(p, CALLER), "alice's reply to be stored")

    assert connected.state == "bridged", (connected.failure_cause, connected.failure_detail)
    assert ended.state == "completed"
    legs = p.legs(request.id)
    assert [leg.leg for leg in legs] == ["a", "b"]
    assert all(leg.answered_at is not None and leg.billsec is not None for leg in legs)
    assert p.service.nodes[0].connections_made == 1  # never dropped
    (reply,) = replies_to(p, CALLER)
    assert (reply.body, reply.action, reply.reply) == (
        "Your balance is 10.00 EUR.",
        "not_sent: Error! Message Not Sen",
        "Error! Message Not Sent",
    )
    (warning,) = reply_warnings(caplog)  # logged once
    assert warning.endswith("not sent: Error! Message Not Sent")
    assert billing.audit(bob).balanced


@pytest.mark.parametrize(
    ("users", "action", "answer"),
    [
        (REGISTERED_PHONES, "sent", "Sent"),
        ({}, "not_sent: Error! Message Not Sen", "Error! Message Not Sent"),  # nobody to send to
    ],
)
def test_a_reply_is_stored_with_what_the_switch_answered(
    sms_platform, alice, caplog, users, action, answer
) -> None:
    p = sms_platform(users=users)
    caplog.set_level(logging.INFO)

    assert p.send("freeswitch", CALLER, "BAL") == "Your balance is 10.00 EUR."
    wait_until(lambda: replies_to(p, CALLER), "the reply to be stored")

    (reply,) = replies_to(p, CALLER)
    assert (reply.channel, reply.source, reply.destination) == (
        "freeswitch",
        f"{SMS_NUMBER}@127.0.0.1",
        f"{CALLER}@127.0.0.1",
    )
    assert (reply.body, reply.action, reply.reply) == ("Your balance is 10.00 EUR.", action, answer)
    assert len(reply_warnings(caplog)) == (0 if answer == "Sent" else 1)


def test_the_shipped_chatplan_fires_two_message_events_and_one_callback_results(
    sms_platform, alice
) -> None:
    p = sms_platform(
        {CALLER: {"answer_after": 0.5}, FRIEND: {"answer_after": 0.5, "hangup_after": 1}}
    )
    seen = []
    watcher = InboundConnection(
        name="watcher",
        host="127.0.0.1",
        port=p.sim.port,
        password="test-secret",
        events=["MESSAGE", "CUSTOM", "sofia::error"],
        on_event=lambda event, node: seen.append(event),
    ).start()
    assert watcher.wait_connected(5)
    try:
        reply = p.send("freeswitch", CALLER, FRIEND, message_id="tag-1")
        request = p.wait_request()
        p.wait_idle()
    finally:
        watcher.stop()

    from_alice = [e for e in seen if e.get("from_user") == CALLER]
    assert [e.get("Event-Name") for e in from_alice] == ["MESSAGE", "MESSAGE"]
    assert [(e.get("Nonblocking-Delivery"), e.get("final_delivery")) for e in from_alice] == [
        (None, None),  # the extension's `fire`
        ("true", "true"),  # the copy after `final`
    ]
    assert not [e for e in seen if e.get("Event-Subclass") == "sofia::error"]  # no delivery tried
    assert reply == f"OK, we are calling you back on +{CALLER} now, then +{FRIEND}."
    assert (len(p.requests()), request.state) == (1, "completed")
    assert [row.action for row in p.incoming(CALLER)] == ["callback_to"]
    assert len(replies_to(p, CALLER)) == 1
