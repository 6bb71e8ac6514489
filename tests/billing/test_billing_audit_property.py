"""Property: for any sequence of payments and overlapping calls the audit balances, on SQLite and
PostgreSQL, and no call cut at its maximum duration costs more than was held for it."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

from billing_helpers import SETTINGS, rate, set_rates
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from esl_callback.callback import billing
from esl_callback.callback.billing import Hangup
from esl_callback.db import Database
from esl_callback.models import Account, CallbackRequest, Leg, Payment, Reservation

RATES = (
    rate("49", "0.0137"),
    rate("4915", "0.1999", "0.0150", increment=6, minimum=30),
    rate("44", "0.0071", increment=1, minimum=1),
    rate("1", "0.0100", "0.2500", increment=60, minimum=0),
)
NUMBERS = ("4930111", "4915123", "4420777", "1212555", "88112345")  # the last has no rate

payments = st.tuples(
    st.just("pay"),
    st.decimals(min_value=-5, max_value=50, places=4).map(lambda amount: amount or 1),
)
calls = st.tuples(
    st.just("call"),
    st.sampled_from(NUMBERS),  # leg A
    st.sampled_from(NUMBERS),  # destination
    st.integers(min_value=0, max_value=4000),  # leg A billsec before the cut
    st.integers(min_value=0, max_value=4000),  # leg B billsec before the cut
    st.integers(min_value=0, max_value=300),  # leg A head start
    st.sampled_from([None, True, False]),  # the account's charge_leg_a
)
hangups = st.tuples(
    st.just("hangup"),
    st.integers(min_value=0, max_value=20),  # which live call
    st.integers(min_value=1, max_value=3),  # how often each hangup is reported
    st.booleans(),  # leg B first
)
operations = st.lists(st.one_of(payments, calls, hangups), max_size=15)


def reset() -> None:
    """Empty the tables this test writes, cheaply, between examples."""
    for model in (Leg, Reservation, Payment, CallbackRequest, Account):
        model.delete().execute()


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    opening=st.decimals(min_value=Decimal("0.0001"), max_value=100, places=4),
    operations=operations,
    rounding=st.sampled_from(["half_up", "half_even", "up", "down"]),
)
def test_any_payments_and_calls_keep_the_audit_balanced(
    db: Database, opening: Decimal, operations: list[tuple], rounding: str
) -> None:
    reset()
    set_rates(*RATES)
    config = dataclasses.replace(SETTINGS, rounding=rounding)
    owner = Account.create(name="prop")
    billing.add_payment(owner, opening, "opening balance")
    live: list[LiveCall] = []
    for op in operations:
        if op[0] == "pay":
            billing.add_payment(
                owner, op[1], "hypothesis", allow_negative=True, allow_duplicate_reference=True
            )
        elif op[0] == "call":
            live += place_call(owner, op, config)
        elif live:
            end_call(live.pop(op[1] % len(live)), op, config)
    while live:
        end_call(live.pop(), ("hangup", 0, 1, False), config)
    audit = billing.audit(owner)
    assert audit.balanced, audit
    assert audit.reserved == 0
    assert audit.stored_balance == sum(
        (Decimal(p.amount) for p in Payment.select()), Decimal(0)
    ) - sum((Decimal(leg.cost) for leg in Leg.select()), Decimal(0))


# An authorised call and the billsec its legs A and B will report.
LiveCall = tuple[billing.Authorisation, int, int]


def place_call(owner: Account, op: tuple, config) -> list[LiveCall]:
    _, leg_a, destination, billsec_a, billsec_b, head_start, charge_leg_a = op
    Account.update(charge_leg_a=charge_leg_a).where(Account.id == owner.id).execute()
    request = CallbackRequest.create(account=owner, trigger="web", method="web")
    auth = billing.authorise(
        owner, request, leg_a, destination, config, leg_a_head_start=head_start, max_seconds=3600
    )
    event(f"call {auth.refusal or 'allowed'}")
    if not auth.allowed:
        return []
    billing.open_leg(auth, "a", f"a{request.id}")
    billing.open_leg(auth, "b", f"b{request.id}")
    # the switch cuts the call at the maximum duration; leg A was up `head_start` before
    return [
        (auth, min(billsec_a, head_start + auth.max_duration), min(billsec_b, auth.max_duration))
    ]


def end_call(call: LiveCall, op: tuple, config) -> None:
    auth, billsec_a, billsec_b = call
    _, _, reports, b_first = op
    legs = [(f"a{auth.request_id}", billsec_a), (f"b{auth.request_id}", billsec_b)]
    if b_first:
        legs.reverse()
    costs = []
    for uuid, billsec in legs:
        bills = [
            billing.close_leg(Hangup(uuid, "NORMAL_CLEARING", billsec), config)
            for _ in range(reports)
        ]
        assert [b.duplicate for b in bills] == [False] + [True] * (reports - 1)
        costs.append(bills[0].cost)
    assert sum(costs) <= auth.reserved, (costs, auth)
