"""Phone-triggered callbacks end to end: a phone calls an access number or DID on the simulator,
the controller rejects it unanswered, calls back, runs the IVR and bridges the destination."""

from __future__ import annotations

from decimal import Decimal

from platform_helpers import PIN_ACCESS

from esl_callback import accounts
from esl_callback.callback import billing
from esl_callback.models import Account

CALLER = "15550001001"
FRIEND = "15550002001"

# The caller answers the callback after 1 s, keys the PIN, then the destination.
CALLER_KEYS_PIN_AND_FRIEND = {
    "answer_after": 1,
    "keys": [{"after": 1.0, "digits": "4711#"}, {"after": 3.0, "digits": f"{FRIEND}#"}],
}
# The friend answers after 1 s and hangs up 4 s later.
FRIEND_TALKS_4S = {"answer_after": 1, "hangup_after": 4}


def balance(name: str) -> Decimal:
    return Account.get(Account.name == name).balance


def test_pin_callback_rings_back_the_caller_and_bridges_the_destination(platform) -> None:
    alice = accounts.create_account("alice", pin="4711")
    billing.add_payment(alice, "10", "voucher 1")
    accounts.add_access_number(PIN_ACCESS, "pin")
    p = platform({CALLER: CALLER_KEYS_PIN_AND_FRIEND, FRIEND: FRIEND_TALKS_4S})

    p.trigger(CALLER, PIN_ACCESS)
    request = p.wait_request()
    p.wait_idle()

    assert (request.state, request.failure_cause) == ("completed", None)
    assert (request.method, request.source, request.destination) == ("pin", CALLER, FRIEND)
    assert request.account_id == alice.id
    legs = p.legs(request.id)
    assert (legs["a"].number, legs["b"].number) == (CALLER, FRIEND)
    assert all(leg.billed for leg in legs.values())
    assert legs["b"].billsec >= 3
    assert legs["a"].billsec > legs["b"].billsec
    expected_a = (Decimal("0.60") * legs["a"].billsec / 60).quantize(Decimal("0.0001"))
    expected_b = (Decimal("1.20") * legs["b"].billsec / 60).quantize(Decimal("0.0001"))
    assert (legs["a"].cost, legs["b"].cost) == (expected_a, expected_b)
    assert balance("alice") == Decimal("10") - expected_a - expected_b
    assert billing.audit(alice).balanced
