"""The balance said on the callback, end to end on the simulator: the account's currency, not
mod_say's dollars, and a balance below zero (after a correction) said rather than crashing the
flow. On SQLite and PostgreSQL, over real sockets.
"""

from __future__ import annotations

from platform_helpers import ANI_ACCESS

from esl_callback import accounts
from esl_callback.callback import billing

CALLER = "15550001001"


def test_a_balance_corrected_below_zero_is_announced_as_minus_euros(platform) -> None:
    alice = accounts.create_account("alice", default_callback_number=CALLER)
    billing.add_payment(alice, "10", "voucher 1")
    accounts.add_access_number(ANI_ACCESS, "ani")
    phone = {"answer_after": 3, "hangup_after": 14}  # hangs up while asked for a destination
    p = platform({CALLER: phone})

    p.trigger(CALLER, ANI_ACCESS)
    p.wait_request(lambda r: r.state == "calling_source")
    billing.add_payment(alice, "-12.50", "correction", allow_negative=True)
    request = p.wait_request(timeout=40)
    p.wait_idle()

    # The balance is said in the question for the destination, so that the caller can key
    # through it; the numbers as the switch's mod_say says them (say_string).
    (question,) = p.observer.questions(CALLER)
    assert question == [
        "voicemail/vm-you_have.wav",
        "currency/negative.wav",
        "digits/2.wav",
        "currency/euro.wav",
        "digits/50.wav",
        "currency/cents.wav",
        "ivr/ivr-enter_destination_telephone_number.wav",
    ]
    assert (request.state, request.failure_cause) == ("cancelled", "CALLER_HUNG_UP")
    assert billing.audit(alice).balanced
