"""The agent between a (fake) GSM modem and the real platform, end to end: a call to the modem
becomes a callback that connects, an SMS a callback or a reply sent back through the modem."""

from __future__ import annotations

from gsm_helpers import CALLER, FRIEND, MODEM_NUMBER, wait_until

TALKS = {"answer_after": 0.3, "hangup_after": 1}


def test_a_call_to_the_modem_is_rejected_reported_and_called_back_and_bridged(rig, alice) -> None:
    r = rig(
        {
            CALLER: {"answer_after": 0.3, "keys": [{"after": 0.8, "digits": f"{FRIEND}#"}]},
            FRIEND: TALKS,
        }
    )

    r.modem.ring(f"+{CALLER}")
    request = r.platform.wait_request()
    r.platform.wait_idle()

    assert r.modem.hangups == 1  # rejected unanswered
    assert (request.trigger, request.method, request.state) == ("gateway", "ani", "completed")
    assert (request.caller_id, request.called_number) == (f"+{CALLER}", MODEM_NUMBER)
    assert [leg.number for leg in r.platform.legs(request.id)] == [CALLER, FRIEND]
    assert r.platform.observer.on_leg_a(CALLER).count("CHANNEL_ANSWER") == 1
    (item,) = r.items()
    assert (item["kind"], item["state"], item["sender"]) == ("call", "delivered", f"+{CALLER}")
    assert request.trigger_uuid == f"phone1:{item['key']}"


def test_an_sms_cb_number_starts_a_callback_and_its_reply_reaches_the_sender(rig, alice) -> None:
    r = rig({CALLER: TALKS, FRIEND: TALKS})

    (index,) = r.modem.receive_sms(f"+{CALLER}", f"CB {FRIEND}")
    request = r.platform.wait_request()
    ((to, reply),) = r.wait_sent(1)
    wait_until(lambda: index not in r.modem.storage, "the SMS deleted from the SIM")

    assert (request.trigger, request.state) == ("sms", "completed")
    assert [leg.number for leg in r.platform.legs(request.id)] == [CALLER, FRIEND]
    (stored,) = r.sms_in(CALLER)
    assert (to, reply) == (f"+{CALLER}", stored.reply)
    assert reply.startswith("OK, we are calling you back")


def test_bal_is_answered_with_the_balance_by_sms(rig, alice) -> None:
    r = rig()

    r.modem.receive_sms(f"+{CALLER}", "BAL")

    assert r.wait_sent(1) == [(f"+{CALLER}", "Your balance is 10.00 EUR.")]
    assert r.platform.requests() == []


def test_a_long_ucs2_sms_in_parts_is_joined_before_it_is_posted(rig, alice) -> None:
    r = rig()
    text = "BAL " + "ä€😀 " * 30  # UCS2, three parts, a 16-bit concatenation reference

    indexes = r.modem.receive_sms(f"+{CALLER}", text, wide_reference=True)
    r.wait_sent(1)
    wait_until(lambda: not r.modem.storage, "every part deleted from the SIM")

    assert len(indexes) == 3
    (stored,) = r.sms_in(CALLER)
    assert stored.body == text
    (item,) = r.items()
    assert (item["kind"], item["text"], item["state"]) == ("sms", text, "delivered")


def test_a_withheld_caller_is_rejected_and_reported_withheld(rig, alice) -> None:
    r = rig()

    r.modem.ring(None, withheld=True)
    request = r.platform.wait_request()

    assert r.modem.hangups == 1
    assert (request.state, request.failure_cause) == ("rejected", "withheld_caller_id")
    assert r.platform.legs(request.id) == []


def test_callers_outside_the_allow_list_are_rejected_and_not_reported(rig, alice) -> None:
    r = rig(callers={"allowed_prefixes": ["4930"]})

    r.modem.ring(f"+{CALLER}")
    (index,) = r.modem.receive_sms(f"+{CALLER}", "BAL")
    wait_until(lambda: index not in r.modem.storage, "the SMS deleted from the SIM")
    wait_until(lambda: r.modem.hangups == 1, "the call rejected")

    counts = r.snapshot()["counts"]
    assert (counts["calls_not_allowed"], counts["sms_not_allowed"]) == (1, 1)
    assert r.platform.requests() == [] and r.sms_in(CALLER) == []
    assert [item["state"] for item in r.items()] == ["ignored"]
    assert r.modem.sent == []
