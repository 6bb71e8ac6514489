"""Phone-triggered callbacks end to end: a phone calls an access number or DID on the simulator,
the controller rejects it unanswered, calls back, runs the IVR and bridges the destination.

Each test runs on SQLite and on PostgreSQL (the `db` fixture), over real sockets.
"""

from __future__ import annotations

from decimal import Decimal

import gevent
import pytest
from outage import sqlite_only, write_locked
from platform_helpers import ANI_ACCESS, PIN_ACCESS

from esl_callback import accounts, metrics
from esl_callback.callback import billing, requests
from esl_callback.callback.rating import RateRow, RateSnapshot
from esl_callback.db import utcnow
from esl_callback.models import Account, AuthFailure, CallbackRequest, Leg

CALLER = "15550001001"
OTHER_PHONE = "15550001002"
FRIEND = "15550002001"
BUSY_FRIEND = "15550002004"
SILENT_FRIEND = "15550002003"
DID = "18885550001"

ANSWERS_AND_HANGS_UP_AFTER_4S = {"answer_after": 1, "hangup_after": 4}


def keys(*digits: str, hangup_after: float | None = None) -> dict:
    """A phone that answers after 1 s and keys each string 2 s apart."""
    spec: dict = {
        "answer_after": 1,
        "keys": [{"after": 1.0 if i == 0 else 2.5, "digits": d} for i, d in enumerate(digits)],
    }
    if hangup_after is not None:
        spec["hangup_after"] = hangup_after
    return spec


def balance(name: str) -> Decimal:
    return Account.get(Account.name == name).balance


def per_second(price: str, billsec: int) -> Decimal:
    return (Decimal(price) * billsec / 60).quantize(Decimal("0.0001"))


@pytest.fixture
def alice() -> Account:
    """Alice: PIN 4711, 10.00 EUR, her mobile is a registered caller ID."""
    account = accounts.create_account("alice", pin="4711", default_callback_number=CALLER)
    billing.add_payment(account, "10", "voucher 1")
    accounts.add_access_number(PIN_ACCESS, "pin")
    accounts.add_access_number(ANI_ACCESS, "ani")
    return account


# -- happy paths --------------------------------------------------------------------------


def test_pin_callback_rings_back_the_caller_and_bridges_the_destination(platform, alice) -> None:
    p = platform({CALLER: keys("4711#", f"{FRIEND}#"), FRIEND: ANSWERS_AND_HANGS_UP_AFTER_4S})

    p.trigger(CALLER, PIN_ACCESS)
    request = p.wait_request()
    p.wait_idle()

    assert (request.state, request.failure_cause) == ("completed", None)
    assert (request.method, request.source, request.destination) == ("pin", CALLER, FRIEND)
    assert request.account_id == alice.id
    leg_a, leg_b = p.legs(request.id)
    assert (leg_a.leg, leg_a.number, leg_b.leg, leg_b.number) == ("a", CALLER, "b", FRIEND)
    assert leg_a.billed and leg_b.billed
    assert leg_b.billsec >= 3
    assert leg_a.billsec > leg_b.billsec
    assert (leg_a.cost, leg_b.cost) == (
        per_second("0.60", leg_a.billsec),
        per_second("1.20", leg_b.billsec),
    )
    assert balance("alice") == Decimal("10") - leg_a.cost - leg_b.cost
    assert billing.audit(alice).balanced
    # The destination phone hung up; its hangup ended the bridged caller's leg too.
    assert (leg_a.hangup_by, leg_b.hangup_by) == ("destination", "destination")
    # The switch sent the controller only its own legs' events, not the trigger call's: all it
    # dropped were job results that came after their call had ended.
    assert set(p.service.router.dropped) <= {"BACKGROUND_JOB"}


def test_the_ivr_starts_when_the_caller_answers_not_on_early_media(platform, alice) -> None:
    """A mobile network plays early media (an announcement, ringback) before the phone
    answers: the PIN prompt must wait for the answer, or it plays to nobody."""
    caller = {"early_media": "tone_stream://%(3000,0,440)", **keys("4711#", f"{FRIEND}#")}
    p = platform({CALLER: caller, FRIEND: ANSWERS_AND_HANGS_UP_AFTER_4S})

    p.trigger(CALLER, PIN_ACCESS)
    request = p.wait_request()

    assert (request.state, request.failure_cause) == ("completed", None)
    on_leg_a = p.observer.on_leg_a(CALLER)
    assert on_leg_a.index("CHANNEL_ANSWER") < on_leg_a.index("play_and_get_digits")


def test_a_caller_in_the_ivr_longer_than_the_park_timeout_is_not_cut_off(platform, alice) -> None:
    """FreeSWITCH parks a leg it hands to an async socket session, so a `park_timeout` on
    leg A would hang the caller up in the middle of the IVR; it bounds parked legs only."""
    p = platform(
        {CALLER: keys("4711#", f"{FRIEND}#"), FRIEND: ANSWERS_AND_HANGS_UP_AFTER_4S},
        park_timeout_seconds=2,  # the PIN and the destination take 3.5 s
    )

    p.trigger(CALLER, PIN_ACCESS)
    request = p.wait_request()

    assert (request.state, request.failure_cause) == ("completed", None)
    assert p.legs(request.id)[1].billsec >= 3  # bridged, and the call went on


def test_a_rate_change_during_the_ivr_leaves_leg_a_at_the_rate_it_was_opened_with(
    platform, alice
) -> None:
    p = platform({CALLER: keys("4711#", f"{FRIEND}#"), FRIEND: ANSWERS_AND_HANGS_UP_AFTER_4S})

    p.trigger(CALLER, PIN_ACCESS)
    in_ivr = p.wait_request(lambda r: r.state == "in_ivr" and r.account_id == alice.id)
    with gevent.Timeout(5, AssertionError("leg A was not rated after the PIN")):
        while not any(leg.leg == "a" and leg.price_per_minute for leg in p.legs(in_ivr.id)):
            gevent.sleep(0.05)
    # While the caller keys the destination, the caller's prefix gets a rate whose first
    # minute alice's 10.00 cannot pay. Leg A keeps the rate it was opened with.
    expensive = RateRow(RateSnapshot("15550001", Decimal("600"), Decimal(0), 1, 1), "Dear", 0)
    p.db.run(billing.import_rates, [expensive])
    request = p.wait_request()
    p.wait_idle()

    assert (request.state, request.failure_cause) == ("completed", None)
    leg_a = p.legs(request.id)[0]
    assert leg_a.cost == per_second("0.60", leg_a.billsec)
    assert billing.audit(alice).balanced


def test_caller_id_callback_calls_the_caller_back_without_asking_a_pin(platform, alice) -> None:
    p = platform({CALLER: keys(f"{FRIEND}#"), FRIEND: ANSWERS_AND_HANGS_UP_AFTER_4S})

    p.trigger(CALLER, ANI_ACCESS)
    request = p.wait_request()

    assert (request.state, request.method, request.account_id) == ("completed", "ani", alice.id)
    assert [leg.number for leg in p.legs(request.id)] == [CALLER, FRIEND]
    assert "ivr/ivr-please_enter_pin_followed_by_pound.wav" not in p.observer.played(CALLER)


def test_a_caller_flooding_the_access_number_gets_no_more_live_callbacks_than_the_limit(
    platform, alice
) -> None:
    billing.add_payment(alice, "1000", "voucher 2")  # money for four holds: only the limit refuses
    p = platform({CALLER: {"answer_after": 1}}, max_concurrent_calls=2)
    for _ in range(4):
        p.trigger(CALLER, ANI_ACCESS)
    p.wait_request(
        lambda _: len(p.requests()) == 4 and all(r.state != "queued" for r in p.requests())
    )
    refused = [r for r in p.requests() if r.failure_cause == "too_many_calls"]
    live = [r for r in p.requests() if r.state in requests.LIVE]
    assert (len(live), len(refused)) == (2, 2)
    assert all(p.legs(r.id) == [] for r in refused)  # refused before the caller was rung


def test_caller_id_callback_rings_the_default_number_when_the_account_says_so(
    platform, alice
) -> None:
    accounts.add_caller_id(alice, OTHER_PHONE)
    accounts.update_account(alice, callback_to_default=True)
    p = platform({CALLER: keys(f"{FRIEND}#"), FRIEND: ANSWERS_AND_HANGS_UP_AFTER_4S})

    p.trigger(OTHER_PHONE, ANI_ACCESS)
    request = p.wait_request()

    assert request.state == "completed"
    assert [leg.number for leg in p.legs(request.id)] == [CALLER, FRIEND]


def test_did_callback_rings_the_accounts_predefined_number(platform, alice) -> None:
    accounts.add_did(DID, alice)
    p = platform({CALLER: keys(f"{FRIEND}#"), FRIEND: ANSWERS_AND_HANGS_UP_AFTER_4S})

    p.trigger("15559999999", DID)  # whoever calls the DID, the account's number is called
    request = p.wait_request()

    assert (request.state, request.method) == ("completed", "did")
    assert [leg.number for leg in p.legs(request.id)] == [CALLER, FRIEND]
    assert billing.audit(alice).balanced


# -- refused triggers: nobody is called back ----------------------------------------------


@pytest.mark.parametrize(
    ("caller", "called", "cause", "method"),
    [
        (CALLER, "18005559999", "unknown_number", "unknown"),
        ("15557777777", ANI_ACCESS, "unknown_caller_id", "ani"),
        ("anonymous", ANI_ACCESS, "withheld_caller_id", "ani"),
        ("123&park()", ANI_ACCESS, "invalid_caller_id", "ani"),
        ("1|x", PIN_ACCESS, "invalid_caller_id", "pin"),
    ],
)
def test_refused_triggers_are_recorded_with_their_access_path_and_nobody_is_called(
    platform, alice, caller, called, cause, method
) -> None:
    p = platform({})

    p.trigger(caller, called)
    request = p.wait_request()
    p.wait_idle()

    assert (request.state, request.failure_cause, request.method) == ("rejected", cause, method)
    assert p.legs(request.id) == []
    assert not any("originate" in name for name, _, _ in p.observer.executed)


def test_a_disabled_account_is_not_called_back(platform, alice) -> None:
    accounts.add_did(DID, alice)
    accounts.update_account(alice, status="disabled")
    p = platform({})

    p.trigger(CALLER, DID)
    request = p.wait_request()

    assert (request.state, request.failure_cause) == ("rejected", "account_disabled")
    assert (request.method, request.account_id) == ("did", alice.id)
    assert p.legs(request.id) == []


# -- the IVR ------------------------------------------------------------------------------


def test_three_wrong_pins_end_the_call_and_count_towards_the_lockout(platform, alice) -> None:
    p = platform({CALLER: keys("1111#", "2222#", "3333#")}, pin_lockout_failures=3)

    p.trigger(CALLER, PIN_ACCESS)
    request = p.wait_request()

    assert (request.state, request.failure_cause) == ("failed", "PIN_REJECTED")
    assert request.account_id is None
    assert AuthFailure.select().where(AuthFailure.key == f"cid:{CALLER}").count() == 3
    played = p.observer.played(CALLER)
    assert played.count("ivr/ivr-pin_or_extension_is-invalid.wav") == 3
    assert played[-1] == "voicemail/vm-abort.wav"
    (leg_a,) = p.legs(request.id)  # no destination was ever called
    assert (leg_a.leg, leg_a.billed, leg_a.cost) == ("a", True, 0)  # nobody to charge...
    assert leg_a.operator_cost == per_second("0.60", leg_a.billsec) > 0  # ...the operator pays

    # Locked out: the caller ID is not even called back.
    p.trigger(CALLER, PIN_ACCESS)
    again = p.wait_request(lambda r: r.id != request.id and r.state == "rejected")
    assert again.failure_cause == "caller_locked_out"
    assert p.legs(again.id) == []
    assert AuthFailure.select().where(AuthFailure.key == f"cid:{CALLER}").count() == 3


def test_an_invalid_destination_is_refused_with_a_prompt_and_another_try(platform, alice) -> None:
    p = platform({CALLER: keys("12#", f"{FRIEND}#"), FRIEND: ANSWERS_AND_HANGS_UP_AFTER_4S})

    p.trigger(CALLER, ANI_ACCESS)
    request = p.wait_request()

    assert request.state == "completed"
    assert "ivr/ivr-invalid_number_format.wav" in p.observer.played(CALLER)
    assert [leg.number for leg in p.legs(request.id)] == [CALLER, FRIEND]


def test_a_busy_destination_is_announced_and_the_caller_dials_another(platform, alice) -> None:
    p = platform(
        {
            CALLER: keys(f"{BUSY_FRIEND}#", f"{FRIEND}#"),
            BUSY_FRIEND: {"busy": True},
            FRIEND: ANSWERS_AND_HANGS_UP_AFTER_4S,
        }
    )

    p.trigger(CALLER, ANI_ACCESS)
    request = p.wait_request()

    assert request.state == "completed"
    legs = p.legs(request.id)
    assert [(leg.leg, leg.number) for leg in legs] == [
        ("a", CALLER),
        ("b", BUSY_FRIEND),
        ("b", FRIEND),
    ]
    assert (legs[1].hangup_cause, legs[1].cost) == ("USER_BUSY", Decimal("0"))
    assert "ivr/ivr-user_busy.wav" in p.observer.played(CALLER)


def test_a_destination_that_does_not_answer_is_given_up_and_announced(platform, alice) -> None:
    p = platform(
        {CALLER: keys(f"{SILENT_FRIEND}#", hangup_after=12), SILENT_FRIEND: {"no_answer": True}},
        originate_timeout_seconds=3,
        destination_attempts=1,
    )

    p.trigger(CALLER, ANI_ACCESS)
    request = p.wait_request()
    p.wait_idle()

    assert (request.state, request.failure_cause) == ("failed", "NO_DESTINATION")
    leg_b = p.legs(request.id)[1]
    assert leg_b.billed and leg_b.cost == 0 and leg_b.answered_at is None
    assert "ivr/ivr-no_user_response.wav" in p.observer.played(CALLER)


# -- leg A failures and retries -----------------------------------------------------------


def test_a_busy_caller_is_retried_then_the_request_fails_with_the_cause(platform, alice) -> None:
    p = platform({CALLER: {"busy": True}}, leg_a_retries=1, retry_delay_seconds=0.3)

    p.trigger(CALLER, ANI_ACCESS)
    request = p.wait_request()

    assert (request.state, request.failure_cause, request.attempts) == ("failed", "USER_BUSY", 2)
    legs = p.legs(request.id)
    assert [(leg.leg, leg.hangup_cause, leg.cost) for leg in legs] == [
        ("a", "USER_BUSY", Decimal("0")),
        ("a", "USER_BUSY", Decimal("0")),
    ]
    assert balance("alice") == Decimal("10")


def test_a_caller_who_does_not_answer_is_given_up_after_the_timeout(platform, alice) -> None:
    p = platform({CALLER: {"no_answer": True}}, originate_timeout_seconds=2)

    p.trigger(CALLER, ANI_ACCESS)
    request = p.wait_request()
    p.wait_idle()

    assert request.state == "failed"
    assert request.failure_cause in ("NO_ANSWER", "ORIGINATOR_CANCEL", "NO_USER_RESPONSE")
    assert balance("alice") == Decimal("10")


# -- hangups at every step ----------------------------------------------------------------


def test_caller_hanging_up_during_the_pin_prompt_cancels_cleanly(platform, alice) -> None:
    p = platform({CALLER: {"answer_after": 1, "hangup_after": 1}})

    p.trigger(CALLER, PIN_ACCESS)
    request = p.wait_request()
    p.wait_idle()

    assert (request.state, request.failure_cause) == ("cancelled", "CALLER_HUNG_UP")
    assert [leg.leg for leg in p.legs(request.id)] == ["a"]


def test_caller_hanging_up_while_the_destination_rings_leaves_no_orphan_leg(
    platform, alice
) -> None:
    p = platform(
        {CALLER: keys(f"{SILENT_FRIEND}#", hangup_after=1.5), SILENT_FRIEND: {"no_answer": True}}
    )

    p.trigger(CALLER, ANI_ACCESS)
    request = p.wait_request()
    p.wait_idle()  # leg B is gone too

    assert (request.state, request.failure_cause) == ("cancelled", "CALLER_HUNG_UP")
    leg_b = p.legs(request.id)[1]
    assert leg_b.billed and leg_b.cost == 0
    assert billing.audit(alice).balanced


def test_the_call_is_cut_when_the_balance_runs_out(platform, alice) -> None:
    cheap = accounts.create_account("carol", default_callback_number=OTHER_PHONE)
    billing.add_payment(cheap, "0.20", "small voucher")  # 0.60 + 1.20 per minute: ~6 s
    # A low balance is announced first (about 4.5 s), so this caller keys after it.
    late_keys = {"answer_after": 1, "keys": [{"after": 6, "digits": f"{FRIEND}#"}]}
    p = platform({OTHER_PHONE: late_keys, FRIEND: {"answer_after": 1}}, originate_timeout_seconds=3)

    p.trigger(OTHER_PHONE, ANI_ACCESS)
    request = p.wait_request(timeout=40)
    p.wait_idle()

    assert request.state == "completed"
    assert 0 < request.max_duration < 10
    leg_a, leg_b = p.legs(request.id)
    assert leg_a.hangup_cause == "ALLOTTED_TIMEOUT"
    assert leg_a.hangup_by == "service"
    assert leg_b.billsec <= request.max_duration + 1
    assert Decimal("0") <= balance("carol") < Decimal("0.20")
    assert billing.audit(cheap).balanced


# -- the switch connection ----------------------------------------------------------------


def test_reconciling_judges_only_legs_stored_before_the_connection_came_up(platform, alice) -> None:
    p = platform({})
    node = p.service.nodes[0]
    connected = utcnow()
    request = requests.create(trigger="phone", method="ani", account=alice, source=CALLER)
    Leg.create(
        request=request.id, leg="a", uuid="not-yet-on-the-switch", node=node.name, number=CALLER
    )

    # Originated since the connection came up: its channel may not be listed yet; not lost.
    p.service.dialer.reconcile(node, connected)
    assert not Leg.get(Leg.uuid == "not-yet-on-the-switch").billed
    # Stored before it: the switch no longer has it, so it ended while we were away.
    p.service.dialer.reconcile(node, utcnow())
    lost = Leg.get(Leg.uuid == "not-yet-on-the-switch")
    assert (lost.billed, lost.hangup_cause) == (True, "LOST_WHILE_DISCONNECTED")


def test_a_dropped_switch_connection_is_restored_and_the_call_billed_once(platform, alice) -> None:
    p = platform({CALLER: keys(f"{FRIEND}#"), FRIEND: {"answer_after": 1, "hangup_after": 6}})

    p.trigger(CALLER, ANI_ACCESS)
    p.wait_request(lambda r: r.state == "bridged")
    p.drop_controller_connection()
    gevent.sleep(0.5)
    assert p.service.nodes[0].wait_connected(5)
    request = p.wait_request()
    p.wait_idle()

    assert request.state == "completed"
    legs = p.legs(request.id)
    assert all(leg.billed for leg in legs)
    assert legs[1].billsec >= 5
    assert billing.audit(alice).balanced
    assert Leg.select().where(Leg.billed == False).count() == 0  # noqa: E712


# -- the database out of reach ------------------------------------------------------------


def test_a_trigger_the_database_cannot_store_is_told_to_try_later_not_promised_a_callback(
    platform, alice, db
) -> None:
    sqlite_only(db)
    p = platform({CALLER: keys(f"{FRIEND}#")})

    with write_locked(db):
        p.trigger(CALLER, ANI_ACCESS)
        with gevent.Timeout(20, AssertionError("the trigger was not hung up")):
            while not (hangups := [e for e in p.observer.executed if e[1] == "hangup"]):
                gevent.sleep(0.1)

    # Busy would have told the caller "we call you back"; nothing was stored to do it.
    assert hangups == [(f"loopback/{ANI_ACCESS}-b", "hangup", "NORMAL_TEMPORARY_FAILURE")]
    assert CallbackRequest.select().count() == 0


def test_a_call_that_ends_while_the_database_is_locked_is_billed_once_it_answers(
    platform, alice, db
) -> None:
    sqlite_only(db)
    p = platform({CALLER: keys(f"{FRIEND}#"), FRIEND: {"answer_after": 1, "hangup_after": 2}})

    unreachable = "esl_callback_database_unreachable_total"
    before = metrics.REGISTRY.get_sample_value(unreachable)

    p.trigger(CALLER, ANI_ACCESS)
    p.wait_request(lambda r: r.state == "bridged")
    with write_locked(db), gevent.Timeout(60, AssertionError("the call did not end")):
        while p.sim.channels:  # the call ends on the switch while nothing can be written
            gevent.sleep(0.1)
    request = p.wait_request(timeout=60)

    assert (request.state, request.failure_cause) == ("completed", None)
    leg_a, leg_b = p.legs(request.id)
    assert leg_a.billed and leg_b.billed
    assert leg_b.billsec >= 2  # the switch's figures, not a lost leg's zero
    assert leg_b.hangup_cause == "NORMAL_CLEARING"
    assert balance("alice") == Decimal("10") - leg_a.cost - leg_b.cost
    assert billing.audit(alice).balanced  # and the hold released
    assert metrics.REGISTRY.get_sample_value(unreachable) > before  # operators are told


def test_a_destination_too_long_for_e164_is_refused_before_any_dial_string(platform, alice) -> None:
    p = platform(
        {CALLER: keys("1" * 200 + "#", f"{FRIEND}#"), FRIEND: ANSWERS_AND_HANGS_UP_AFTER_4S}
    )

    p.trigger(CALLER, ANI_ACCESS)
    request = p.wait_request()

    assert "ivr/ivr-invalid_number_format.wav" in p.observer.played(CALLER)
    assert all(len(leg.number) <= 15 for leg in p.legs(request.id))
    assert not any("1" * 16 in channel for channel, _, _ in p.observer.executed)


def test_a_restarted_controller_adopts_a_bridged_call_and_bills_it_once(
    platform, alice, caplog
) -> None:
    p = platform({CALLER: keys(f"{FRIEND}#"), FRIEND: {"answer_after": 1, "hangup_after": 8}})
    p.trigger(CALLER, ANI_ACCESS)
    bridged = p.wait_request(lambda r: r.state == "bridged")

    p.restart_controller()  # the flow in memory is gone; the call goes on on the switch
    request = p.wait_request(lambda r: r.id == bridged.id and r.state == "completed", timeout=30)
    p.wait_idle()

    legs = p.legs(request.id)
    assert all(leg.billed for leg in legs)
    assert legs[1].billsec >= 7
    assert billing.audit(alice).balanced
    # The loopback twins of the legs carry their variables; they are not legs of ours.
    assert "a leg we never opened" not in caplog.text


def test_stopping_ends_a_call_still_in_the_ivr_and_bills_its_leg(platform, alice) -> None:
    """SIGTERM: a caller not connected yet is hung up and billed now, not left in a prompt
    with no controller until the next start."""
    p = platform({CALLER: {"answer_after": 1, "keys": [{"after": 60, "digits": "4711#"}]}})
    p.trigger(CALLER, PIN_ACCESS)
    in_ivr = p.wait_request(lambda r: r.state == "in_ivr")
    gevent.sleep(1)

    p.service.stop(timeout=10)
    request = p.wait_request(lambda r: r.id == in_ivr.id and r.state not in requests.LIVE)

    assert (request.state, request.failure_cause) == ("cancelled", "SERVICE_STOPPING")
    (leg_a,) = p.legs(request.id)
    assert leg_a.billed and leg_a.hangup_cause == "NORMAL_CLEARING"  # the switch's CDR
    assert leg_a.billsec >= 1
    assert not p.sim.channels
    assert billing.audit(alice).balanced


def test_a_call_in_the_ivr_when_the_switch_is_lost_fails_as_such_not_as_a_hang_up(
    platform, alice
) -> None:
    p = platform({CALLER: {"answer_after": 1, "keys": [{"after": 60, "digits": "4711#"}]}})
    p.trigger(CALLER, PIN_ACCESS)
    in_ivr = p.wait_request(lambda r: r.state == "in_ivr")
    gevent.sleep(1)

    # As when FreeSWITCH is killed: every socket closes, no hangup is reported on any.
    sessions = [ch.outbound for ch in p.sim.channels.values() if ch.outbound is not None]
    for connection in [*sessions, *p.sim.connections]:
        connection.kill()
    request = p.wait_request(lambda r: r.id == in_ivr.id and r.state not in requests.LIVE)

    assert (request.state, request.failure_cause) == ("failed", "SWITCH_LOST")


def test_a_call_taken_over_at_a_start_is_counted_live_and_can_be_hung_up(platform, alice) -> None:
    p = platform({CALLER: keys(f"{FRIEND}#"), FRIEND: {"answer_after": 1, "hangup_after": 60}})
    p.trigger(CALLER, ANI_ACCESS)
    bridged = p.wait_request(lambda r: r.state == "bridged")
    p.restart_controller()
    live = ("esl_callback_requests_live", {"state": "bridged"})
    with gevent.Timeout(10, AssertionError("the bridged call was not taken over")):
        while metrics.REGISTRY.get_sample_value(*live) != 1:  # esl-callback status shows it
            gevent.sleep(0.05)

    assert p.service.dialer.cancel(bridged.id, "cancelled by alice")  # the portal's button
    request = p.wait_request(lambda r: r.id == bridged.id and r.state not in requests.LIVE)
    p.wait_idle()

    assert request.state == "completed"
    assert all(leg.billed for leg in p.legs(request.id))
    assert billing.audit(alice).balanced
    assert metrics.REGISTRY.get_sample_value(*live) is None


def test_a_trigger_is_called_back_through_the_node_it_came_from(platform, alice) -> None:
    p = platform({CALLER: keys(f"{FRIEND}#"), FRIEND: ANSWERS_AND_HANGS_UP_AFTER_4S}, nodes=2)
    second = p.other_sims[0]

    second.place_call(CALLER, ANI_ACCESS, "access")
    request = p.wait_request()

    assert request.state == "completed"
    assert [leg.node for leg in p.legs(request.id)] == ["sim2", "sim2"]
