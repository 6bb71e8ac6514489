"""Options and helpers shared by the CLI commands."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click
import peewee

from esl_callback import numbers
from esl_callback.config import ConfigError, load_config
from esl_callback.db import Database, DatabaseError, in_words, masked_url

DEFAULT_DATABASE_URL = "sqlite:///esl-callback.db"
# ctx.meta key: the `numbers` rules of the configuration given with `-c` (see PhoneNumber).
NUMBER_RULES = "esl_callback.number_rules"
# ctx.meta key: the `billing` section of the configuration given with `-c`.
BILLING = "esl_callback.billing"
F = TypeVar("F", bound=Callable[..., object])


def database_option(fn: F) -> F:
    """`--database URL`, else env ESL_CALLBACK_DATABASE_URL, else `database.url` of the
    configuration file given with `-c` (the one serve runs with), else sqlite:///esl-callback.db.
    """
    database = click.option(
        "--database",
        "database_url",
        envvar="ESL_CALLBACK_DATABASE_URL",
        default=DEFAULT_DATABASE_URL,
        show_default=True,
        help="Database URL: sqlite:///FILE or postgresql://USER@HOST/DB.",
    )
    config = click.option(
        "-c",
        "--config",
        type=click.Path(dir_okay=False),
        is_eager=True,
        expose_value=False,
        callback=_database_from_config,
        help=(
            "The configuration serve runs with: its database.url, and its numbers section "
            "to normalise the numbers given here."
        ),
    )
    return config(database(fn))


def _database_from_config(ctx: click.Context, _param: click.Parameter, path: str | None) -> None:
    if path is None:
        return
    try:
        settings = load_config(path)
    except ConfigError as error:
        message = str(error)
        fail(message if path in message else f"{path}: {message}")
    ctx.default_map = {**(ctx.default_map or {}), "database_url": settings.database.url}
    ctx.meta[NUMBER_RULES] = settings.numbers
    ctx.meta[BILLING] = settings.billing


class PhoneNumber(click.ParamType):
    """A phone number argument or option, as serve will see it.

    With `-c CONFIG` (an eager option, so read first) the number is normalised with that
    configuration's `numbers` rules: 0301234 becomes 49301234 with country_code 49. Without,
    it is passed on as typed and `accounts.number` takes only international numbers.
    """

    name = "number"

    def __init__(self, what: str) -> None:
        self.what = what

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        rules = ctx.meta.get(NUMBER_RULES) if ctx is not None else None
        if rules is None:
            return value
        try:
            return numbers.normalise(value, rules, what=self.what, allow_formatting=True)
        except numbers.InvalidNumber as exc:
            fail(str(exc))


def config_option(help: str) -> Callable[[F], F]:
    """`-c/--config FILE` (passed as `config_path`); `help` says what the command reads there."""
    return click.option("-c", "--config", "config_path", type=click.Path(dir_okay=False), help=help)


def json_option(fn: F) -> F:
    """`--json`: machine-readable output."""
    return click.option("--json", "as_json", is_flag=True, help="Print JSON.")(fn)


def fail(message: str) -> NoReturn:
    """Print an error for the operator and exit 1."""
    click.echo(f"error: {message}", err=True)
    sys.exit(1)


def open_database(url: str, *, initialise: bool = False, create: bool = False) -> Database:
    """Open the database, or explain what is wrong and exit 1.

    Commands other than `db init` require an initialised schema at the current version, and
    only `db init` (`create`) makes a new SQLite file: a mistyped path is an error, not an
    empty file left behind.
    """
    with database_errors(masked_url(url)):
        database = Database(url)
        path = database.peewee.database
        if database.is_sqlite and not create and not Path(path).exists():
            fail(f"no database file {path}; create it with `esl-callback db init`")
        database.check()
        version = database.schema_version()
    if initialise:
        return database
    if version is None:
        fail(f"{database.display_url} is not initialised; run `esl-callback db init` first")
    database.peewee.connect(reuse_if_open=True)
    return database


@contextmanager
def database_errors(url: str) -> Iterator[None]:
    """Turn what a database refuses inside the block into an explanation and exit 1: a
    DatabaseError says it itself; a driver error (not a database file, read-only, ...) is
    explained for `url`, given with its password masked."""
    try:
        yield
    except DatabaseError as exc:
        fail(str(exc))
    except peewee.DatabaseError as exc:
        problem = in_words(exc)
        hint = "check the URL and that this user may read and write it"
        if "not a database" in problem:
            hint = "is the URL right? it must name an esl-callback SQLite file"
        elif "readonly" in problem or "read-only" in problem:
            hint = "the file (and its directory) must be writable by this user"
        fail(f"database {url}: {problem}; {hint}")


def emit(obj: object, as_json: bool, text: str | None = None) -> None:
    """Print `obj` as JSON when asked, else `text` (or str(obj))."""
    if as_json:
        click.echo(json.dumps(obj, indent=2, default=str, sort_keys=True))
    else:
        click.echo(text if text is not None else str(obj))


def with_database(*errors: type[Exception]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Give a command `--database`, open it around the command, turn `errors` into exit 1."""

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        @database_option
        @wraps(fn)
        def wrapper(database_url: str, **kwargs: Any) -> Any:
            database = open_database(database_url)
            try:
                with database_errors(database.display_url):
                    return fn(**kwargs)
            except errors as exc:
                fail(str(exc))
            finally:
                database.close()

        return wrapper

    return decorate
