"""Vouchers (prepaid cards): made in batches, stored as digests, redeemed once, locked out after
wrong codes; on SQLite and PostgreSQL, with the operator's `esl-callback voucher` commands."""

from __future__ import annotations

import csv
import json
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from billing_helpers import storm
from click.testing import CliRunner

from esl_callback import accounts, vouchers
from esl_callback.callback import billing
from esl_callback.cli import main
from esl_callback.config import Settings
from esl_callback.db import Database, utcnow
from esl_callback.models import Account, Payment, Voucher

SETTINGS = Settings.default().billing  # 5 wrong codes within an hour lock out


def test_a_code_tops_up_its_account_once_and_only_its_digest_is_stored(db: Database) -> None:
    alice = accounts.create_account("alice")
    batch, (code, other) = vouchers.create_batch(2, "10.00", "EUR")

    done = vouchers.redeem(alice.id, vouchers.readable(code), (), SETTINGS)

    assert (done.amount, done.currency, done.balance) == (Decimal("10"), "EUR", Decimal("10"))
    payment = Payment.get_by_id(done.payment_id)
    assert payment.reference == f"voucher {batch} #{Voucher.get(Voucher.payment == payment).id}"
    assert billing.audit(alice).balanced
    with pytest.raises(vouchers.Refused, match="used already"):
        vouchers.redeem(alice.id, code, (), SETTINGS)
    stored = [v.code_hash for v in Voucher.select()]
    assert code not in "".join(stored) and other not in "".join(stored)
    assert Account.get_by_id(alice.id).balance == Decimal("10")


@pytest.mark.parametrize(
    ("spoil", "message"),
    [
        (lambda v: Voucher.update(expires_at=utcnow() - timedelta(seconds=1)), "expired"),
        (lambda v: Voucher.update(voided_at=utcnow()), "no longer valid"),
        (lambda v: Voucher.update(currency="USD"), "in USD; your account is kept in EUR"),
    ],
    ids=["expired", "voided", "another currency"],
)
def test_a_voucher_that_cannot_be_used_is_refused_and_credits_nothing(
    db: Database, spoil, message: str
) -> None:
    alice = accounts.create_account("alice")
    _, (code,) = vouchers.create_batch(1, "5", "EUR")
    spoil(None).execute()

    with pytest.raises(vouchers.Refused, match=message):
        vouchers.redeem(alice.id, code, (), SETTINGS)

    assert Account.get_by_id(alice.id).balance == 0
    assert not Payment.select().exists()


def test_wrong_codes_lock_out_the_account_and_the_phone_they_came_from(db: Database) -> None:
    alice = accounts.create_account("alice")
    bob = accounts.create_account("bob")
    _, (code,) = vouchers.create_batch(1, "5", "EUR")
    for wrong in ["1" * 14, "2" * 14, "12", "not a code", "3" * 14]:
        with pytest.raises(vouchers.Refused) as refused:
            vouchers.redeem(alice.id, wrong, ("cid:4930111",), SETTINGS)
        assert refused.value.reason != "locked"

    with pytest.raises(vouchers.Refused, match="Too many wrong voucher codes"):
        vouchers.redeem(alice.id, code, (), SETTINGS)  # locked: even the right code
    with pytest.raises(vouchers.Refused, match="Too many"):
        vouchers.redeem(bob.id, code, ("cid:4930111",), SETTINGS)  # the same phone
    assert vouchers.redeem(bob.id, code, ("cid:4930222",), SETTINGS).amount == 5


def test_sessions_redeeming_one_code_at_once_get_exactly_one_payment(db: Database) -> None:
    owners = [accounts.create_account(f"user{n}") for n in range(6)]
    _, (code,) = vouchers.create_batch(1, "7.50", "EUR")
    db.close()

    results = storm(db.url, "redeem", [code], [str(owner.id) for owner in owners], 3)

    winners = [r for r in results if "payment" in r]
    assert len(winners) == 1, results
    assert {r["refused"] for r in results if "refused" in r} == {"used"}
    assert Payment.select().count() == 1
    assert sum(Account.get_by_id(o.id).balance for o in owners) == Decimal("7.5")


def test_the_operator_makes_a_batch_to_csv_lists_it_and_voids_it(
    db: Database, tmp_path: Path
) -> None:
    alice = accounts.create_account("alice")
    db.close()
    runner = CliRunner()

    def cli(*args: str):
        return runner.invoke(main, [*args, "--database", db.url], catch_exceptions=False)

    printed = cli("voucher", "create", "--count", "2", "--amount", "5", "--currency", "EUR")
    codes = printed.stdout.split("\n")[:2]
    assert printed.exit_code == 0 and all(len(c.replace(" ", "")) == 14 for c in codes)
    cards = tmp_path / "cards.csv"
    made = cli(
        "voucher", "create", "--count", "3", "--amount", "10", "--currency", "eur",
        "--expires", "2099-12-31", "--batch", "shop-42", "--csv", str(cards),
    )  # fmt: skip
    assert made.exit_code == 0, made.output
    assert cards.stat().st_mode & 0o777 == 0o600
    rows = list(csv.DictReader(cards.open()))
    assert [r["batch"] for r in rows] == ["shop-42"] * 3
    assert {r["expires"] for r in rows} == {"2099-12-31"}
    assert vouchers.redeem(alice.id, rows[0]["code"], (), SETTINGS).amount == 10

    listed = {b["batch"]: b for b in json.loads(cli("voucher", "list", "--json").stdout)}
    assert (listed["shop-42"]["vouchers"], listed["shop-42"]["redeemed"]) == (3, 1)
    assert cli("voucher", "void", "shop-42").stdout.strip() == "voided 2 vouchers of batch shop-42"
    with pytest.raises(vouchers.Refused, match="no longer valid"):
        vouchers.redeem(alice.id, rows[1]["code"], (), SETTINGS)
    again = cli("voucher", "create", "--count", "1", "--amount", "1", "--currency", "EUR",
                "--batch", "shop-42")  # fmt: skip
    assert again.exit_code == 1 and "exists already" in again.output
