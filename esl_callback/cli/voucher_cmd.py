"""`esl-callback voucher`: batches of prepaid cards (vouchers)."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta
from pathlib import Path

import click

from esl_callback import vouchers
from esl_callback.cli.common import emit, fail, json_option, with_database
from esl_callback.db import utcnow


@click.group("voucher")
def voucher_group() -> None:
    """Prepaid cards: codes customers redeem in the portal, by SMS (TOPUP CODE) or in the IVR."""


@voucher_group.command("create")
@click.option("--count", type=click.IntRange(1, vouchers.MAX_BATCH), required=True)
@click.option("--amount", required=True, help="What each is worth, e.g. 10.00.")
@click.option("--currency", required=True, help="ISO code, e.g. EUR (the accounts' currency).")
@click.option(
    "--expires",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    help="Last day it can be redeemed (UTC), e.g. 2027-12-31.",
)
@click.option("--batch", help="A name for the batch (default: the date and a random tag).")
@click.option(
    "--csv",
    "csv_path",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Write the codes to this CSV file (for the printer) instead of the screen.",
)
@with_database(vouchers.VoucherError)
def voucher_create(
    count: int,
    amount: str,
    currency: str,
    expires: datetime | None,
    batch: str | None,
    csv_path: Path | None,
) -> None:
    """Make COUNT vouchers worth AMOUNT CURRENCY each and print their codes.

    The codes are shown only now (only a keyed digest of each is stored): print them, or keep
    the CSV file safe. Each is redeemed once, by an account kept in CURRENCY, before it expires.
    """
    expires_at = expires + timedelta(days=1) if expires is not None else None
    if expires_at is not None and expires_at <= utcnow():
        fail(f"--expires {expires:%Y-%m-%d} is already past")
    name, codes = vouchers.create_batch(count, amount, currency, batch=batch, expires_at=expires_at)
    rows = [
        {
            "code": vouchers.readable(code),
            "amount": amount,
            "currency": currency.upper(),
            "expires": f"{expires:%Y-%m-%d}" if expires else "",
            "batch": name,
        }
        for code in codes
    ]
    if csv_path is None:
        click.echo("\n".join(row["code"] for row in rows))
        click.echo(f"batch {name}: {count} vouchers of {amount} {currency.upper()}", err=True)
        return
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    try:
        csv_path.write_text(text.getvalue(), encoding="utf-8")
        csv_path.chmod(0o600)
    except OSError as exc:
        fail(
            f"cannot write {csv_path}: {exc}; the batch {name} exists: void it with "
            f"`esl-callback voucher void {name}` and make another"
        )
    click.echo(f"batch {name}: {count} vouchers of {amount} {currency.upper()} in {csv_path}")


@voucher_group.command("list")
@json_option
@with_database(vouchers.VoucherError)
def voucher_list(as_json: bool) -> None:
    """Batches with how many of their vouchers are redeemed, voided and expired."""
    rows = vouchers.batches()
    lines = [
        f"{r['batch']:<28} {r['vouchers']:>6} x {r['amount']:>10} {r['currency']}  "
        f"redeemed {r['redeemed']}, voided {r['voided']}, expired {r['expired']}"
        + (f", until {r['expires_at'][:10]}" if r["expires_at"] else "")
        for r in rows
    ]
    emit(rows, as_json, "\n".join(lines) or "no vouchers")


@voucher_group.command("void")
@click.argument("batch")
@with_database(vouchers.VoucherError)
def voucher_void(batch: str) -> None:
    """Make BATCH's vouchers not redeemed yet unusable (cards lost or stolen)."""
    voided = vouchers.void_batch(batch)
    if not voided:
        fail(f"no voucher of batch {batch!r} is left to void (see `esl-callback voucher list`)")
    click.echo(f"voided {voided} vouchers of batch {batch}")


COMMANDS = [voucher_group]
