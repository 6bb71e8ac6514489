"""No call that nobody pays for: the guards on phone-triggered callbacks, end to end.

Each test is a defect that made the operator pay for a call no account paid for (or cut a call
the balance paid for); each runs on SQLite and PostgreSQL over real sockets to the simulator.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

import gevent
import pytest
from platform_helpers import ANI_ACCESS, PIN_ACCESS

from esl_callback import accounts
from esl_callback.callback import billing, requests
from esl_callback.callback.allowance import MARGIN_SECONDS
from esl_callback.models import Account, AuthFailure, CallbackRequest, Leg, Reservation
from esl_callback.switch.connection import InboundConnection

CALLER = "15550001001"
OTHER_CALLER = "15550001002"
PREMIUM = "19005550001"
FRIEND = "15550002001"
BUSY_FRIEND = "15550002004"
HOLDS_THE_LINE = {"answer_after": 1}  # answers and stays on the line until hung up
SILENT = {"answer_after": 1}  # answers and keys nothing


def keys(*digits: str, hangup_after: float | None = None) -> dict[str, Any]:
    """A phone that answers after 1 s and keys each string 2.5 s apart."""
    spec: dict[str, Any] = {
        "answer_after": 1,
        "keys": [{"after": 1.0 if i == 0 else 2.5, "digits": d} for i, d in enumerate(digits)],
    }
    if hangup_after is not None:
        spec["hangup_after"] = hangup_after
    return spec


def failures(number: str) -> int:
    return AuthFailure.select().where(AuthFailure.key == f"cid:{number}").count()


def dialled(p: Any, number: str) -> bool:
    """Whether the switch ever ran anything on a callback leg to `number`."""
    return bool(p.observer.on_leg_a(number))


@pytest.fixture
def alice() -> Account:
    """Alice: PIN 4711, 10.00 EUR, CALLER is her number."""
    account = accounts.create_account("alice", pin="4711", default_callback_number=CALLER)
    billing.add_payment(account, "10", "voucher 1")
    accounts.add_access_number(PIN_ACCESS, "pin")
    accounts.add_access_number(ANI_ACCESS, "ani")
    return account


# -- call-back legs pass the destination policy ---------------------------------------------


def test_a_spoofed_premium_caller_id_is_not_called_back_before_any_pin(platform, alice) -> None:
    p = platform({PREMIUM: SILENT}, billing={"deny_prefixes": ["1900"]})

    p.trigger(PREMIUM, PIN_ACCESS)
    request = p.wait_request()

    assert (request.state, request.failure_cause) == ("rejected", "callback_number_denied")
    assert "1900" not in (request.failure_detail or "") or "policy" in request.failure_detail
    assert p.legs(request.id) == []
    p.wait_idle()
    assert not dialled(p, PREMIUM)


def test_a_pin_callback_rings_only_numbers_of_the_pin_callback_prefixes(platform, alice) -> None:
    p = platform({OTHER_CALLER: SILENT}, pin_callback_prefixes=["15550001001"])

    p.trigger(OTHER_CALLER, PIN_ACCESS)  # 15550001002: not CALLER's 15550001001
    request = p.wait_request()

    assert (request.state, request.failure_cause) == ("rejected", "callback_number_denied")
    assert "pin_callback_prefixes" in request.failure_detail
    assert p.legs(request.id) == []


# -- the unauthenticated leg is bounded -------------------------------------------------------


def test_at_most_the_unauthenticated_limit_of_pin_callbacks_ring_at_once(platform, alice) -> None:
    callers = [f"155500010{n:02d}" for n in range(10, 15)]
    p = platform({number: SILENT for number in callers}, max_unauthenticated_calls=2)

    for number in callers:  # five spoofed triggers at once
        p.trigger(number, PIN_ACCESS)
    p.wait_request(
        lambda _: len(p.requests()) == 5 and all(r.state != "queued" for r in p.requests())
    )

    refused = [r for r in p.requests() if r.failure_cause == "too_many_unauthenticated_calls"]
    admitted = [r for r in p.requests() if r.state != "rejected"]
    assert (len(admitted), len(refused)) == (2, 3)
    assert all(p.legs(r.id) == [] for r in refused)


def test_a_caller_id_is_called_back_at_most_the_hourly_limit_without_a_pin(platform, alice) -> None:
    p = platform(
        {OTHER_CALLER: {"answer_after": 1, "hangup_after": 1}},
        unauthenticated_calls_per_caller_per_hour=1,
    )

    p.trigger(OTHER_CALLER, PIN_ACCESS)
    first = p.wait_request()
    p.trigger(OTHER_CALLER, PIN_ACCESS)
    second = p.wait_request(lambda r: r.id != first.id and r.state not in requests.LIVE)

    assert first.state == "cancelled" and len(p.legs(first.id)) == 1  # it was called back once
    assert (second.state, second.failure_cause) == ("rejected", "caller_hourly_limit")
    assert p.legs(second.id) == []


def test_the_switch_hangs_up_a_leg_that_keys_no_pin_by_the_deadline(platform, alice) -> None:
    p = platform({OTHER_CALLER: SILENT}, speed=4, pin_deadline_seconds=10, pin_attempts=10)

    p.trigger(OTHER_CALLER, PIN_ACCESS)
    request = p.wait_request()

    assert (request.state, request.failure_cause) == ("failed", "PIN_TIMEOUT")
    (leg_a,) = p.legs(request.id)
    assert leg_a.hangup_cause == "ALLOTTED_TIMEOUT"
    assert 9 <= leg_a.billsec <= 11  # the deadline, counted on the switch's clock
    assert (leg_a.cost, leg_a.operator_cost) == (0, Decimal("0.01") * leg_a.billsec)
    assert failures(OTHER_CALLER) >= 1  # leaving without a PIN counts as a failed attempt


def test_keying_no_pin_counts_as_a_failed_attempt(platform, alice) -> None:
    p = platform({OTHER_CALLER: SILENT}, speed=4, pin_attempts=2, pin_lockout_failures=5)

    p.trigger(OTHER_CALLER, PIN_ACCESS)
    request = p.wait_request()

    assert (request.state, request.failure_cause) == ("failed", "PIN_REJECTED")
    assert failures(OTHER_CALLER) == 2


# -- a refusal after the PIN ends the call -----------------------------------------------------


def test_a_balance_refusal_after_the_pin_ends_the_call_with_its_prompt(platform) -> None:
    broke = accounts.create_account("broke", pin="4711", charge_leg_a=True)
    accounts.add_access_number(PIN_ACCESS, "pin")
    p = platform({OTHER_CALLER: keys("4711#", f"{FRIEND}#"), FRIEND: HOLDS_THE_LINE})

    p.trigger(OTHER_CALLER, PIN_ACCESS)
    request = p.wait_request()
    p.wait_idle()

    assert (request.state, request.failure_cause) == ("failed", "balance_too_low")
    assert request.account_id == broke.id
    assert p.observer.played(OTHER_CALLER)[-1] == "ivr/ivr-call_cannot_be_completed_as_dialed.wav"
    assert [leg.leg for leg in p.legs(request.id)] == ["a"]  # the destination was never dialled
    (leg_a,) = p.legs(request.id)
    assert Account.get_by_id(broke.id).balance == 0  # not below its floor
    assert (leg_a.cost, leg_a.operator_cost) == (0, Decimal("0.01") * leg_a.billsec)
    assert billing.audit(broke).balanced


def test_a_pin_callback_keeps_to_the_accounts_call_limit(platform, alice) -> None:
    accounts.update_account(alice, max_concurrent_calls=1)
    p = platform(
        {
            CALLER: keys(f"{FRIEND}#"),
            FRIEND: HOLDS_THE_LINE,
            OTHER_CALLER: keys("4711#", f"{FRIEND}#"),
        }
    )
    p.trigger(CALLER, ANI_ACCESS)  # alice's one call, bridged and held
    bridged = p.wait_request(lambda r: r.state == "bridged")

    p.trigger(OTHER_CALLER, PIN_ACCESS)
    refused = p.wait_request(lambda r: r.id != bridged.id and r.state not in requests.LIVE)

    assert (refused.state, refused.failure_cause) == ("failed", "too_many_calls")
    assert [leg.leg for leg in p.legs(refused.id)] == ["a"]
    p.service.dialer.cancel(bridged.id, "the test ended")
    p.wait_idle()


# -- a cancel while the call ends ---------------------------------------------------------------


def test_a_cancel_while_the_call_is_ending_ends_it_and_bills_every_leg(platform, alice) -> None:
    p = platform({CALLER: HOLDS_THE_LINE, BUSY_FRIEND: {"busy": True}})
    request = p.service.dialer.start_callback(alice, CALLER, BUSY_FRIEND, "source_first", "cli")
    with gevent.Timeout(20, AssertionError("the busy prompt was never played")):
        while "ivr/ivr-user_busy.wav" not in p.observer.played(CALLER):
            gevent.sleep(0.02)

    # The customer presses Cancel twice while the flow tells the caller and hangs up.
    cancels = [
        gevent.spawn(p.service.dialer.cancel, request.id, "cancelled by alice") for _ in range(2)
    ]
    gevent.joinall(cancels, raise_error=True)
    ended = p.wait_request(lambda r: r.id == request.id and r.state not in requests.LIVE)
    p.wait_idle()

    assert ended.state in ("cancelled", "failed")
    assert all(leg.billed for leg in p.legs(request.id))
    assert (
        not Reservation.select()
        .where(Reservation.request == request.id, Reservation.released_at.is_null())
        .exists()
    )
    assert p.service.dialer.flows == {}
    assert billing.audit(alice).balanced


def test_cancels_of_a_bridged_call_end_it_once_completed(platform, alice) -> None:
    p = platform({CALLER: HOLDS_THE_LINE, FRIEND: HOLDS_THE_LINE})
    request = p.service.dialer.start_callback(alice, CALLER, FRIEND, "source_first", "cli")
    p.wait_request(lambda r: r.state == "bridged")

    cancels = [gevent.spawn(p.service.dialer.cancel, request.id, "cancelled") for _ in range(3)]
    gevent.joinall(cancels, raise_error=True)
    ended = p.wait_request(lambda r: r.state not in requests.LIVE)
    p.wait_idle()

    assert (ended.state, ended.failure_cause) == ("completed", None)
    legs = p.legs(request.id)
    assert [leg.leg for leg in legs] == ["a", "b"] and all(leg.billed for leg in legs)
    assert billing.audit(alice).balanced


# -- a destination that fails at once -------------------------------------------------------------


def test_a_destination_failing_at_once_is_announced_without_waiting_for_the_ringback(
    platform, alice
) -> None:
    """On a real switch a queued `sendmsg` waits for the channel's next media frame: a
    destination that fails at once is reported before the ringback started, and `uuid_break
    all` drops it unplayed. A wide frame makes that happen every time."""
    p = platform(
        {CALLER: keys(f"{BUSY_FRIEND}#", hangup_after=4), BUSY_FRIEND: {"busy": True}},
        switch={"media_frame_ms": 400},
        destination_attempts=1,
    )

    p.trigger(CALLER, ANI_ACCESS)
    request = p.wait_request(timeout=30)

    assert "ivr/ivr-user_busy.wav" in p.observer.played(CALLER)
    assert request.failure_cause in ("NO_DESTINATION", "CALLER_HUNG_UP")
    (leg_a, _) = p.legs(request.id)
    assert leg_a.billsec < 20  # not the 120 s of an application timeout


# -- the allotted time ----------------------------------------------------------------------------


def test_a_call_lasts_what_the_balance_pays_counted_from_the_destinations_answer(
    platform,
) -> None:
    """0.60/min for leg A, 1.20/min for leg B, both by the second, 0.50 to spend: counting
    leg A's IVR time and B's ring time as they were, the call may last about 13 s; the old
    estimate (B ringing its whole 30 s originate timeout) cut it after about 5 s. The
    simulator runs at real speed: the controller counts seconds on its own clock."""
    payer = accounts.create_account("payer", default_callback_number=CALLER)
    billing.add_payment(payer, "0.50", "voucher")
    accounts.add_access_number(ANI_ACCESS, "ani")
    # The low balance is announced first (about 5 s): the caller keys after it.
    caller = {"answer_after": 1, "keys": [{"after": 8, "digits": f"{FRIEND}#"}]}
    p = platform({CALLER: caller, FRIEND: HOLDS_THE_LINE}, originate_timeout_seconds=30)

    p.trigger(CALLER, ANI_ACCESS)
    request = p.wait_request(timeout=60)
    p.wait_idle()

    assert (request.state, request.failure_cause) == ("completed", None), request.failure_detail
    leg_a, leg_b = p.legs(request.id)
    assert leg_a.hangup_cause == "ALLOTTED_TIMEOUT"
    ring_and_ivr = leg_a.billsec - leg_b.billsec
    # What the balance pays once B answered, each leg counted as allowance.py does.
    head_a, head_b = ring_and_ivr + 1 + MARGIN_SECONDS, 1 + MARGIN_SECONDS
    exact = int((Decimal("0.50") - Decimal("0.01") * head_a - Decimal("0.02") * head_b) / 3 * 100)
    assert exact - 1 <= leg_b.billsec <= exact + 1, (leg_a.billsec, leg_b.billsec, exact)
    assert leg_b.billsec >= 10
    balance = Account.get_by_id(payer.id).balance
    assert 0 <= balance < Decimal("0.10")  # spent, not below zero
    assert leg_a.operator_cost == leg_b.operator_cost == 0
    assert billing.audit(payer).balanced


# -- the PIN does not stay on the switch ----------------------------------------------------------


def test_the_keyed_pin_is_unset_on_the_switch_and_never_logged(platform, alice, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    p = platform(
        {OTHER_CALLER: keys("4711#", f"{FRIEND}#"), FRIEND: {"answer_after": 1, "hangup_after": 2}}
    )
    completes: list[Any] = []
    watcher = InboundConnection(
        name="watcher",
        host="127.0.0.1",
        port=p.sim.port,
        password="test-secret",
        events=["CHANNEL_HANGUP_COMPLETE"],
        on_event=lambda event, node: completes.append(event),
    ).start()
    assert watcher.wait_connected(5)
    try:
        p.trigger(OTHER_CALLER, PIN_ACCESS)
        in_ivr = p.wait_request(lambda r: r.account_id == alice.id)
        leg_a = p.db.run(lambda: Leg.get(Leg.request == in_ivr.id, Leg.leg == "a"))
        with gevent.Timeout(10, AssertionError("the PIN stayed in callback_pin")):
            while watcher.api(f"uuid_getvar {leg_a.uuid} callback_pin").strip() != "_undef_":
                gevent.sleep(0.05)
        request = p.wait_request()
        p.wait_idle()
        # The watcher reads the switch's events on its own connection: the controller may be
        # done with the call before the watcher has read leg A's last event.
        with gevent.Timeout(10, AssertionError("the watcher saw no end of leg A")):
            while not any(e.get("Unique-ID") == leg_a.uuid for e in completes):
                gevent.sleep(0.05)
    finally:
        watcher.stop()

    assert request.state == "completed"
    mine = [e for e in completes if e.get("Unique-ID") == leg_a.uuid]
    assert mine and all(e.get("variable_callback_pin") is None for e in mine)
    assert not [r for r in caplog.records if "4711" in r.getMessage()]
    assert CallbackRequest.get_by_id(request.id).account_id == alice.id
