"""`esl-callback account|callerid|did|access|user`: manage accounts and their numbers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from esl_callback import accounts
from esl_callback.cli.billing_cmd import audit_command
from esl_callback.cli.common import PhoneNumber, emit, fail, json_option, with_database
from esl_callback.models import AccessNumber, Account, Did


class CallLimit(click.ParamType):
    """`--max-calls`: a number of calls, or `default` (accounts.DEFAULT_CALL_LIMIT)."""

    name = "limit"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> int | str:
        if isinstance(value, int):
            return value
        if value.strip().lower() == accounts.DEFAULT_CALL_LIMIT:
            return accounts.DEFAULT_CALL_LIMIT
        try:
            return int(value)
        except ValueError:
            self.fail(f"{value!r} is neither a number of calls nor 'default'", param, ctx)


def account_settings(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The options `account add` and `account set` share."""
    options = [
        click.option("--pin", help="PIN for PIN callbacks (4-12 digits; stored hashed)."),
        click.option("--currency", help="ISO currency code, e.g. EUR."),
        click.option(
            "--callback-number",
            "default_callback_number",
            type=PhoneNumber("callback number"),
            help="Default number.",
        ),
        click.option(
            "--callback-to-default/--callback-to-caller",
            default=None,
            help="Caller-ID callbacks ring the default number instead of the caller.",
        ),
        click.option(
            "--charge-leg-a/--no-charge-leg-a",
            default=None,
            help="Charge the callback leg (default: the global billing setting).",
        ),
        click.option(
            "--max-calls",
            "max_concurrent_calls",
            type=CallLimit(),
            metavar="N|default",
            help=(
                "Calls the account may have live at once; default: follow "
                "callback.max_concurrent_calls, as a new account does."
            ),
        ),
        click.option(
            "--any-source/--own-sources",
            "allow_any_source",
            default=None,
            help="Web callbacks may use any source number.",
        ),
        click.option(
            "--credit-limit",
            metavar="AMOUNT",
            help=(
                "How far below zero calls may take the balance (default 0: calls stop at "
                "zero); e.g. 20.00 for a postpaid customer."
            ),
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


@click.group("account")
def account_group() -> None:
    """Prepaid accounts."""


@account_group.command("add")
@click.argument("name")
@account_settings
@json_option
@with_database(accounts.AccountError)
def account_add(name: str, as_json: bool, **settings: Any) -> None:
    """Create an account NAME."""
    account = accounts.create_account(name, **{k: v for k, v in settings.items() if v is not None})
    emit(accounts.describe(account), as_json, f"created account {account.name} (id {account.id})")


@account_group.command("list")
@json_option
@with_database(accounts.AccountError)
def account_list(as_json: bool) -> None:
    """List all accounts."""
    rows = [accounts.describe(a) for a in Account.select().order_by(Account.name)]
    lines = [
        f"{r['id']:>5}  {r['name']:<24} {r['status']:<9} {r['balance']:>12} {r['currency']}"
        for r in rows
    ]
    emit(rows, as_json, "\n".join(lines) or "no accounts")


@account_group.command("show")
@click.argument("account")
@json_option
@with_database(accounts.AccountError)
def account_show(account: str, as_json: bool) -> None:
    """Show one account (by name or id)."""
    data = accounts.describe(accounts.find_account(account))
    emit(
        data, as_json, "\n".join(f"{key}: {for_people(key, value)}" for key, value in data.items())
    )


# Account settings that, when not set (None), follow a global setting.
FOLLOWS_GLOBAL = {
    "max_concurrent_calls": "callback.max_concurrent_calls",
    "charge_leg_a": "billing.charge_leg_a",
}


def for_people(key: str, value: Any) -> str:
    """A value of `account show` as an operator reads it (not as a Python literal)."""
    if value is None and key in FOLLOWS_GLOBAL:
        return f"default ({FOLLOWS_GLOBAL[key]})"
    if value is None or value == []:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(str(item) for item in value)
    return str(value)


@account_group.command("set")
@click.argument("account")
@account_settings
@click.option("--status", type=click.Choice(Account.STATUSES))
@json_option
@with_database(accounts.AccountError)
def account_set(account: str, as_json: bool, **settings: Any) -> None:
    """Change an account's settings."""
    if all(value is None for value in settings.values()):
        fail("nothing to change; see `esl-callback account set --help`")
    updated = accounts.update_account(accounts.find_account(account), **settings)
    emit(accounts.describe(updated), as_json, f"updated account {updated.name}")


@account_group.command("disable")
@click.argument("account")
@with_database(accounts.AccountError)
def account_disable(account: str) -> None:
    """Disable an account: its callbacks are refused from now on."""
    disabled = accounts.update_account(accounts.find_account(account), status=Account.DISABLED)
    click.echo(f"disabled account {disabled.name}")


account_group.add_command(audit_command, "audit")


@click.group("callerid")
def callerid_group() -> None:
    """Numbers that belong to an account (caller-ID callbacks, web sources, SMS)."""


@callerid_group.command("add")
@click.argument("account")
@click.argument("number", type=PhoneNumber("caller ID"))
@with_database(accounts.AccountError)
def callerid_add(account: str, number: str) -> None:
    """Register NUMBER as a caller ID of ACCOUNT."""
    caller_id = accounts.add_caller_id(accounts.find_account(account), number)
    click.echo(f"{caller_id.number} now belongs to {caller_id.account.name}")


@callerid_group.command("remove")
@click.argument("number", type=PhoneNumber("caller ID"))
@with_database(accounts.AccountError)
def callerid_remove(number: str) -> None:
    """Remove a registered caller ID."""
    account = accounts.remove_caller_id(number)
    click.echo(f"removed {number} from {account.name}")


@click.group("did")
def did_group() -> None:
    """Personal DIDs: a call to one calls back its account's predefined number."""


@did_group.command("add")
@click.argument("number", type=PhoneNumber("DID"))
@click.argument("account")
@click.option(
    "--callback-number",
    type=PhoneNumber("callback number"),
    help="Number to call back (default: the account's default).",
)
@with_database(accounts.AccountError)
def did_add(number: str, account: str, callback_number: str | None) -> None:
    """Assign DID NUMBER to ACCOUNT."""
    did = accounts.add_did(number, accounts.find_account(account), callback_number)
    click.echo(f"DID {did.number} -> {did.account.name}")


@did_group.command("remove")
@click.argument("number", type=PhoneNumber("DID"))
@with_database(accounts.AccountError)
def did_remove(number: str) -> None:
    """Unassign a DID."""
    accounts.remove_did(number)
    click.echo(f"removed DID {number}")


@did_group.command("list")
@json_option
@with_database(accounts.AccountError)
def did_list(as_json: bool) -> None:
    """List personal DIDs."""
    rows = [
        {"number": d.number, "account": d.account.name, "callback_number": d.callback_number}
        for d in Did.select(Did, Account).join(Account).order_by(Did.number)
    ]
    lines = [f"{r['number']:<16} {r['account']:<24} {r['callback_number'] or '-'}" for r in rows]
    emit(rows, as_json, "\n".join(lines) or "no DIDs")


@click.group("access")
def access_group() -> None:
    """Shared access numbers and how their callers are identified (pin or ani)."""


@access_group.command("add")
@click.argument("number", type=PhoneNumber("access number"))
@click.argument("method", type=click.Choice(AccessNumber.METHODS))
@click.option("--description", default="")
@with_database(accounts.AccountError)
def access_add(number: str, method: str, description: str) -> None:
    """Declare access NUMBER with METHOD pin or ani."""
    access = accounts.add_access_number(number, method, description)
    click.echo(f"access number {access.number} ({access.method})")


@access_group.command("list")
@json_option
@with_database(accounts.AccountError)
def access_list(as_json: bool) -> None:
    """List access numbers."""
    rows = [
        {"number": a.number, "method": a.method, "description": a.description}
        for a in AccessNumber.select().order_by(AccessNumber.number)
    ]
    lines = [f"{r['number']:<16} {r['method']:<4} {r['description']}" for r in rows]
    emit(rows, as_json, "\n".join(lines) or "no access numbers")


@access_group.command("remove")
@click.argument("number", type=PhoneNumber("access number"))
@with_database(accounts.AccountError)
def access_remove(number: str) -> None:
    """Remove an access number."""
    accounts.remove_access_number(number)
    click.echo(f"removed access number {number}")


@click.group("user")
def user_group() -> None:
    """Web portal logins."""


@user_group.command("add")
@click.argument("account")
@click.argument("username")
@click.password_option(help="Password (asked for when not given; at least 8 characters).")
@with_database(accounts.AccountError)
def user_add(account: str, username: str, password: str) -> None:
    """Create a web login USERNAME for ACCOUNT."""
    user = accounts.add_web_user(accounts.find_account(account), username, password)
    click.echo(f"web user {user.username} for {user.account.name}")


COMMANDS = [account_group, callerid_group, did_group, access_group, user_group]
