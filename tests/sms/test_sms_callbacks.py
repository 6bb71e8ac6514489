"""SMS that start callbacks, end to end: each syntax arrives as a FreeSWITCH MESSAGE event and as
a gateway's HTTP POST; the controller answers (with `chat`, or in the response) and calls back.

Each test runs on SQLite and on PostgreSQL, over real sockets.
"""

from __future__ import annotations

import pytest
from sms_helpers import CALLER, CHANNELS, GATEWAY

from esl_callback import accounts
from esl_callback.callback import billing
from esl_callback.models import AuthFailure, SmsMessage

FRIEND = "15550002001"
OTHER_PHONE = "15550001002"
ENTER_DESTINATION = "ivr/ivr-enter_destination_telephone_number.wav"
ENTER_PIN = "ivr/ivr-please_enter_pin_followed_by_pound.wav"
SHORT_CALL = {"answer_after": 0.5, "hangup_after": 1}


def heard(p, number: str) -> str:
    """Everything played or prompted on the callback leg towards `number`, in order."""
    channel = f"loopback/{number}-a"
    return " ".join(data for name, _, data in p.observer.executed if name == channel)


def keys(*digits: str) -> dict:
    """A phone that answers at once and keys each string 2.5 s apart."""
    steps = [{"after": 1.0 if i == 0 else 2.5, "digits": d} for i, d in enumerate(digits)]
    return {"answer_after": 0.5, "keys": steps}


@pytest.mark.parametrize("channel", CHANNELS)
@pytest.mark.parametrize("text", ["", "  Cb "])
def test_an_empty_sms_or_cb_calls_the_sender_back_and_the_ivr_asks_for_the_destination(
    sms_platform, alice, channel, text
) -> None:
    p = sms_platform({CALLER: keys(f"{FRIEND}#"), FRIEND: SHORT_CALL})

    reply = p.send(channel, CALLER, text)
    request = p.wait_request()
    p.wait_idle()

    assert reply == f"OK, we are calling you back on +{CALLER} now."
    assert (request.state, request.trigger, request.mode) == ("completed", "sms", "two_stage")
    assert (request.account_id, request.source, request.destination) == (alice.id, CALLER, FRIEND)
    assert [leg.number for leg in p.legs(request.id)] == [CALLER, FRIEND]
    assert ENTER_DESTINATION in heard(p, CALLER) and ENTER_PIN not in heard(p, CALLER)
    (stored,) = p.incoming(CALLER)
    assert (stored.action, stored.request_id, stored.account_id) == (
        "callback",
        request.id,
        alice.id,
    )
    assert (stored.body, stored.reply) == (text, reply)
    assert stored.channel == ("freeswitch" if channel == "freeswitch" else GATEWAY)
    assert billing.audit(alice).balanced


@pytest.mark.parametrize("channel", CHANNELS)
@pytest.mark.parametrize("text", [FRIEND, " cb   +1-555-000-2001 "])
def test_a_number_or_cb_and_a_number_calls_the_sender_then_connects_the_number(
    sms_platform, alice, channel, text
) -> None:
    p = sms_platform({CALLER: {"answer_after": 0.5}, FRIEND: SHORT_CALL})

    reply = p.send(channel, CALLER, text)
    request = p.wait_request()
    p.wait_idle()

    assert reply == f"OK, we are calling you back on +{CALLER} now, then +{FRIEND}."
    assert (request.state, request.mode, request.method) == ("completed", "source_first", "sms")
    assert [(leg.leg, leg.number) for leg in p.legs(request.id)] == [("a", CALLER), ("b", FRIEND)]
    assert ENTER_DESTINATION not in heard(p, CALLER)
    assert p.incoming(CALLER)[0].action == "callback_to"
    assert billing.audit(alice).balanced


@pytest.mark.parametrize("channel", CHANNELS)
def test_pin_and_a_number_connects_when_the_account_requires_its_pin(
    sms_platform, alice, channel
) -> None:
    p = sms_platform({CALLER: {"answer_after": 0.5}, FRIEND: SHORT_CALL}, sms={"require_pin": True})

    reply = p.send(channel, CALLER, f"  4711   {FRIEND}")
    request = p.wait_request()

    assert reply == f"OK, we are calling you back on +{CALLER} now, then +{FRIEND}."
    assert (request.state, request.mode, request.account_id) == (
        "completed",
        "source_first",
        alice.id,
    )
    assert AuthFailure.select().count() == 0


def test_cb_asks_for_the_pin_on_the_call_when_the_account_requires_it(sms_platform, alice) -> None:
    p = sms_platform(
        {CALLER: keys("4711#", f"{FRIEND}#"), FRIEND: SHORT_CALL}, sms={"require_pin": True}
    )

    reply = p.send("freeswitch", CALLER, "CB")
    request = p.wait_request()

    assert reply == f"OK, we are calling you back on +{CALLER} now."
    assert (request.state, request.mode, request.account_id) == ("completed", "two_stage", alice.id)
    assert heard(p, CALLER).index(ENTER_PIN) < heard(p, CALLER).index(ENTER_DESTINATION)


def test_the_callback_rings_the_default_number_when_the_account_says_so(
    sms_platform, alice
) -> None:
    accounts.add_caller_id(alice, OTHER_PHONE)
    accounts.update_account(alice, callback_to_default=True)
    p = sms_platform({CALLER: {"answer_after": 0.5}, FRIEND: SHORT_CALL})

    reply = p.send("gateway", OTHER_PHONE, FRIEND)
    request = p.wait_request()

    assert reply == f"OK, we are calling you back on +{CALLER} now, then +{FRIEND}."
    assert [leg.number for leg in p.legs(request.id)] == [CALLER, FRIEND]


@pytest.mark.parametrize("channel", CHANNELS)
def test_the_same_message_delivered_twice_triggers_one_callback(
    sms_platform, alice, channel
) -> None:
    p = sms_platform({CALLER: {"answer_after": 0.5}, FRIEND: SHORT_CALL})

    first = p.send(channel, CALLER, FRIEND, message_id="a1b2c3")
    again = p.send(channel, CALLER, FRIEND, message_id="a1b2c3")
    request = p.wait_request()
    p.wait_idle()

    assert first == f"OK, we are calling you back on +{CALLER} now, then +{FRIEND}."
    # A gateway retrying gets the answer it missed; FreeSWITCH's sender is not answered twice.
    assert again == (first if channel == "gateway" else None)
    assert len(p.requests()) == 1 and request.state == "completed"
    assert [(row.action, row.request_id) for row in p.incoming(CALLER)] == [
        ("callback_to", request.id)
    ]
    assert SmsMessage.select().where(SmsMessage.message_id.contains("a1b2c3")).count() == 1
