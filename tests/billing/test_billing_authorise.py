"""Authorisation before dialing, on SQLite and PostgreSQL: rates, refusals, durations, holds."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from billing_helpers import SETTINGS, rate, set_rates

from esl_callback.callback import billing
from esl_callback.callback.billing import Refusal
from esl_callback.callback.rating import money
from esl_callback.models import Account, Reservation

LEG_A = "4930111"  # rated 0.0100/min
DEST = "4915123"  # rated 0.0500/min


@pytest.fixture
def rates(db) -> None:
    set_rates(rate("49", "0.0100"), rate("4915", "0.0500"), rate("44", "0.2000"))


def live_holds(account: Account) -> list[Decimal]:
    query = Reservation.select().where(
        Reservation.account == account, Reservation.released_at.is_null()
    )
    return sorted(money(r.amount) for r in query)


@pytest.mark.parametrize(
    ("number", "prefix"),
    [
        ("4930123", "49"),
        ("4915023", "4915"),
        ("4915123", "49151"),
        ("4915199", "491519"),
        ("4916000", "4916"),
        ("1313555", "1"),
        ("1212555", "1212"),
        ("1212", "1212"),
        ("12125", "1212"),
        ("33123", None),
        ("4", None),
    ],
)
def test_the_longest_prefix_rates_a_number(db, number: str, prefix: str | None) -> None:
    set_rates(*(rate(p, "0.01") for p in ("1", "1212", "49", "4915", "49151", "491519", "4916")))
    found = billing.rate_for(number)
    assert (found.prefix if found else None) == prefix


def test_authorising_holds_what_both_legs_cost_at_the_maximum_duration(
    rates, account, request_for
) -> None:
    alice = account(balance="1.00")
    auth = billing.authorise(alice, request_for(alice), LEG_A, DEST, SETTINGS)
    # 0.01 + 0.05 per started minute: 16 minutes = 0.96 of the 1.00
    assert auth.allowed and auth.refusal is None
    assert (auth.max_duration, auth.reserved, auth.available) == (960, Decimal("0.96"), 1)
    assert (auth.rate_a.prefix, auth.rate_b.prefix) == ("49", "4915")
    assert live_holds(alice) == [Decimal("0.96")]


def test_a_second_call_may_spend_only_what_the_first_does_not_hold(
    rates, account, request_for
) -> None:
    alice = account(balance="1.00")
    first = billing.authorise(alice, request_for(alice), LEG_A, DEST, SETTINGS, max_seconds=300)
    second = billing.authorise(alice, request_for(alice), LEG_A, DEST, SETTINGS)
    assert (first.max_duration, first.reserved) == (300, Decimal("0.30"))
    assert (second.available, second.max_duration, second.reserved) == (
        Decimal("0.70"),
        660,
        Decimal("0.66"),
    )
    third = billing.authorise(alice, request_for(alice), LEG_A, DEST, SETTINGS)
    assert third.refusal == Refusal.BALANCE_TOO_LOW
    assert "0.0400 EUR available (0.9600 held by 2 other live calls)" in third.detail
    assert billing.available_balance(alice) == Decimal("0.04")


def test_leg_a_head_start_is_paid_before_the_call_duration(rates, account, request_for) -> None:
    alice = account(balance="1.00")
    auth = billing.authorise(alice, request_for(alice), LEG_A, DEST, SETTINGS, leg_a_head_start=120)
    # leg A's 2 minutes of IVR and ringing first: 0.02, then 0.06 per minute for 16 minutes
    assert (auth.max_duration, auth.reserved) == (960, Decimal("0.98"))


@pytest.mark.parametrize(
    ("account_charge", "global_charge", "charged", "max_duration"),
    [
        (None, True, True, 960),
        (None, False, False, 1200),  # 0.05 per minute for B only: 20 minutes
        (False, True, False, 1200),
        (True, False, True, 960),
    ],
)
def test_leg_a_is_charged_per_account_else_per_global_setting(
    rates, account, request_for, account_charge, global_charge, charged, max_duration
) -> None:
    alice = account(balance="1.00", charge_leg_a=account_charge)
    settings = dataclasses.replace(SETTINGS, charge_leg_a=global_charge)
    auth = billing.authorise(alice, request_for(alice), LEG_A, DEST, settings)
    assert (auth.charge_leg_a, auth.max_duration) == (charged, max_duration)


@pytest.mark.parametrize(
    ("setup", "leg_a", "destination", "settings", "refusal", "detail"),
    [
        ({"status": "disabled"}, LEG_A, DEST, {}, Refusal.ACCOUNT_DISABLED, "is disabled"),
        (
            {"currency": "USD"},
            LEG_A,
            DEST,
            {},
            Refusal.CURRENCY_MISMATCH,
            "kept in USD but the rates are in EUR",
        ),
        ({}, LEG_A, "88112345", {}, Refusal.NO_RATE_DESTINATION, "no rate for 88112345"),
        ({}, "88112345", DEST, {}, Refusal.NO_RATE_LEG_A, "no rate for 88112345"),
        (
            {},
            LEG_A,
            "4419001",
            {"deny_prefixes": ("441900",)},
            Refusal.DESTINATION_DENIED,
            "denied by the prefix policy",
        ),
        (
            {},
            LEG_A,
            "4419001",
            {"allow_prefixes": ("49",)},
            Refusal.DESTINATION_DENIED,
            "denied by the prefix policy",
        ),
        ({"max_concurrent_calls": 0}, LEG_A, DEST, {}, Refusal.TOO_MANY_CALLS, "limit is 0"),
        ({"balance": "0.05"}, LEG_A, DEST, {}, Refusal.BALANCE_TOO_LOW, "first second"),
        ({"balance": "0"}, LEG_A, DEST, {}, Refusal.BALANCE_TOO_LOW, "first second"),
    ],
)
def test_a_refused_call_says_why_and_holds_nothing(
    rates, account, request_for, setup, leg_a, destination, settings, refusal, detail
) -> None:
    fields = {"balance": "1.00", **setup}
    alice = account(**fields)
    auth = billing.authorise(
        alice, request_for(alice), leg_a, destination, dataclasses.replace(SETTINGS, **settings)
    )
    assert not auth.allowed
    assert auth.refusal == refusal
    assert detail in auth.detail
    assert (auth.max_duration, auth.reserved) == (0, 0)
    assert live_holds(alice) == []


def test_an_unrated_leg_a_is_fine_when_leg_a_is_not_charged(rates, account, request_for) -> None:
    alice = account(balance="1.00", charge_leg_a=False)
    auth = billing.authorise(alice, request_for(alice), "88112345", DEST, SETTINGS)
    assert auth.allowed and auth.rate_a is None and auth.max_duration == 1200


def test_the_concurrent_call_limit_counts_the_other_live_calls(rates, account, request_for) -> None:
    alice = account(balance="10", max_concurrent_calls=2)
    first, second, third = (request_for(alice) for _ in range(3))
    for request in (first, second):
        assert billing.authorise(alice, request, LEG_A, DEST, SETTINGS, max_seconds=60).allowed
    # the same request authorised again does not count against itself
    assert billing.authorise(alice, second, LEG_A, DEST, SETTINGS, max_seconds=60).allowed
    refused = billing.authorise(alice, third, LEG_A, DEST, SETTINGS, max_seconds=60)
    assert refused.refusal == Refusal.TOO_MANY_CALLS
    billing.release_reservations(first)
    assert billing.authorise(alice, third, LEG_A, DEST, SETTINGS, max_seconds=60).allowed


def test_an_account_without_a_limit_of_its_own_gets_the_default_one(
    rates, account, request_for
) -> None:
    alice = account(balance="10")
    first, second = request_for(alice), request_for(alice)
    limited = {"max_seconds": 60, "default_call_limit": 1}
    assert billing.authorise(alice, first, LEG_A, DEST, SETTINGS, **limited).allowed
    refused = billing.authorise(alice, second, LEG_A, DEST, SETTINGS, **limited)
    assert (refused.refusal, refused.detail) == (
        Refusal.TOO_MANY_CALLS,
        "1 live calls, the limit is 1",
    )
    roomy = Account.get_by_id(alice.id)
    roomy.max_concurrent_calls = 2
    roomy.save()
    assert billing.authorise(roomy, second, LEG_A, DEST, SETTINGS, **limited).allowed


def test_reauthorising_a_request_replaces_its_hold_and_a_refusal_keeps_it(
    rates, account, request_for
) -> None:
    alice = account(balance="1.00")
    request = request_for(alice)
    leg_a_only = billing.authorise(alice, request, LEG_A, None, SETTINGS, max_seconds=600)
    assert (leg_a_only.max_duration, leg_a_only.reserved) == (600, Decimal("0.10"))
    assert leg_a_only.rate_b is None
    refused = billing.authorise(alice, request, LEG_A, "88112345", SETTINGS)
    assert refused.refusal == Refusal.NO_RATE_DESTINATION
    assert live_holds(alice) == [Decimal("0.10")]
    # its own hold is available to the request's new destination
    full = billing.authorise(alice, request, LEG_A, DEST, SETTINGS)
    assert (full.available, full.max_duration) == (Decimal("1.00"), 960)
    assert live_holds(alice) == [Decimal("0.96")]


def test_numbers_must_be_normalised_digits(rates, account, request_for) -> None:
    alice = account()
    with pytest.raises(ValueError, match=r"expected E\.164 digits"):
        billing.authorise(alice, request_for(alice), LEG_A, "+4915123", SETTINGS)


def test_low_balance_helpers_follow_the_settings() -> None:
    settings = dataclasses.replace(
        SETTINGS, low_balance_threshold=Decimal("2"), warning_seconds_before_hangup=60
    )
    assert billing.is_low_balance(Decimal("1.9999"), settings)
    assert not billing.is_low_balance(Decimal("2"), settings)
    assert not billing.is_low_balance(
        Decimal("-1"), dataclasses.replace(settings, low_balance_threshold=0)
    )
    assert billing.warning_offset(600, settings) == 540
    assert billing.warning_offset(45, settings) == 0  # shorter than the warning: warn at once
    assert (
        billing.warning_offset(600, dataclasses.replace(settings, warning_seconds_before_hangup=0))
        is None
    )


def test_a_request_of_another_account_cannot_be_authorised_on_this_one(
    rates, account, request_for
) -> None:
    alice, bob = account("alice"), account("bob")
    with pytest.raises(billing.BillingError, match="does not belong to account alice"):
        billing.authorise(alice, request_for(bob), LEG_A, DEST, SETTINGS)


def test_the_account_history_script_prints_a_cost_per_size() -> None:
    """A small run of scripts/account_history.py (the real figures need the default sizes)."""
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [sys.executable, str(root / "scripts" / "account_history.py"), "--past=0,50", "--calls=5"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=root,
    )
    sizes = [line.split("|")[1].strip() for line in result.stdout.splitlines()[2:]]
    assert sizes == ["0", "50"], result.stdout + result.stderr
