"""Only SMS addressed to the service's own numbers (`sms.numbers`) are acted on.

FreeSWITCH fires MESSAGE also for SIP messages our chatplan does not take: a subscriber texting
a friend. Those, and a gateway's post for another number, are ignored: no callback, no reply,
nothing stored, a log line saying why. Through both channels, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import logging

import pytest
from sms_helpers import CALLER, SMS_NUMBER, TOKEN, post

from esl_callback import sms

FRIEND = "15550002001"
OUR_NUMBER_WITH_PLUS = f"+{SMS_NUMBER}"
OUR_NUMBER_NATIONAL = f"0{SMS_NUMBER[1:]}"  # country code 1, national prefix 0


def text_via_freeswitch(p, recipient: str, text: str) -> list[str]:
    """A SIP MESSAGE from alice's phone to `recipient`; the replies she got."""
    outbox_before = len(p.sim.outbox)
    p.sim.receive_sms(CALLER, recipient, text)
    p.sync()
    return [m.body for m in p.sim.outbox[outbox_before:] if m.recipient.split("@")[0] == CALLER]


def text_via_gateway(p, recipient: str | None, text: str) -> dict:
    """A gateway's post of an SMS from alice to `recipient` (None: no `to`); its answer."""
    fields = {"from": CALLER, "text": text}
    if recipient is not None:
        fields["to"] = recipient
    status, body = post(
        f"{p.base_url}/sms/inbound", json_body=fields, headers={"X-Gateway-Token": TOKEN}
    )
    assert status == 200, body
    return body


def test_a_customer_texting_a_friend_through_freeswitch_gets_no_callback_and_no_reply(
    sms_platform, alice, caplog
) -> None:
    p = sms_platform()
    caplog.set_level(logging.INFO, logger="esl_callback.sms")

    replies = text_via_freeswitch(p, FRIEND, "call me on 015550001002")

    assert replies == []
    assert p.requests() == []
    assert p.incoming(CALLER) == []
    assert f"to '{FRIEND}' via freeswitch ignored: {FRIEND} is not one of sms.numbers" in (
        caplog.text
    )


@pytest.mark.parametrize("recipient", [FRIEND, None, "not-a-number"])
def test_a_gateway_post_for_another_number_is_ignored(sms_platform, alice, recipient) -> None:
    p = sms_platform()

    answer = text_via_gateway(p, recipient, "BAL")

    assert (answer["action"], answer["reply"], answer["request_id"]) == (
        "not_our_number",
        None,
        None,
    )
    assert p.incoming(CALLER) == []


@pytest.mark.parametrize("recipient", [SMS_NUMBER, OUR_NUMBER_WITH_PLUS, OUR_NUMBER_NATIONAL])
def test_our_number_however_written_is_answered_and_another_is_not(
    sms_platform, alice, recipient
) -> None:
    p = sms_platform()

    assert text_via_freeswitch(p, FRIEND, "BAL") == []
    assert text_via_freeswitch(p, recipient, "BAL") == ["Your balance is 10.00 EUR."]
    assert text_via_gateway(p, FRIEND, "BAL")["reply"] is None
    assert text_via_gateway(p, recipient, "BAL")["reply"] == "Your balance is 10.00 EUR."
    assert [row.action for row in p.incoming(CALLER)] == ["balance", "balance"]


def test_a_second_service_number_is_answered_too(sms_platform, alice) -> None:
    p = sms_platform(sms={"numbers": [SMS_NUMBER, "+15550300400"]})

    assert text_via_freeswitch(p, "15550300400", "HELP") == [sms.help_text("Callback")]
    assert text_via_freeswitch(p, "15550300401", "HELP") == []
