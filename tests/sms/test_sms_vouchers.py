"""Topping up by SMS: `TOPUP CODE` redeems a voucher and replies with the new balance; wrong codes
are refused and lock out. Through both channels (a FreeSWITCH MESSAGE event, a gateway's POST),
on SQLite and PostgreSQL."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sms_helpers import CALLER, CHANNELS

from esl_callback import sms, vouchers
from esl_callback.callback import billing
from esl_callback.models import Account, Payment


@pytest.mark.parametrize("channel", CHANNELS)
def test_topup_with_a_voucher_adds_its_amount_and_replies_with_the_balance(
    sms_platform, alice, channel
) -> None:
    p = sms_platform()
    _, (code,) = p.db.run(vouchers.create_batch, 1, "15", "EUR")

    reply = p.send(channel, CALLER, f"topup {vouchers.readable(code)}")

    assert reply == "15.00 EUR added. Your balance is 25.00 EUR."
    assert p.db.run(lambda: Account.get_by_id(alice.id).balance) == Decimal("25")
    assert p.db.run(lambda: Payment.select().count()) == 2  # the voucher is a payment
    assert p.db.run(billing.audit, alice.id).balanced
    assert p.send(channel, CALLER, f"TOP UP {code}") == (
        "Sorry: That voucher has been used already."
    )
    assert [row.action for row in p.incoming(CALLER)] == ["topup", "topup_refused"]
    assert p.requests() == []  # nobody was called


@pytest.mark.parametrize("channel", CHANNELS)
def test_wrong_voucher_codes_by_sms_lock_the_sender_out(sms_platform, alice, channel) -> None:
    p = sms_platform(sms={"rate_limit_per_minute": 100})
    _, (code,) = p.db.run(vouchers.create_batch, 1, "15", "EUR")

    wrong = ["1" * 14, "2" * 14, "3" * 14, "1234", "9"]  # five wrong codes lock out
    refused = [p.send(channel, CALLER, f"TOPUP {text}") for text in wrong]
    locked = p.send(channel, CALLER, f"TOPUP {code}")

    assert refused[0] == "Sorry: That voucher code is not valid. Check the digits."
    assert refused[3] == f"Sorry: A voucher code has {vouchers.CODE_DIGITS} digits."
    assert locked == "Sorry: Too many wrong voucher codes: try again later."
    assert p.db.run(lambda: Account.get_by_id(alice.id).balance) == Decimal("10")


def test_topup_without_a_code_is_not_understood() -> None:
    assert sms.parse("TOPUP") == sms.Command("invalid")
    assert sms.parse("top up 1234 5678 9012 34") == sms.Command("topup", code="1234 5678 9012 34")
