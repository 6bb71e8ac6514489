"""Rating arithmetic, table-driven: increments, minimums, connect fees, rounding, policy, CSV."""

from __future__ import annotations

import decimal
from decimal import Decimal

import pytest

from esl_callback.callback.rating import (
    ChargedLeg,
    RateFileError,
    RateSnapshot,
    affordable_seconds,
    parse_rate_csv,
    prefix_policy_allows,
    rounding_mode,
    total_cost,
)


def snap(price: str, connect: str = "0", increment: int = 60, minimum: int = 60) -> RateSnapshot:
    return RateSnapshot("49", Decimal(price), Decimal(connect), increment, minimum)


@pytest.mark.parametrize(
    ("increment", "minimum", "billsec", "billed"),
    [
        (60, 60, 0, 0),  # never answered
        (60, 60, 1, 60),
        (60, 60, 60, 60),
        (60, 60, 61, 120),
        (60, 60, 179, 180),
        # "30/6" as carriers write it: the first 30 s in full, then every started 6 s
        (6, 30, 1, 30),
        (6, 30, 30, 30),
        (6, 30, 31, 36),
        (6, 30, 37, 42),
        (30, 6, 1, 6),  # the other way round: a 6 s minimum, then started half minutes
        (30, 6, 7, 36),
        (1, 1, 1, 1),
        (1, 1, 59, 59),
        (1, 1, 3601, 3601),
        (1, 0, 7, 7),  # no minimum
        (10, 0, 1, 10),
    ],
)
def test_billed_seconds_follow_minimum_then_started_increments(
    increment: int, minimum: int, billsec: int, billed: int
) -> None:
    assert snap("1", increment=increment, minimum=minimum).billed_seconds(billsec) == billed


@pytest.mark.parametrize(
    ("rate", "billsec", "cost"),
    [
        (snap("0.0200"), 0, "0.0000"),  # unanswered: no connect fee either
        (snap("0.0200", "0.1000"), 0, "0.0000"),
        (snap("0.0200"), 1, "0.0200"),
        (snap("0.0200"), 61, "0.0400"),
        (snap("0.0200", "0.1000"), 61, "0.1400"),  # connect fee once
        (snap("0.1000", "0.0500", 6, 30), 31, "0.1100"),  # 0.05 + 0.10 * 36/60
        (snap("0.0600", increment=1, minimum=1), 10, "0.0100"),
        (snap("0.0100", increment=1, minimum=1), 1, "0.0002"),  # 0.000166.. rounds half up
        (snap("0.0100", increment=1, minimum=1), 3, "0.0005"),  # exact 0.0005
        (snap("0.0030", increment=1, minimum=1), 1, "0.0001"),  # 0.00005 -> half up
        (snap("0", "0.2500"), 1, "0.2500"),  # connect fee only
        (snap("12.3456", "1.2345", 60, 60), 3600, "741.9705"),
    ],
)
def test_leg_cost_with_connect_fee_and_default_half_up_rounding(
    rate: RateSnapshot, billsec: int, cost: str
) -> None:
    assert rate.cost(billsec) == Decimal(cost)
    assert str(rate.cost(billsec)) == cost  # always 4 places, like the money columns


@pytest.mark.parametrize(
    ("mode", "cost"),
    [
        # 0.0030/min for 1 s = 0.00005 exactly; 0.0070/min for 1 s = 0.000116..
        ("half_up", ("0.0001", "0.0001")),
        ("half_even", ("0.0000", "0.0001")),
        ("half_down", ("0.0000", "0.0001")),
        ("up", ("0.0001", "0.0002")),
        ("ceiling", ("0.0001", "0.0002")),
        ("down", ("0.0000", "0.0001")),
        ("floor", ("0.0000", "0.0001")),
    ],
)
def test_rounding_mode_applies_once_per_leg(mode: str, cost: tuple[str, str]) -> None:
    rounding = rounding_mode(mode)
    exact_half = snap("0.0030", increment=1, minimum=1).cost(1, rounding)
    above_half = snap("0.0070", increment=1, minimum=1).cost(1, rounding)
    assert (str(exact_half), str(above_half)) == cost


@pytest.mark.parametrize(
    ("name", "constant"),
    [
        ("half_up", decimal.ROUND_HALF_UP),
        ("ROUND_HALF_EVEN", decimal.ROUND_HALF_EVEN),
        ("Half-Down", decimal.ROUND_HALF_DOWN),
        (" up ", decimal.ROUND_UP),
    ],
)
def test_rounding_names_are_read_in_either_spelling(name: str, constant: str) -> None:
    assert rounding_mode(name) == constant


def test_an_unknown_rounding_name_is_refused_with_the_choices() -> None:
    with pytest.raises(ValueError, match="'nearest' is not one of ceiling, down, floor"):
        rounding_mode("nearest")


@pytest.mark.parametrize(
    ("number", "allow", "deny", "allowed"),
    [
        ("4930123", [], [], True),
        ("4930123", ["49"], [], True),
        ("3312345", ["49"], [], False),  # an allow list admits only what it lists
        ("4990012", ["49"], ["49900"], False),  # the longer deny wins
        ("4915123", ["4915"], ["49"], True),  # the longer allow wins
        ("4930123", ["4915"], ["49"], False),
        ("88112345", [], ["881", "882"], False),
        ("4930123", [], ["881"], True),
        ("4930123", ["49"], ["49"], False),  # in both lists: denied
    ],
)
def test_longest_policy_prefix_decides(
    number: str, allow: list[str], deny: list[str], allowed: bool
) -> None:
    assert prefix_policy_allows(number, allow, deny) is allowed


def brute_force_seconds(available: Decimal, legs: list[ChargedLeg], ceiling: int) -> int:
    best = 0
    for seconds in range(1, ceiling + 1):
        if total_cost(legs, seconds, decimal.ROUND_HALF_UP) <= available:
            best = seconds
    return best


@pytest.mark.parametrize(
    ("available", "legs", "expected"),
    [
        ("1.0000", [ChargedLeg(snap("0.0100")), ChargedLeg(snap("0.0500"))], 960),
        ("1.0000", [ChargedLeg(snap("0.0600", increment=1, minimum=1))], 1000),
        ("0.0599", [ChargedLeg(snap("0.0600"))], 0),  # not even the first minute
        ("0.1000", [ChargedLeg(snap("0.0500", "0.0500"))], 60),  # connect fee + 1 minute
        ("0.1000", [ChargedLeg(snap("0.0600"), head_start=60)], 0),  # leg A's IVR minute
        ("0.1800", [ChargedLeg(snap("0.0600"), head_start=60)], 120),
        ("0.5000", [ChargedLeg(snap("0.1000", "0.0500", 6, 30))], 270),
        ("0", [], 1800),  # nothing charged: the ceiling
    ],
)
def test_affordable_seconds_is_the_exact_limit(
    available: str, legs: list[ChargedLeg], expected: int
) -> None:
    found = affordable_seconds(Decimal(available), legs, decimal.ROUND_HALF_UP, 1800)
    assert found == expected == brute_force_seconds(Decimal(available), legs, 1800)


HEADER = "prefix,description,price_per_minute,connect_fee,increment,minimum\n"


def test_a_rate_file_is_read_with_defaults_for_optional_cells() -> None:
    rows = parse_rate_csv("\ufeff" + HEADER + "+4930,Berlin,0.0150,0.0100,30,6\n\n1,NANP,0.01,,,\n")
    assert [(r.rate, r.description, r.line) for r in rows] == [
        (RateSnapshot("4930", Decimal("0.0150"), Decimal("0.0100"), 30, 6), "Berlin", 2),
        (RateSnapshot("1", Decimal("0.0100"), Decimal("0"), 60, 60), "NANP", 4),
    ]


def test_a_rate_file_may_name_only_the_required_columns_in_any_order() -> None:
    rows = parse_rate_csv("price_per_minute,prefix\n0.5,44\n")
    assert rows[0].rate == RateSnapshot("44", Decimal("0.5000"))


@pytest.mark.parametrize(
    ("text", "line", "column", "problem"),
    [
        ("", 1, None, "empty file"),
        ("prefix,price\n", 1, "price", "unknown column"),
        ("prefix,description\n", 1, "price_per_minute", "required column missing"),
        ("prefix,prefix,price_per_minute\n", 1, None, "named twice"),
        (HEADER + "49,x,0.01,0,60,60\n49a,x,0.01,0,60,60\n", 3, "prefix", "not 1-15 digits"),
        (HEADER + "1234567890123456,x,0.01,0,60,60\n", 2, "prefix", "not 1-15 digits"),
        (HEADER + "49,x,abc,0,60,60\n", 2, "price_per_minute", "not a decimal amount"),
        (HEADER + "49,x,,0,60,60\n", 2, "price_per_minute", "is empty"),
        (HEADER + "49,x,-0.01,0,60,60\n", 2, "price_per_minute", "not a decimal amount"),
        (HEADER + "49,x,NaN,0,60,60\n", 2, "price_per_minute", "not a decimal amount"),
        (HEADER + "49,x,1e3,0,60,60\n", 2, "price_per_minute", "not a decimal amount"),
        (HEADER + "49,x,1_000,0,60,60\n", 2, "price_per_minute", "not a decimal amount"),
        (HEADER + "49,x,\u0661\u0660,0,60,60\n", 2, "price_per_minute", "digits 0-9"),
        (HEADER + "49,x,0.01,10000000000,60,60\n", 2, "connect_fee", "must be from 0"),
        (HEADER + "49,x,0.00001,0,60,60\n", 2, "price_per_minute", "more than 4 decimal"),
        (HEADER + "49,x,0.01,1e10,60,60\n", 2, "connect_fee", "not a decimal amount"),
        (HEADER + "49,x,0.01,0,0,60\n", 2, "increment", "from 1 to 86400"),
        (HEADER + "49,x,0.01,0,1.5,60\n", 2, "increment", "from 1 to 86400"),
        (HEADER + "49,x,0.01,0,60,-1\n", 2, "minimum", "from 0 to 86400"),
        (HEADER + "49,x,0.01,0,60\n", 2, None, "5 fields where the header has 6"),
        (HEADER + "49,Ger\x1bmany,0.01,0,60,60\n", 2, "description", "one line of printable"),
        (HEADER + f"49,{'x' * 129},0.01,0,60,60\n", 2, "description", "at most 128 characters"),
        (HEADER + "49,x,0.01,0,60,60\n49,y,0.02,0,60,60\n", 3, "prefix", "already on line 2"),
    ],
)
def test_a_bad_rate_file_names_its_line_and_column(
    text: str, line: int, column: str | None, problem: str
) -> None:
    with pytest.raises(RateFileError, match=problem) as raised:
        parse_rate_csv(text, source="rates.csv")
    assert (raised.value.line, raised.value.column) == (line, column)
    assert str(raised.value).startswith(f"rates.csv line {line}")
