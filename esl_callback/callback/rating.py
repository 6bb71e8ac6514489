"""Pure rating arithmetic: what a call costs, how long a balance lasts, which numbers may be called.

No database here (see `billing` for that). Money is `Decimal`, quantised to 4 places like the
money fields of the models.

Charging rule for one leg with a rate (price per minute P, connect fee F, minimum M seconds,
increment I seconds) and `billsec` S answered seconds:

* S = 0 (never answered, or answered for less than a second): the leg costs nothing.
* otherwise billed seconds B = M when S <= M, else M + I * ceil((S - M) / I);
  cost = F + P * B / 60, quantised to 0.0001 once per leg with the configured rounding mode
  (`billing.rounding`, default ROUND_HALF_UP).

Carriers write minimum/increment: 60/60 charges every started minute, 30/6 the first 30 s and
then every started 6 s, 1/1 the second. The rate CSV has the columns the other way round
(increment, then minimum): carrier 30/6 is the row `...,6,30`.
"""

from __future__ import annotations

import csv
import decimal
import io
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from esl_callback import numbers, text

MONEY_STEP = Decimal("0.0001")
MONEY_LIMIT = Decimal(10) ** 10  # the money fields hold 14 digits, 4 after the point
DEFAULT_ROUNDING = decimal.ROUND_HALF_UP
ROUNDING_MODES = frozenset(
    {
        decimal.ROUND_UP,
        decimal.ROUND_DOWN,
        decimal.ROUND_CEILING,
        decimal.ROUND_FLOOR,
        decimal.ROUND_HALF_UP,
        decimal.ROUND_HALF_DOWN,
        decimal.ROUND_HALF_EVEN,
    }
)


# A plain decimal as people write amounts: ASCII digits, an optional sign, an optional point.
_PLAIN_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")


class AmountError(ValueError):
    """Text that is not a plain decimal amount."""


def parse_amount(text: str, *, signed: bool = False) -> Decimal:
    """The amount in `text`: ASCII digits with an optional decimal point (and, when `signed`,
    an optional leading + or -), such as 12.50 or -5.

    Exponents (1e3), digit separators (1_000), other scripts' digits, NaN and Infinity are
    refused with AmountError: an amount is exactly what the operator sees written.
    """
    plain = text.strip()
    if not _PLAIN_DECIMAL.fullmatch(plain) or (not signed and plain[0] in "+-"):
        sign = "an optional sign and " if signed else ""
        raise AmountError(
            f"{text!r} is not a decimal amount: write digits 0-9 with {sign}an optional "
            "decimal point, such as 12.50"
        )
    return Decimal(plain)


def money(value: Decimal | int | str, rounding: str = DEFAULT_ROUNDING) -> Decimal:
    """`value` as an amount with exactly 4 decimal places."""
    return Decimal(value).quantize(MONEY_STEP, rounding=rounding)


def rounding_mode(name: str) -> str:
    """The `decimal` rounding constant for a name such as `half_up` or `ROUND_HALF_UP`."""
    constant = name.strip().upper().replace("-", "_")
    if not constant.startswith("ROUND_"):
        constant = f"ROUND_{constant}"
    if constant not in ROUNDING_MODES:
        choices = ", ".join(sorted(m.removeprefix("ROUND_").lower() for m in ROUNDING_MODES))
        raise ValueError(f"rounding {name!r} is not one of {choices}")
    return constant


@dataclass(frozen=True)
class RateSnapshot:
    """A rate as it applies to one leg (copied onto the leg when it starts)."""

    prefix: str
    price_per_minute: Decimal
    connect_fee: Decimal = Decimal("0")
    increment: int = 60
    minimum: int = 60

    def billed_seconds(self, billsec: int) -> int:
        """Seconds charged for `billsec` answered seconds (0 when the leg never answered)."""
        if billsec <= 0:
            return 0
        if billsec <= self.minimum:
            return self.minimum
        steps = -(-(billsec - self.minimum) // self.increment)  # ceiling division
        return self.minimum + steps * self.increment

    def cost(self, billsec: int, rounding: str = DEFAULT_ROUNDING) -> Decimal:
        """What `billsec` answered seconds cost, connect fee included, rounded once."""
        seconds = self.billed_seconds(billsec)
        if seconds == 0:
            return money(0)
        return money(self.connect_fee + self.price_per_minute * seconds / 60, rounding)


@dataclass(frozen=True)
class ChargedLeg:
    """A leg to pay for in an authorisation: its rate and the seconds it runs before the call.

    `head_start` is how long the leg is already up (or will be) when the bridged call starts,
    e.g. leg A's IVR time in a two-stage callback.
    """

    rate: RateSnapshot
    head_start: int = 0

    def cost(self, seconds: int, rounding: str) -> Decimal:
        return self.rate.cost(self.head_start + seconds, rounding)


def total_cost(legs: Iterable[ChargedLeg], seconds: int, rounding: str) -> Decimal:
    """What the legs cost together when the call lasts `seconds`."""
    return sum((leg.cost(seconds, rounding) for leg in legs), money(0))


def affordable_seconds(
    available: Decimal, legs: Sequence[ChargedLeg], rounding: str, ceiling: int
) -> int:
    """The longest call (whole seconds, at most `ceiling`) whose legs `available` can pay.

    0 when not even the first second is affordable. Cost grows with duration, so a binary
    search over whole seconds finds the exact limit under the same rounding as the debit.
    """
    if total_cost(legs, 1, rounding) > available:
        return 0
    low, high = 1, ceiling
    while low < high:
        middle = (low + high + 1) // 2
        if total_cost(legs, middle, rounding) <= available:
            low = middle
        else:
            high = middle - 1
    return low


def prefix_policy_allows(number: str, allow: Iterable[str], deny: Iterable[str]) -> bool:
    """The allow/deny prefix policy for a destination.

    The longest matching prefix of either list decides (a prefix in both lists denies); a
    number matching neither is allowed only when the allow list is empty. So `allow: [49]`
    with `deny: [49900]` permits Germany except 49900, and `deny: [49]` with
    `allow: [4915]` permits only German mobiles among German numbers.
    """
    allow, deny = list(allow), list(deny)
    best_allow = max((len(p) for p in allow if number.startswith(p)), default=-1)
    best_deny = max((len(p) for p in deny if number.startswith(p)), default=-1)
    if best_allow < 0 and best_deny < 0:
        return not allow
    return best_allow > best_deny


# -- the rate table as a CSV file --------------------------------------------------------------

CSV_COLUMNS = ("prefix", "description", "price_per_minute", "connect_fee", "increment", "minimum")
CSV_REQUIRED = ("prefix", "price_per_minute")


class RateFileError(ValueError):
    """A rate file that cannot be imported; says which line and column, and why."""

    def __init__(self, source: str, line: int, column: str | None, problem: str) -> None:
        where = f"{source} line {line}" + (f", column {column}" if column else "")
        super().__init__(f"{where}: {problem}")
        self.line = line
        self.column = column


@dataclass(frozen=True)
class RateRow:
    """One rate read from a file."""

    rate: RateSnapshot
    description: str
    line: int


def parse_rate_csv(text: str, source: str = "rates.csv") -> list[RateRow]:
    """Read a rate table: a header row naming the columns, then one rate per row.

    Columns (any order): prefix and price_per_minute are required; description (default
    empty), connect_fee (0), increment (60) and minimum (60) may be left out or left empty.
    A prefix is E.164 digits (a leading `+` is dropped); amounts are plain decimals
    (`parse_amount`, no sign) with at most 4 places; increment >= 1 and minimum >= 0 are whole
    seconds (billed: the minimum, then every started increment). Blank lines are skipped.
    The first problem raises RateFileError naming its line and column.
    """
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff")))
    header = next(reader, None)
    if header is None:
        raise RateFileError(
            source, 1, None, f"empty file; expected a header {','.join(CSV_COLUMNS)}"
        )
    columns = [name.strip().lower() for name in header]
    for name in columns:
        if name not in CSV_COLUMNS:
            raise RateFileError(
                source, 1, name, f"unknown column; expected {','.join(CSV_COLUMNS)}"
            )
    for name in CSV_REQUIRED:
        if name not in columns:
            raise RateFileError(source, 1, name, "required column missing from the header")
    if len(set(columns)) != len(columns):
        raise RateFileError(source, 1, None, "a column is named twice")
    rows: list[RateRow] = []
    seen: dict[str, int] = {}
    for cells in reader:
        line = reader.line_num
        if not any(cell.strip() for cell in cells):
            continue
        if len(cells) != len(columns):
            raise RateFileError(
                source, line, None, f"{len(cells)} fields where the header has {len(columns)}"
            )
        values = {name: cell.strip() for name, cell in zip(columns, cells, strict=True)}
        row = _rate_row(values, source, line)
        if row.rate.prefix in seen:
            raise RateFileError(
                source, line, "prefix", f"{row.rate.prefix} already on line {seen[row.rate.prefix]}"
            )
        seen[row.rate.prefix] = line
        rows.append(row)
    return rows


def _rate_row(values: dict[str, str], source: str, line: int) -> RateRow:
    def cell(name: str) -> str:
        return values.get(name, "")

    def problem(name: str, text: str) -> RateFileError:
        return RateFileError(source, line, name, text)

    prefix = cell("prefix").removeprefix("+")
    if not numbers.is_digits(prefix) or len(prefix) > numbers.E164_MAX_DIGITS:
        raise problem("prefix", f"{cell('prefix')!r} is not 1-15 digits")

    def amount(name: str, default: str) -> Decimal:
        text = cell(name) or default
        try:
            value = parse_amount(text)
        except AmountError as exc:
            raise problem(name, str(exc)) from None
        if value >= MONEY_LIMIT:
            raise problem(name, f"{text!r} must be from 0 to {MONEY_LIMIT - MONEY_STEP}")
        if value != value.quantize(MONEY_STEP, rounding=decimal.ROUND_DOWN):
            raise problem(name, f"{text!r} has more than 4 decimal places")
        return money(value)

    def seconds(name: str, default: int, least: int) -> int:
        text = cell(name)
        if not text:
            return default
        if not numbers.is_digits(text) or int(text) < least or int(text) > 86400:
            raise problem(name, f"{text!r} is not a whole number of seconds from {least} to 86400")
        return int(text)

    if not cell("price_per_minute"):
        raise problem("price_per_minute", "is empty")
    rate = RateSnapshot(
        prefix=prefix,
        price_per_minute=amount("price_per_minute", "0"),
        connect_fee=amount("connect_fee", "0"),
        increment=seconds("increment", 60, 1),
        minimum=seconds("minimum", 60, 0),
    )
    try:
        description = text.one_line(cell("description"), "description", 128, required=False)
    except text.InvalidText as exc:
        raise problem("description", str(exc).removeprefix("description ")) from None
    return RateRow(rate=rate, description=description, line=line)
