"""Options and helpers shared by the CLI commands."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from functools import wraps
from typing import Any, NoReturn, TypeVar

import click

from esl_callback.config import ConfigError, load_config
from esl_callback.db import Database, DatabaseError

DEFAULT_DATABASE_URL = "sqlite:///esl-callback.db"
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
        help="Take the database from this configuration file (database.url).",
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


def open_database(url: str, *, initialise: bool = False) -> Database:
    """Open the database, or explain what is wrong and exit 1.

    Commands other than `db init` require an initialised schema at the current version.
    """
    try:
        database = Database(url)
        database.check()
        if initialise:
            return database
        version = database.schema_version()
    except DatabaseError as exc:
        fail(str(exc))
    if version is None:
        fail(f"{database.display_url} is not initialised; run `esl-callback db init` first")
    database.peewee.connect(reuse_if_open=True)
    return database


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
                return fn(**kwargs)
            except errors as exc:
                fail(str(exc))
            finally:
                database.close()

        return wrapper

    return decorate
