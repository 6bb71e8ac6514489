"""`esl-callback db`: create and upgrade the schema."""

from __future__ import annotations

import click

from esl_callback.cli.common import database_errors, database_option, open_database
from esl_callback.db import latest_version


@click.group("db")
def db_group() -> None:
    """Create, upgrade and inspect the database schema."""


@db_group.command("init")
@database_option
def init(database_url: str) -> None:
    """Create the schema (an existing database is upgraded instead; safe to repeat)."""
    run_schema_step(database_url, "init")


@db_group.command("upgrade")
@database_option
def upgrade(database_url: str) -> None:
    """Apply the schema migrations this version needs; keeps every row."""
    run_schema_step(database_url, "upgrade")


@db_group.command("version")
@database_option
def version(database_url: str) -> None:
    """Print the stored schema version and the one this code expects."""
    database = open_database(database_url, initialise=True)
    click.echo(f"stored: {database.schema_version()}  expected: {latest_version()}")


def run_schema_step(database_url: str, step: str) -> None:
    database = open_database(database_url, initialise=True, create=step == "init")
    try:
        with database_errors(database.display_url):
            for line in getattr(database, step)():
                click.echo(f"{database.display_url}: {line}")
    finally:
        database.close()


COMMANDS = [db_group]
