"""Operator CLI for accounts and numbers: real database files, real exit codes."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from esl_callback.cli import main


@pytest.fixture
def cli(tmp_path: Path):
    """Run `esl-callback ...` against a fresh, initialised SQLite file."""
    runner = CliRunner()
    env = {"ESL_CALLBACK_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}"}

    def run(*args: str):
        return runner.invoke(main, list(args), env=env, catch_exceptions=False)

    assert run("db", "init").exit_code == 0
    return run


def test_commands_refuse_an_uninitialised_database(tmp_path: Path) -> None:
    (tmp_path / "empty.db").touch()
    result = CliRunner().invoke(
        main, ["account", "list", "--database", f"sqlite:///{tmp_path / 'empty.db'}"]
    )
    assert result.exit_code == 1
    assert "run `esl-callback db init` first" in result.output


@pytest.mark.parametrize("command", [("account", "list"), ("db", "version"), ("db", "upgrade")])
def test_a_mistyped_database_file_is_an_error_and_no_file_is_left(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    missing = tmp_path / "typo.db"
    result = CliRunner().invoke(main, [*command, "--database", f"sqlite:///{missing}"])
    assert result.exit_code == 1
    assert f"no database file {missing}; create it with `esl-callback db init`" in result.output
    assert not missing.exists()


def test_account_lifecycle_with_numbers(cli) -> None:
    assert (
        cli("account", "add", "alice", "--pin", "4711", "--callback-number", "+4930111").exit_code
        == 0
    )
    assert cli("callerid", "add", "alice", "+49 170 2222").exit_code == 0
    assert cli("did", "add", "4930999", "alice").exit_code == 0
    assert cli("access", "add", "4930100", "pin").exit_code == 0
    shown = json.loads(cli("account", "show", "alice", "--json").output)
    assert shown["caller_ids"] == ["491702222", "4930111"]
    assert shown["dids"] == ["4930999"]
    assert shown["has_pin"] is True
    assert cli("account", "disable", "alice").exit_code == 0
    assert json.loads(cli("account", "show", "alice", "--json").output)["status"] == "disabled"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("account", "show", "nobody"), "no account named 'nobody'"),
        (("account", "add", "bob", "--pin", "12"), "PIN must be 4 to 12 digits"),
        (("callerid", "add", "alice", "123&park()"), "'&' in it, which is not a digit"),
        (("did", "add", "4930999", "alice"), "already assigned"),
        (("access", "add", "4930999", "pin"), "already a personal DID"),
        (("callerid", "remove", "4930111"), "default callback number of alice"),
        (("account", "set", "alice"), "nothing to change"),
        (("user", "add", "alice", "web", "--password", "short"), "at least 8 characters"),
    ],
)
def test_refusals_explain_themselves_and_exit_1(cli, args, message) -> None:
    cli("account", "add", "alice", "--callback-number", "4930111")
    cli("did", "add", "4930999", "alice")
    result = cli(*args)
    assert result.exit_code == 1
    assert message in result.output


def test_python_dash_m_runs_the_cli_with_real_exit_codes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    base = [sys.executable, "-m", "esl_callback"]
    assert subprocess.run([*base, "db", "init", "--database", url]).returncode == 0
    bad = subprocess.run(
        [*base, "account", "show", "ghost", "--database", url], capture_output=True, text=True
    )
    assert bad.returncode == 1
    assert "no account named 'ghost'" in bad.stderr


def test_commands_take_the_database_from_the_configuration_serve_runs_with(
    tmp_path: Path,
) -> None:
    runner = CliRunner()
    served, other = tmp_path / "served.db", tmp_path / "other.db"
    config = tmp_path / "config.yaml"
    config.write_text(f"database:\n  url: sqlite:///{served}\n")
    for db in (served, other):
        assert runner.invoke(main, ["db", "init", "--database", f"sqlite:///{db}"]).exit_code == 0
    assert runner.invoke(main, ["account", "add", "alice", "-c", str(config)]).exit_code == 0

    listed = runner.invoke(main, ["account", "list", "--json", "-c", str(config)])
    assert [a["name"] for a in json.loads(listed.output)] == ["alice"]
    # An explicit --database still wins over the file.
    elsewhere = ["account", "list", "--json", "-c", str(config), "--database", f"sqlite:///{other}"]
    assert json.loads(runner.invoke(main, elsewhere).output) == []


def test_a_bad_configuration_file_is_reported_with_its_key(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("database:\n  url: mysql://nope\n")
    result = CliRunner().invoke(main, ["account", "list", "-c", str(config)])
    assert result.exit_code == 1
    assert "database.url" in result.output and "(line 2)" in result.output


def test_with_a_configuration_numbers_are_stored_as_serve_normalises_them(
    tmp_path: Path,
) -> None:
    runner = CliRunner()
    config = tmp_path / "serve.yaml"
    config.write_text(
        f"database:\n  url: sqlite:///{tmp_path / 'n.db'}\n"
        'numbers:\n  country_code: "1"\n  national_prefix: "0"\n'
    )

    def run(*args: str):
        return runner.invoke(main, [*args, "-c", str(config)], catch_exceptions=False)

    assert run("db", "init").exit_code == 0
    assert run("account", "add", "natacct", "--callback-number", "0155500099").exit_code == 0
    assert run("callerid", "add", "natacct", "0155500077").exit_code == 0
    assert (
        run("did", "add", "0188800011", "natacct", "--callback-number", "0155500077").exit_code == 0
    )
    assert run("access", "add", "0180055501", "pin").exit_code == 0

    shown = json.loads(run("account", "show", "natacct", "--json").output)
    assert shown["default_callback_number"] == "1155500099"
    assert shown["caller_ids"] == ["1155500077", "1155500099"]
    assert shown["dids"] == ["1188800011"]
    dids = json.loads(run("did", "list", "--json").output)
    assert dids[0]["callback_number"] == "1155500077"
    assert json.loads(run("access", "list", "--json").output)[0]["number"] == "1180055501"
    # The same national form finds them again.
    assert run("did", "remove", "0188800011").exit_code == 0
    assert run("access", "remove", "0180055501").exit_code == 0
    removed = run("callerid", "remove", "0155500077")
    assert removed.exit_code == 0 and "removed 1155500077" in removed.output


def test_a_number_the_configuration_rules_refuse_is_an_error_not_a_usage_message(
    tmp_path: Path,
) -> None:
    config = tmp_path / "serve.yaml"
    config.write_text(
        f"database:\n  url: sqlite:///{tmp_path / 'n.db'}\nnumbers:\n  min_length: 7\n"
    )
    result = CliRunner().invoke(main, ["callerid", "add", "alice", "0123", "-c", str(config)])
    assert result.exit_code == 1
    assert "error: The caller ID is too short: 1123 has 4 digits" in result.output


@pytest.mark.parametrize(
    "args",
    [
        ("callerid", "add", "alice", "030 1234567"),
        ("did", "add", "0301234567", "alice"),
        ("access", "add", "0301234567", "ani"),
        ("account", "set", "alice", "--callback-number", "0301234567"),
    ],
)
def test_without_a_country_code_a_national_number_is_refused(cli, args) -> None:
    cli("account", "add", "alice", "--callback-number", "4930111")
    result = cli(*args)
    assert result.exit_code == 1
    assert "in national form" in result.output
    assert "international form" in result.output and "-c CONFIG" in result.output
    shown = json.loads(cli("account", "show", "alice", "--json").output)
    assert shown["caller_ids"] == ["4930111"] and shown["dids"] == []
    # The international prefix 00 is not a national prefix.
    assert cli("callerid", "add", "alice", "0049 170 1234567").exit_code == 0


@pytest.mark.parametrize(
    ("args", "what"),
    [
        (("account", "add", "x\ny"), "account name"),
        (("account", "add", "nul\x01x"), "account name"),
        (("user", "add", "alice", "we\x1b[2Jb", "--password", "long enough"), "username"),
        (("access", "add", "4930888", "pin", "--description", "line\rbreak"), "description"),
        (("payment", "add", "alice", "5", "--reference", "ref\u2028two"), "reference"),
    ],
)
def test_text_with_control_characters_is_refused_and_nothing_is_stored(cli, args, what) -> None:
    cli("account", "add", "alice")
    before = cli("account", "list", "--json").output, cli("access", "list", "--json").output
    result = cli(*args)
    assert result.exit_code == 1
    assert f"{what} must be one line of printable text" in result.output.lower()
    assert (cli("account", "list", "--json").output, cli("access", "list", "--json").output) == (
        before
    )


def test_an_accounts_currency_changes_only_while_it_has_no_money_and_no_calls(cli) -> None:
    cli("account", "add", "alice")
    assert cli("account", "set", "alice", "--currency", "usd").exit_code == 0
    assert cli("payment", "add", "alice", "5", "--reference", "voucher 1").exit_code == 0
    result = cli("account", "set", "alice", "--currency", "EUR")
    assert result.exit_code == 1
    assert "has a balance, payments or calls in USD" in result.output
    shown = json.loads(cli("account", "show", "alice", "--json").output)
    assert (shown["currency"], shown["balance"]) == ("USD", "5.0000")


def test_account_show_reads_as_text_for_an_operator(cli) -> None:
    cli("account", "add", "alice", "--callback-number", "+4930111", "--charge-leg-a")
    cli("callerid", "add", "alice", "+4930222")
    shown = cli("account", "show", "alice").output.splitlines()
    assert "caller_ids: 4930111, 4930222" in shown
    assert "charge_leg_a: yes" in shown
    assert "has_pin: no" in shown
    assert "max_concurrent_calls: default (callback.max_concurrent_calls)" in shown
    assert "balance: 0.0000" in shown


def test_an_accounts_own_call_limit_can_be_reset_to_the_global_default(cli) -> None:
    cli("account", "add", "alice", "--max-calls", "3")
    assert json.loads(cli("account", "show", "alice", "--json").output)["max_concurrent_calls"] == 3

    assert cli("account", "set", "alice", "--max-calls", "default").exit_code == 0

    assert (
        json.loads(cli("account", "show", "alice", "--json").output)["max_concurrent_calls"] is None
    )
    shown = cli("account", "show", "alice").output.splitlines()
    assert "max_concurrent_calls: default (callback.max_concurrent_calls)" in shown


def test_a_call_limit_that_is_neither_a_number_nor_default_is_a_usage_error(cli) -> None:
    cli("account", "add", "alice", "--max-calls", "3")
    result = cli("account", "set", "alice", "--max-calls", "unlimited")
    assert result.exit_code == 2
    assert "'unlimited' is neither a number of calls nor 'default'" in result.output
    assert json.loads(cli("account", "show", "alice", "--json").output)["max_concurrent_calls"] == 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("account", "add", "ALICE"), "account 'alice' already exists"),
        (("user", "add", "alice", "Alice", "--password", "long enough"), "user 'alice' already"),
    ],
)
def test_names_told_apart_by_case_alone_are_refused(cli, args, message) -> None:
    cli("account", "add", "alice")
    assert cli("user", "add", "alice", "alice", "--password", "long enough").exit_code == 0
    result = cli(*args)
    assert result.exit_code == 1
    assert message in result.output
