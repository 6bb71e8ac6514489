"""The switch's CDR (mod_json_cdr) as the second source of truth, on SQLite and PostgreSQL:
a leg whose hangup nobody saw is billed from it with the switch's billsec, once, whichever of
the hangup event, the reconciler and the CDR (delivered any number of times) comes first."""

from __future__ import annotations

import itertools
from decimal import Decimal

import pytest
from billing_helpers import SETTINGS, rate, set_rates, storm, switch_cdr_text

from esl_callback.callback import billing, switch_cdr
from esl_callback.callback.billing import LOST_CAUSE, Hangup
from esl_callback.db import Database
from esl_callback.models import Account, Leg, SwitchCdr

LEG_A = "4930111"
DEST = "4915123"
B_COST_90 = Decimal("0.0950")  # 0.02 connect + 90 s at 0.05/min, 6 s steps after 30 s


@pytest.fixture
def call(db, account, request_for):
    """An authorised callback of a fresh account with both legs opened: (account, auth)."""
    set_rates(rate("49", "0.0100"), rate("4915", "0.0500", "0.0200", increment=6, minimum=30))
    names = itertools.count(1)

    def make(balance: str = "10", **fields: object) -> tuple[Account, billing.Authorisation]:
        owner = account(f"caller{next(names)}", balance=balance, **fields)
        auth = billing.authorise(owner, request_for(owner), LEG_A, DEST, SETTINGS)
        assert auth.allowed, auth.detail
        billing.open_leg(auth, "a", f"a-{auth.request_id}")
        billing.open_leg(auth, "b", f"b-{auth.request_id}")
        return owner, auth

    return make


def post(uuid: str, billsec: int, cause: str = "NORMAL_CLEARING") -> switch_cdr.Outcome:
    cdr = switch_cdr.parse(switch_cdr_text(uuid, billsec, cause), uuid)
    return switch_cdr.apply(cdr, SETTINGS)


def balance(owner: Account) -> Decimal:
    return Account.get_by_id(owner.id).balance


def test_a_leg_whose_hangup_nobody_saw_is_billed_with_the_switchs_billsec(call) -> None:
    owner, auth = call()
    done = post(f"b-{auth.request_id}", 90)
    assert (done.outcome, done.bill.cost, done.deliveries) == ("billed", B_COST_90, 1)
    leg = Leg.get(Leg.uuid == f"b-{auth.request_id}")
    assert (leg.billed, leg.billsec, leg.hangup_cause, leg.cost) == (
        True,
        90,
        "NORMAL_CLEARING",
        B_COST_90,
    )
    assert balance(owner) == 10 - B_COST_90
    assert billing.audit(owner).balanced


def test_the_same_cdr_delivered_again_is_counted_and_bills_nothing(call) -> None:
    owner, auth = call()
    outcomes = [post(f"b-{auth.request_id}", 90) for _ in range(3)]
    assert [o.outcome for o in outcomes] == ["billed", "duplicate", "duplicate"]
    stored = SwitchCdr.get(SwitchCdr.uuid == f"b-{auth.request_id}")
    assert (stored.deliveries, stored.outcome, stored.billsec) == (3, "billed", 90)
    assert balance(owner) == 10 - B_COST_90


def test_a_cdr_after_the_hangup_event_changes_nothing_and_a_billsec_that_differs_is_flagged(
    call,
) -> None:
    owner, auth = call()
    billing.close_leg(Hangup(f"b-{auth.request_id}", "NORMAL_CLEARING", 90), SETTINGS)
    assert post(f"b-{auth.request_id}", 90).outcome == "duplicate"
    billing.close_leg(Hangup(f"a-{auth.request_id}", "NORMAL_CLEARING", 100), SETTINGS)
    assert post(f"a-{auth.request_id}", 101).outcome == "mismatch"
    assert Leg.get(Leg.uuid == f"a-{auth.request_id}").billsec == 100
    assert SwitchCdr.get(SwitchCdr.uuid == f"a-{auth.request_id}").outcome == "mismatch"
    assert balance(owner) == 10 - B_COST_90 - Decimal("0.0200")
    assert billing.audit(owner).balanced


def test_a_leg_closed_lost_while_disconnected_is_billed_by_its_cdr_once(call) -> None:
    owner, auth = call()
    uuid = f"b-{auth.request_id}"
    lost = billing.close_leg(Hangup(uuid, LOST_CAUSE, 0), SETTINGS)
    assert (lost.cost, balance(owner)) == (0, 10)
    outcomes = [post(uuid, 90).outcome for _ in range(2)]
    assert outcomes == ["rebilled", "duplicate"]
    leg = Leg.get(Leg.uuid == uuid)
    assert (leg.billsec, leg.hangup_cause, leg.cost) == (90, "NORMAL_CLEARING", B_COST_90)
    assert balance(owner) == 10 - B_COST_90
    assert billing.audit(owner).balanced


def test_a_lost_report_after_the_cdr_changes_nothing(call) -> None:
    owner, auth = call()
    uuid = f"b-{auth.request_id}"
    post(uuid, 90)
    assert billing.close_leg(Hangup(uuid, LOST_CAUSE, 0), SETTINGS).duplicate
    assert Leg.get(Leg.uuid == uuid).hangup_cause == "NORMAL_CLEARING"
    assert balance(owner) == 10 - B_COST_90


def test_a_cdr_never_takes_an_account_below_its_floor(call) -> None:
    owner, auth = call(balance="1")
    uuid = f"b-{auth.request_id}"
    billing.close_leg(Hangup(uuid, LOST_CAUSE, 0), SETTINGS)  # its hold is released
    billing.add_payment(owner, "-0.95", "spent elsewhere meanwhile")
    done = post(uuid, 90)
    assert (done.outcome, done.bill.cost, done.bill.operator_cost) == (
        "rebilled",
        Decimal("0.05"),
        B_COST_90 - Decimal("0.05"),
    )
    assert balance(owner) == 0
    assert billing.audit(owner).balanced


def test_a_cdr_of_a_channel_that_is_not_our_leg_is_stored_and_ignored(db) -> None:
    done = post("0ff173a0-8402-43c0-a245-a8747619a1e9", 8)
    assert (done.outcome, done.bill, done.request_id) == ("unknown", None, None)
    stored = SwitchCdr.get(SwitchCdr.uuid == "0ff173a0-8402-43c0-a245-a8747619a1e9")
    assert (stored.outcome, stored.billsec, stored.request_id) == ("unknown", 8, 1)
    assert stored.body.startswith('{"core-uuid"')


@pytest.mark.parametrize(
    ("text", "uuid", "problem"),
    [
        ("{", "u1", "not valid JSON"),
        ('{"core-uuid":"x"}', "u1", "no variables object"),
        ('{"variables":{"uuid":"u2","billsec":"1","hangup_cause":"X"}}', "u1", "not the CDR's"),
        ('{"variables":{"uuid":"u1","hangup_cause":"X"}}', "u1", "no variables.billsec"),
        ('{"variables":{"uuid":"u1","billsec":"-1","hangup_cause":"X"}}', "u1", "whole number"),
        ('{"variables":{"uuid":"u1","billsec":"1"}}', "u1", "no variables.hangup_cause"),
    ],
)
def test_what_is_not_a_cdr_is_refused_saying_why(text: str, uuid: str, problem: str) -> None:
    with pytest.raises(switch_cdr.CdrError, match=problem):
        switch_cdr.parse(text, uuid)


def test_every_encoding_mod_json_cdr_posts_is_read() -> None:
    text = switch_cdr_text("u1", 8, caller_id="%22Outbound%20Call%22%20%3Cphones%3E")
    form = "cdr=" + switch_cdr_text("u1", 8).replace('"', "%22").replace("{", "%7B")
    assert switch_cdr.document_text(text.encode(), switch_cdr.JSON) == text
    assert switch_cdr.parse(switch_cdr.document_text(form.encode(), switch_cdr.FORM)).uuid == "u1"
    with pytest.raises(switch_cdr.CdrError, match="Content-Type text/plain"):
        switch_cdr.document_text(text.encode(), "text/plain")


def test_the_hangup_event_the_reconciler_and_the_cdr_racing_bill_the_leg_once(
    db: Database, account, request_for
) -> None:
    set_rates(rate("49", "0.0100"), rate("4915", "0.0500", "0.0200", increment=6, minimum=30))
    owner = account(balance="1.00")
    auth = billing.authorise(owner, request_for(owner), LEG_A, DEST, SETTINGS)
    billing.open_leg(auth, "b", "leg-b")
    results = storm(db.url, "race", ["leg-b"], ["6", "6", "6"], 3)
    cdrs = [r["outcome"] for r in results if r["by"] == "cdr"]
    assert len(cdrs) == 6 and cdrs.count("billed") + cdrs.count("rebilled") <= 1
    leg = Leg.get(Leg.uuid == "leg-b")
    assert (leg.billsec, leg.hangup_cause, leg.cost) == (90, "NORMAL_CLEARING", B_COST_90)
    assert SwitchCdr.get(SwitchCdr.uuid == "leg-b").deliveries == 6
    assert Account.get_by_id(owner.id).balance == Decimal("1.00") - B_COST_90
    assert billing.audit(owner).balanced
