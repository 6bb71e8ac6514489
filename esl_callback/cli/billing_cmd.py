"""`esl-callback rate|payment` and `account audit`: the rate table, payments, reconciliation."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from esl_callback.accounts import AccountError, find_account
from esl_callback.callback import billing
from esl_callback.callback.rating import CSV_COLUMNS, RateFileError, money, parse_rate_csv
from esl_callback.cli.common import emit, fail, json_option, with_database
from esl_callback.models import Payment

# `account audit` exit status when the stored balance differs from payments - debits.
AUDIT_MISMATCH_EXIT = 3

with_billing_database = with_database(billing.BillingError, AccountError)


@click.group("rate")
def rate_group() -> None:
    """The rate table: price per destination prefix (longest prefix wins)."""


RATE_IMPORT_HELP = f"""Import rates from FILE.csv: all of its rows or, on any error, none.

\b
The first row names the columns (any order): {",".join(CSV_COLUMNS)}
  e.g.  4930,Germany Berlin,0.0150,0,60,60
prefix: E.164 digits. price_per_minute, connect_fee: plain decimal amounts
(digits and a point, e.g. 0.0150), at most 4 decimals.
minimum: seconds billed for any answered call; increment: seconds billed after
the minimum, per started step. Carriers write minimum/increment: carrier "30/6"
(the first 30 s, then every started 6 s) is increment 6, minimum 30, i.e. the
row ...,6,30 with the columns above. 60,60 charges every started minute, 1,1
the second. Only prefix and price_per_minute are required (defaults "", 0, 60, 60).

Known prefixes are overwritten and the others kept, unless --replace (which
refuses a file with no rates).
"""


@rate_group.command("import", help=RATE_IMPORT_HELP)
@click.argument("csv_file", metavar="FILE.csv", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--replace", is_flag=True, help="Replace the whole table with the file's rates.")
@with_billing_database
def rate_import(csv_file: Path, replace: bool) -> None:
    try:
        text = csv_file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"cannot read {csv_file}: {exc}")
    try:
        rows = parse_rate_csv(text, source=str(csv_file))
    except RateFileError as exc:
        fail(f"{exc}; nothing imported")
    done = billing.import_rates(rows, replace=replace)
    click.echo(
        f"imported {len(rows)} rates from {csv_file}: {done.created} new, "
        f"{done.updated} updated, {done.removed} removed"
    )


# `rate list`: minimum before increment, as carriers write it ("30/6"), each column labelled.
RATE_HEADINGS = ("prefix", "price/min", "connect fee", "minimum", "increment", "description")
RATE_LINE = "{:<16} {:>10} {:>11} {:>8} {:>9}  {}"


@rate_group.command("list")
@json_option
@with_billing_database
def rate_list(as_json: bool) -> None:
    """List the rate table."""
    rows = [billing.describe_rate(rate) for rate in billing.list_rates()]
    lines = [RATE_LINE.format(*RATE_HEADINGS)] + [
        RATE_LINE.format(
            r["prefix"],
            r["price_per_minute"],
            r["connect_fee"],
            f"{r['minimum']} s",
            f"{r['increment']} s",
            r["description"],
        )
        for r in rows
    ]
    emit(rows, as_json, "\n".join(lines) if rows else "no rates")


@click.group("payment")
def payment_group() -> None:
    """Payments: credits to an account's balance."""


@payment_group.command("add")
@click.argument("account")
@click.argument("amount")
@click.option(
    "--reference",
    required=True,
    help="Where the money came from (receipt, invoice); one payment per reference and account.",
)
@click.option(
    "--allow-negative",
    is_flag=True,
    help="Book a correction even though it takes the balance below zero.",
)
@click.option(
    "--allow-duplicate-reference",
    is_flag=True,
    help="Book it even though the account already has a payment with this reference.",
)
@json_option
@with_billing_database
def payment_add(
    account: str,
    amount: str,
    reference: str,
    allow_negative: bool,
    allow_duplicate_reference: bool,
    as_json: bool,
) -> None:
    """Credit AMOUNT (a plain decimal such as 12.50) to ACCOUNT (name or id).

    A correction is a negative amount, after `--`: payment add --reference R ACCOUNT -- -5.00
    A reference the account already has is refused, so a retried command does not credit twice.
    """
    payment = billing.add_payment(
        find_account(account),
        amount,
        reference,
        allow_negative=allow_negative,
        allow_duplicate_reference=allow_duplicate_reference,
    )
    data = {**describe_payment(payment), "balance": str(money(payment.account.balance))}
    emit(
        data,
        as_json,
        f"payment {data['id']}: {data['amount']} {data['currency']} to {data['account']} "
        f"({reference}); balance {data['balance']} {data['currency']}",
    )


@payment_group.command("list")
@click.argument("account")
@json_option
@with_billing_database
def payment_list(account: str, as_json: bool) -> None:
    """List the payments of ACCOUNT (name or id), newest first."""
    rows = [describe_payment(p) for p in billing.payments_of(find_account(account))]
    lines = [
        f"{r['created_at']}  {r['amount']:>14} {r['currency']}  {r['reference']}" for r in rows
    ]
    emit(rows, as_json, "\n".join(lines) or "no payments")


@click.command("audit")
@click.argument("account")
@json_option
@with_billing_database
def audit_command(account: str, as_json: bool) -> None:
    """Check that ACCOUNT's balance equals its payments minus its billed calls.

    Exit status 0 when it does, 3 when there is a difference, 1 on errors.
    """
    result = billing.audit(find_account(account))
    lines = [
        f"account {result.account} (id {result.account_id}), {result.currency}",
        f"payments          {result.payments:>14}",
        f"debits            {result.debits:>14}",
        f"expected balance  {result.expected_balance:>14}",
        f"stored balance    {result.stored_balance:>14}",
        f"difference        {result.difference:>14}  {'OK' if result.balanced else 'MISMATCH'}",
        f"held by live calls{result.reserved:>14}",
    ]
    emit(result.as_dict(), as_json, "\n".join(lines))
    if not result.balanced:
        sys.exit(AUDIT_MISMATCH_EXIT)


def describe_payment(payment: Payment) -> dict[str, Any]:
    account = payment.account
    return {
        "id": payment.id,
        "account": account.name,
        "amount": str(money(payment.amount)),
        "currency": account.currency,
        "reference": payment.reference,
        "created_at": payment.created_at.isoformat(sep=" ", timespec="seconds"),
    }


COMMANDS = [rate_group, payment_group]
