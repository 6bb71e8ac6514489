"""`esl-callback config check|show`: validate a configuration file, show the effective settings."""

import sys

import click
import yaml

from esl_callback.config import (
    ConfigError,
    Settings,
    config_warnings,
    load_config,
    settings_to_dict,
)
from esl_callback.logs import check_log_file, setup_logging


def _report(path: str | None, error: ConfigError, *, err: bool) -> None:
    """Every problem on its own line, then a count naming the file."""
    for message in error.messages:
        click.echo(message, err=err)
    count = len(error.messages)
    click.echo(f"{path or '(defaults)'}: {count} error{'s' if count != 1 else ''}", err=err)


def _warn(settings: Settings, *, err: bool, sections: tuple[str, ...] = ()) -> list[str]:
    """Print the configuration's warnings (only those of `sections`, when given)."""
    warnings = [
        w for w in config_warnings(settings) if not sections or w.split(".", 1)[0] in sections
    ]
    for warning in warnings:
        click.echo(f"warning: {warning}", err=err)
    return warnings


def load_settings_or_exit(path: str | None, sections: tuple[str, ...] = ()) -> Settings:
    """Settings from ``path`` (None: defaults + environment), warnings printed to stderr (only
    those about `sections`, for a command that uses only those).

    On a bad configuration, prints exactly what ``config check`` prints, to stderr, and exits 1.
    """
    try:
        settings = load_config(path)
    except ConfigError as error:
        _report(path, error, err=True)
        sys.exit(1)
    _warn(settings, err=True, sections=sections)
    return settings


def start_logging_or_exit(settings: Settings) -> None:
    """Log as the configuration says, or print why it cannot (e.g. logging.file) and exit 1."""
    try:
        setup_logging(settings.logging)
    except ConfigError as error:
        for message in error.messages:
            click.echo(f"error: {message}", err=True)
        sys.exit(1)


@click.group()
def config() -> None:
    """Check and show the configuration."""


@config.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--strict", is_flag=True, help="Fail (exit 1) on warnings too.")
def check(file: str, strict: bool) -> None:
    """Check FILE: print every error (exit 1) and warning, or FILE: OK.

    ESL_CALLBACK_* environment variables are applied, as `serve` would.
    """
    try:
        settings = load_config(file)
        check_log_file(settings.logging)
    except ConfigError as error:
        _report(file, error, err=False)
        sys.exit(1)
    warnings = _warn(settings, err=False)
    if strict and warnings:
        click.echo(f"{file}: {len(warnings)} warning(s), failing because of --strict")
        sys.exit(1)
    click.echo(f"{file}: OK")


@config.command()
@click.argument("file", type=click.Path(dir_okay=False), required=False)
def show(file: str | None) -> None:
    """Print the effective settings of FILE (or the defaults) as YAML, secrets masked."""
    settings = load_settings_or_exit(file)
    click.echo(
        yaml.safe_dump(settings_to_dict(settings), sort_keys=False, allow_unicode=True), nl=False
    )


COMMANDS = [config]
