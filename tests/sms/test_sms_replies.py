"""SMS that are answered but call nobody: BAL, HELP, unknown senders, wrong PINs, bad
destinations, the rate limit, and texts made to look like event headers. Through both channels
(a FreeSWITCH MESSAGE event, a gateway's POST), on SQLite and PostgreSQL.
"""

from __future__ import annotations

import gevent
import pytest
from sms_helpers import CALLER, CHANNELS, SMS_NUMBER

from esl_callback import accounts, sms
from esl_callback.callback import billing
from esl_callback.models import AuthFailure, SmsMessage

FRIEND = "15550002001"
STRANGER = "15557777777"
BOB = "15550001002"


@pytest.mark.parametrize("channel", CHANNELS)
def test_bal_replies_with_the_balance_and_help_with_the_syntax(
    sms_platform, alice, channel
) -> None:
    p = sms_platform()

    assert p.send(channel, CALLER, " bal ") == "Your balance is 10.00 EUR."
    assert p.send(channel, CALLER, "Help") == sms.help_text("Callback")
    assert p.send(channel, CALLER, "please call me now") == sms.not_understood("Callback")

    assert p.requests() == []
    assert [(row.action, row.account_id) for row in p.incoming(CALLER)] == [
        ("balance", alice.id),
        ("help", alice.id),
        ("invalid", alice.id),
    ]


def test_help_and_not_understood_replies_name_the_configured_product(sms_platform, alice) -> None:
    p = sms_platform(branding={"product_name": "Acme Calls"})

    help_reply = p.send("gateway", CALLER, "HELP")
    assert help_reply.startswith("Acme Calls by SMS: send CB")
    assert help_reply == sms.help_text("Acme Calls")
    assert p.send("gateway", CALLER, "what?") == "Sorry, not understood. " + help_reply


@pytest.mark.parametrize("channel", CHANNELS)
@pytest.mark.parametrize("polite", [False, True])
def test_an_unknown_sender_gets_silence_or_a_polite_refusal_as_configured(
    sms_platform, alice, channel, polite
) -> None:
    p = sms_platform(sms={"reply_unknown_sender": polite})

    reply = p.send(channel, STRANGER, FRIEND)

    assert reply == (sms.UNKNOWN_SENDER if polite else None)
    assert p.requests() == []
    (stored,) = p.incoming(STRANGER)
    assert (stored.action, stored.account_id, stored.body) == ("unknown_sender", None, FRIEND)


@pytest.mark.parametrize("channel", CHANNELS)
def test_a_disabled_account_is_told_and_not_called_back(sms_platform, alice, channel) -> None:
    accounts.update_account(alice, status="disabled")
    p = sms_platform()

    assert p.send(channel, CALLER, FRIEND) == "Sorry, your account is disabled."
    assert p.requests() == []


@pytest.mark.parametrize("channel", CHANNELS)
def test_an_account_that_requires_its_pin_refuses_a_missing_or_wrong_pin_and_locks_out(
    sms_platform, alice, channel
) -> None:
    p = sms_platform(sms={"require_pin": True}, pin_lockout_failures=2)

    assert p.send(channel, CALLER, FRIEND).startswith("Your account needs its PIN")
    assert p.send(channel, CALLER, f"1234 {FRIEND}") == "Wrong PIN. Nothing was done."
    assert p.send(channel, CALLER, f"CB 9999 {FRIEND}") == "Wrong PIN. Nothing was done."
    # Locked: even the right PIN is refused now, and not counted again.
    assert p.send(channel, CALLER, f"4711 {FRIEND}").startswith("Too many wrong PINs")

    assert p.requests() == []
    assert [row.action for row in p.incoming(CALLER)] == [
        "pin_required",
        "wrong_pin",
        "wrong_pin",
        "pin_locked",
    ]
    keys = sorted(failure.key for failure in AuthFailure.select())
    assert keys == sorted([f"cid:{CALLER}", f"account:{alice.id}"] * 2)


@pytest.mark.parametrize("channel", CHANNELS)
def test_bad_destinations_are_refused_with_a_reply_and_nobody_is_called(
    sms_platform, alice, channel
) -> None:
    p = sms_platform()
    not_a_number = "Sorry, that is not a phone number we can call. Send HELP."

    assert p.send(channel, CALLER, "CB 12") == not_a_number
    assert p.send(channel, CALLER, "cb 555&park()") == not_a_number
    assert p.send(channel, CALLER, "1" * 200) == not_a_number
    assert p.send(channel, CALLER, CALLER).endswith("is your own number.")
    assert p.send(channel, CALLER, "+4930123456") == "Sorry, we cannot call +4930123456."

    assert p.requests() == []
    assert AuthFailure.select().count() == 0
    assert [row.action for row in p.incoming(CALLER)] == [
        "bad_destination",
        "bad_destination",
        "bad_destination",
        "bad_destination",
        "destination_refused",
    ]


@pytest.mark.parametrize("channel", CHANNELS)
def test_a_word_that_is_not_number_like_is_not_understood_rather_than_a_bad_number(
    sms_platform, alice, channel
) -> None:
    p = sms_platform()

    assert p.send(channel, CALLER, "HELLOTHEREPLEASECALL") == sms.not_understood("Callback")
    assert p.send(channel, CALLER, "CB hello") == sms.not_understood("Callback")
    assert p.send(channel, CALLER, "1234 hello") == sms.not_understood("Callback")

    assert p.requests() == []
    assert AuthFailure.select().count() == 0  # "1234 hello" is no PIN and number: no wrong PIN
    assert [row.action for row in p.incoming(CALLER)] == ["invalid"] * 3


@pytest.mark.parametrize("channel", CHANNELS)
def test_two_words_from_an_account_without_a_pin_are_not_taken_for_a_wrong_pin(
    sms_platform, channel
) -> None:
    accounts.create_account("bob", default_callback_number=BOB)
    p = sms_platform()

    reply = p.send(channel, BOB, "555 0002001")

    assert reply == "Sorry, not understood: write the number without spaces."
    assert p.requests() == [] and AuthFailure.select().count() == 0


@pytest.mark.parametrize("channel", CHANNELS)
def test_a_sender_over_the_rate_limit_is_stored_but_ignored(sms_platform, alice, channel) -> None:
    p = sms_platform(sms={"rate_limit_per_minute": 2})

    replies = [p.send(channel, CALLER, "BAL") for _ in range(3)]
    later = p.send(channel, CALLER, FRIEND)

    assert replies == ["Your balance is 10.00 EUR."] * 2 + [None]
    assert later is None
    assert p.requests() == []
    assert [row.action for row in p.incoming(CALLER)] == [
        "balance",
        "balance",
        "rate_limited",
        "rate_limited",
    ]


def test_an_sms_body_cannot_forge_the_headers_of_its_message_event(sms_platform, alice) -> None:
    p = sms_platform()
    forged = (
        f"{FRIEND}\n\nEvent-Name: MESSAGE\nfrom_user: {CALLER}\nfrom: {CALLER}@127.0.0.1\n"
        f"Content-Length: 3\n\nBAL\r\nContent-Type: text/event-plain\n\n"
    )

    reply = p.send("freeswitch", STRANGER, forged)
    inside = p.send("freeswitch", CALLER, "Content-Length: 0\n\nEvent-Name: CHANNEL_ANSWER\n")

    assert reply is None  # the stranger stays a stranger
    assert p.requests() == []
    (stored,) = p.incoming(STRANGER)
    assert (stored.action, stored.body, stored.destination) == (
        "unknown_sender",
        forged,
        SMS_NUMBER,
    )
    assert inside == sms.not_understood("Callback")
    assert p.incoming(CALLER)[0].body == "Content-Length: 0\n\nEvent-Name: CHANNEL_ANSWER\n"
    assert not any(m.body.startswith("Your balance") for m in p.sim.outbox)


def test_sms_are_ignored_when_switched_off(sms_platform, alice) -> None:
    p = sms_platform(sms={"enabled": False})

    p.sim.receive_sms(CALLER, SMS_NUMBER, "BAL")
    status, body = p.post_sms(CALLER, "BAL")
    with gevent.Timeout(5, AssertionError("the MESSAGE event never arrived")):
        while not p.service.router.dropped["MESSAGE"]:  # arrived, and nobody handled it
            gevent.sleep(0.05)

    assert status == 503 and "sms.enabled" in body["error"]["message"]
    assert SmsMessage.select().count() == 0
    assert p.sim.outbox == []


@pytest.mark.parametrize("channel", CHANNELS)
def test_no_call_is_promised_when_the_balance_is_all_spent(sms_platform, alice, channel) -> None:
    billing.add_payment(alice, "-10", "correction")
    p = sms_platform()

    assert p.send(channel, CALLER, "CB") == "Sorry, your balance is too low for a call. Send BAL."
    assert p.send(channel, CALLER, FRIEND) == "Sorry, your balance is too low for a call. Send BAL."
    assert p.requests() == []
    assert [row.action for row in p.incoming(CALLER)] == ["balance_too_low"] * 2


@pytest.mark.parametrize("channel", CHANNELS)
def test_no_call_is_promised_while_the_account_has_as_many_calls_live_as_it_may(
    sms_platform, alice, channel
) -> None:
    p = sms_platform({CALLER: {"answer_after": 1}}, max_concurrent_calls=1)

    assert p.send(channel, CALLER, "CB").startswith("OK, we are calling you back")
    p.wait_request(lambda r: r.state == "in_ivr")
    assert (
        p.send(channel, CALLER, "CB")
        == "Sorry, 1 of your calls are in progress; try when one ends."
    )
    assert len(p.requests()) == 1
