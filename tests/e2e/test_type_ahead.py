"""Callers type ahead: digits keyed while the IVR is still talking are not lost.

FreeSWITCH drops digits keyed during a plain `playback` (outbound-socket-dtmf-during-playback
capture): a caller who keys the destination while the balance or "the line is busy" is said
lost it, and the callback ended NO_DESTINATION. What is said before a question is now part of
the question's prompt. Real-world timings: keys 0.5-2.5 s after a prompt starts. On SQLite
and PostgreSQL, over real sockets.
"""

from __future__ import annotations

from decimal import Decimal

from platform_helpers import ANI_ACCESS, PIN_ACCESS

from esl_callback import accounts, vouchers
from esl_callback.callback import billing
from esl_callback.models import Account

CALLER = "15550001001"
FRIEND = "15550002001"
BUSY_FRIEND = "15550002004"
TALKS = {"answer_after": 1, "hangup_after": 3}


def test_a_caller_keys_the_destination_through_the_balance_announcement(platform) -> None:
    alice = accounts.create_account("alice", pin="4711", default_callback_number=CALLER)
    billing.add_payment(alice, "4998.65", "voucher")
    accounts.add_access_number(PIN_ACCESS, "pin")
    caller = {  # the destination 2.5 s after the PIN: while the balance is said
        "answer_after": 1,
        "keys": [{"after": 1, "digits": "4711#"}, {"after": 2.5, "digits": f"{FRIEND}#"}],
    }
    p = platform({CALLER: caller, FRIEND: TALKS}, announce_balance=True)

    p.trigger(CALLER, PIN_ACCESS)
    request = p.wait_request(timeout=40)

    assert (request.state, request.destination) == ("completed", FRIEND)
    balance_question = p.observer.questions(CALLER)[1]
    assert balance_question[0] == "voicemail/vm-you_have.wav"
    assert balance_question[1:7] == [  # 4998 said as mod_say_en says it
        "digits/4.wav",
        "digits/thousand.wav",
        "digits/9.wav",
        "digits/hundred.wav",
        "digits/90.wav",
        "digits/8.wav",
    ]
    assert balance_question[-1] == "ivr/ivr-enter_destination_telephone_number.wav"


def test_a_caller_keys_another_destination_through_the_busy_announcement(platform) -> None:
    alice = accounts.create_account("alice", default_callback_number=CALLER)
    billing.add_payment(alice, "10", "voucher")
    accounts.add_access_number(ANI_ACCESS, "ani")
    caller = {  # the second destination 2 s after the busy one: while "busy" is said (5 s)
        "answer_after": 1,
        "keys": [{"after": 1, "digits": f"{BUSY_FRIEND}#"}, {"after": 2, "digits": f"{FRIEND}#"}],
    }
    p = platform(
        {CALLER: caller, BUSY_FRIEND: {"busy": True}, FRIEND: TALKS},
        sounds={"ivr/ivr-user_busy.wav": 5.0},
    )

    p.trigger(CALLER, ANI_ACCESS)
    request = p.wait_request(timeout=40)

    assert (request.state, request.destination) == ("completed", FRIEND)
    assert [leg.number for leg in p.legs(request.id)] == [CALLER, BUSY_FRIEND, FRIEND]
    second = p.observer.questions(CALLER)[1]
    assert second == ["ivr/ivr-user_busy.wav", "ivr/ivr-enter_destination_telephone_number.wav"]


def test_a_caller_tops_up_with_a_voucher_from_the_destination_question(platform) -> None:
    """* then # at the destination question asks for a voucher; the new balance is said in
    the next question, through which the caller keys the destination."""
    alice = accounts.create_account("alice", default_callback_number=CALLER)
    billing.add_payment(alice, "0.50", "voucher")
    accounts.add_access_number(ANI_ACCESS, "ani")
    _, (code,) = vouchers.create_batch(1, "20", "EUR")
    caller = {
        "answer_after": 1,
        "keys": [
            {"after": 1, "digits": "*#"},
            {"after": 1.5, "digits": f"{code}#"},
            {"after": 2.5, "digits": f"{FRIEND}#"},  # during "your balance is 20 euro 50"
        ],
    }
    p = platform({CALLER: caller, FRIEND: TALKS})

    p.trigger(CALLER, ANI_ACCESS)
    request = p.wait_request(timeout=40)
    p.wait_idle()

    assert (request.state, request.destination) == ("completed", FRIEND)
    questions = p.observer.questions(CALLER)
    assert questions[1] == ["ivr/ivr-please_enter_pin_followed_by_pound.wav"]  # the code
    assert questions[2][:5] == [
        "voicemail/vm-you_have.wav",
        "digits/20.wav",
        "currency/euro.wav",
        "digits/50.wav",
        "currency/cents.wav",
    ]
    assert billing.audit(alice).balanced
    assert Account.get_by_id(alice.id).balance > Decimal("20")
