"""`esl-callback rate|payment` and `account audit` on SQLite and PostgreSQL: output, exit codes."""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from esl_callback.cli import main
from esl_callback.cli.billing_cmd import AUDIT_MISMATCH_EXIT, audit_command
from esl_callback.db import Database
from esl_callback.models import Account

HEADER = "prefix,description,price_per_minute,connect_fee,increment,minimum\n"
Cli = Callable[..., Result]


@pytest.fixture
def cli(database_url: str) -> Cli:
    """Run a command against a freshly initialised database holding account alice."""
    runner = CliRunner()
    env = {"ESL_CALLBACK_DATABASE_URL": database_url}

    def run(*args: str, command=main) -> Result:
        return runner.invoke(command, list(args), env=env, catch_exceptions=False)

    assert run("db", "init").exit_code == 0
    assert run("account", "add", "alice").exit_code == 0
    return run


def rate_file(tmp_path: Path, body: str, name: str = "rates.csv") -> str:
    path = tmp_path / name
    path.write_text(HEADER + body, encoding="utf-8")
    return str(path)


def listed_rates(cli: Cli) -> dict[str, str]:
    result = cli("rate", "list", "--json")
    assert result.exit_code == 0
    return {r["prefix"]: r["price_per_minute"] for r in json.loads(result.stdout)}


def balance_of_alice(cli: Cli) -> Decimal:
    return Decimal(json.loads(cli("account", "show", "alice", "--json").stdout)["balance"])


def test_rate_import_adds_and_overwrites_and_replace_removes(cli: Cli, tmp_path: Path) -> None:
    first = cli("rate", "import", rate_file(tmp_path, "49,DE,0.02,0,60,60\n44,UK,0.03,,,\n"))
    assert first.exit_code == 0
    assert "imported 2 rates" in first.stdout and "2 new, 0 updated, 0 removed" in first.stdout
    update = rate_file(tmp_path, "49,DE,0.025,0,60,60\n4915,DE mobile,0.1,0.05,6,30\n", "u.csv")
    assert "1 new, 1 updated, 0 removed" in cli("rate", "import", update).stdout
    assert listed_rates(cli) == {"44": "0.0300", "49": "0.0250", "4915": "0.1000"}
    replaced = cli("rate", "import", "--replace", update)
    assert "0 new, 2 updated, 1 removed" in replaced.stdout
    assert listed_rates(cli) == {"49": "0.0250", "4915": "0.1000"}
    text = cli("rate", "list").stdout
    assert "4915" in text and "DE mobile" in text


def test_rate_list_labels_minimum_and_increment_in_the_carriers_order(
    cli: Cli, tmp_path: Path
) -> None:
    # Carrier "30/6": the first 30 s, then every started 6 s (columns increment,minimum).
    assert (
        cli("rate", "import", rate_file(tmp_path, "4915,DE mobile,0.09,0.01,6,30\n")).exit_code == 0
    )
    heading, row = cli("rate", "list").stdout.splitlines()
    assert heading.split()[4:6] == ["minimum", "increment"]
    assert row.split()[3:7] == ["30", "s", "6", "s"]
    help_text = " ".join(cli("rate", "import", "--help").stdout.split())
    assert 'carrier "30/6" (the first 30 s, then every started 6 s) is increment 6, minimum 30' in (
        help_text
    )


def test_replace_with_a_file_of_no_rates_is_refused_and_keeps_the_table(
    cli: Cli, tmp_path: Path
) -> None:
    assert cli("rate", "import", rate_file(tmp_path, "49,DE,0.02,0,60,60\n")).exit_code == 0
    empty = tmp_path / "header-only.csv"
    empty.write_text("prefix,price_per_minute\n", encoding="utf-8")
    result = cli("rate", "import", "--replace", str(empty))
    assert result.exit_code == 1
    assert "error: no rates to import" in result.stderr and "nothing changed" in result.stderr
    assert listed_rates(cli) == {"49": "0.0200"}


@pytest.mark.parametrize("price", ["1e3", "1_000", "\u0661\u0660", "Infinity", "+1"])
def test_a_rate_price_must_be_a_plain_decimal(cli: Cli, tmp_path: Path, price: str) -> None:
    result = cli("rate", "import", rate_file(tmp_path, f"49,DE,{price},0,60,60\n"))
    assert result.exit_code == 1
    assert "column price_per_minute" in result.stderr and "is not a decimal amount" in result.stderr
    assert listed_rates(cli) == {}


def test_a_bad_rate_file_imports_nothing_and_names_line_and_column(
    cli: Cli, tmp_path: Path
) -> None:
    assert cli("rate", "import", rate_file(tmp_path, "49,DE,0.02,0,60,60\n")).exit_code == 0
    bad = rate_file(tmp_path, "1,US,0.01,0,60,60\n33,FR,0,0,60,60\n34,ES,0.O1,0,60,60\n", "b.csv")
    result = cli("rate", "import", "--replace", bad)
    assert result.exit_code == 1
    assert f"{bad} line 4, column price_per_minute: '0.O1' is not a decimal amount" in (
        result.stderr
    )
    assert "nothing imported" in result.stderr
    assert listed_rates(cli) == {"49": "0.0200"}


def test_a_missing_rate_file_is_an_error(cli: Cli, tmp_path: Path) -> None:
    result = cli("rate", "import", str(tmp_path / "nope.csv"))
    assert result.exit_code == 1
    assert "cannot read" in result.stderr


def test_payment_add_credits_and_payment_list_shows_it(cli: Cli) -> None:
    added = cli("payment", "add", "alice", "12.50", "--reference", "receipt 1", "--json")
    assert added.exit_code == 0
    assert json.loads(added.stdout) | {"created_at": "-"} == {
        "id": 1,
        "account": "alice",
        "amount": "12.5000",
        "currency": "EUR",
        "reference": "receipt 1",
        "created_at": "-",
        "balance": "12.5000",
    }
    correction = cli("payment", "add", "--reference", "fix", "alice", "--", "-2.5")
    assert correction.exit_code == 0
    assert "balance 10.0000 EUR" in correction.stdout
    listed = json.loads(cli("payment", "list", "alice", "--json").stdout)
    assert [(p["amount"], p["reference"]) for p in listed] == [
        ("-2.5000", "fix"),
        ("12.5000", "receipt 1"),
    ]
    assert "receipt 1" in cli("payment", "list", "1").stdout  # by id too


@pytest.mark.parametrize(
    ("args", "exit_code", "message"),
    [
        (("payment", "add", "nobody", "5", "--reference", "r"), 1, "no account named 'nobody'"),
        (("payment", "add", "alice", "5.00001", "--reference", "r"), 1, "more than 4 decimal"),
        (("payment", "add", "alice", "five", "--reference", "r"), 1, "is not a decimal amount"),
        (("payment", "add", "alice", "1e3", "--reference", "r"), 1, "is not a decimal amount"),
        (("payment", "add", "alice", "1_000", "--reference", "r"), 1, "is not a decimal amount"),
        (("payment", "add", "alice", "\u0661\u0660", "--reference", "r"), 1, "digits 0-9"),
        (("payment", "add", "alice", "5"), 2, "Missing option '--reference'"),
        (("payment", "list", "nobody"), 1, "no account named 'nobody'"),
    ],
)
def test_payment_errors_exit_non_zero_with_the_reason(
    cli: Cli, args: tuple[str, ...], exit_code: int, message: str
) -> None:
    result = cli(*args)
    assert (result.exit_code, message in result.stderr) == (exit_code, True), result.output


def test_a_retried_payment_with_the_same_reference_credits_once(cli: Cli) -> None:
    assert cli("payment", "add", "alice", "10", "--reference", "receipt 7").exit_code == 0
    retried = cli("payment", "add", "alice", "10", "--reference", "receipt 7")
    assert retried.exit_code == 1
    assert "already has payment 1 with reference 'receipt 7'" in retried.stderr
    assert "nothing credited" in retried.stderr
    assert balance_of_alice(cli) == Decimal("10")
    # Meant as a second payment: the operator says so.
    again = ["payment", "add", "alice", "10", "--reference", "receipt 7"]
    assert cli(*again, "--allow-duplicate-reference").exit_code == 0
    assert balance_of_alice(cli) == Decimal("20")


def test_a_correction_below_zero_needs_allow_negative(cli: Cli) -> None:
    assert cli("payment", "add", "alice", "5", "--reference", "cash").exit_code == 0
    refused = cli("payment", "add", "--reference", "fix", "alice", "--", "-7.50")
    assert refused.exit_code == 1
    assert "would take the balance of alice to -2.5000 EUR" in refused.stderr
    assert "--allow-negative" in refused.stderr
    assert balance_of_alice(cli) == Decimal("5")
    booked = cli("payment", "add", "--allow-negative", "--reference", "fix", "alice", "--", "-7.50")
    assert booked.exit_code == 0 and "balance -2.5000 EUR" in booked.stdout


def test_audit_passes_then_reports_a_tampered_balance(cli: Cli, database_url: str) -> None:
    assert cli("payment", "add", "alice", "7", "--reference", "r").exit_code == 0
    ok = cli("alice", command=audit_command)
    assert ok.exit_code == 0
    assert "difference                0.0000  OK" in ok.stdout
    database = Database(database_url)
    try:
        Account.update(balance=Decimal("9")).where(Account.name == "alice").execute()
    finally:
        database.close()
    bad = cli("alice", "--json", command=audit_command)
    assert bad.exit_code == AUDIT_MISMATCH_EXIT == 3
    report = json.loads(bad.stdout)
    assert (report["expected_balance"], report["stored_balance"]) == ("7.0000", "9.0000")
    assert (report["difference"], report["balanced"]) == ("2.0000", False)
    assert cli("nobody", command=audit_command).exit_code == 1
