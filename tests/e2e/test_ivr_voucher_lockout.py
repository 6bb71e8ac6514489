"""Wrong voucher codes keyed in the IVR count towards the voucher lockout: once locked, even the
right code is refused, credits nothing, and the caller can still call; on SQLite and PostgreSQL,
over real sockets to the simulator."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

import pytest
from platform_helpers import ANI_ACCESS

from esl_callback import accounts, vouchers
from esl_callback.callback import billing
from esl_callback.config import Settings
from esl_callback.models import Account, Payment, Voucher

CALLER = "15550001001"
FRIEND = "15550002001"
TALKS = {"answer_after": 1, "hangup_after": 3}
LOCKOUT = {"voucher_lockout_failures": 2}
REFUSED = Settings.default().ivr.voucher_refused


def test_wrong_codes_in_the_ivr_lock_the_caller_out_even_for_the_right_code(platform) -> None:
    alice = accounts.create_account("alice", default_callback_number=CALLER)
    billing.add_payment(alice, "5", "opening")
    accounts.add_access_number(ANI_ACCESS, "ani")
    _, (code,) = vouchers.create_batch(1, "20", "EUR")
    keys = ["*#", "1" * 14 + "#", "*#", "2" * 14 + "#", "*#", f"{code}#", f"{FRIEND}#"]
    caller = {
        "answer_after": 1,
        "keys": [
            {"after": 1.0 if n == 0 else 1.5, "digits": digits} for n, digits in enumerate(keys)
        ],
    }
    p = platform({CALLER: caller, FRIEND: TALKS}, billing=LOCKOUT)

    p.trigger(CALLER, ANI_ACCESS)
    request = p.wait_request(timeout=60)
    p.wait_idle()

    assert (request.state, request.destination) == ("completed", FRIEND)
    questions = p.observer.questions(CALLER)
    refusals = [q for q in questions if q and q[0] == REFUSED]
    assert len(refusals) == 3  # two wrong codes, then the right one while locked out
    assert Voucher.get().redeemed_at is None
    assert not Payment.select().where(Payment.reference.startswith("voucher")).exists()
    assert Account.get_by_id(alice.id).balance < Decimal("5")  # only the call was paid
    assert billing.audit(alice).balanced
    settings = dataclasses.replace(Settings.default().billing, **LOCKOUT)
    with pytest.raises(vouchers.Refused) as refused:  # locked wherever the account asks from
        vouchers.redeem(alice.id, code, (), settings)
    assert refused.value.reason == "locked"
