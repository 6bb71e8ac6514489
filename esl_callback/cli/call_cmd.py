"""`esl-callback call`: start a callback from a terminal and follow it until it ends.

The dialer lives in the running `esl-callback serve`, so the command goes through that process's
operator API (`web/operator_api.py`) at the web portal's address from the same configuration
file (or `web.controller_url` when set), proving it is the operator with credentials made from
`web.secret` (`esl_callback.operator`; the client is `esl_callback.operator_client`). It prints
one line per status change (`status.summary_line`), read from the same live status stream the
portal shows; Ctrl-C hangs up both legs.

Exit codes: 0 the callback completed; 1 it failed, was busy, not answered or cancelled;
2 refused or not started (usage, unknown account, bad number, serve not reachable, or billing
refused it before anything was dialed: no rate, balance too low, account disabled).
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Callable
from typing import Any, NoReturn

import click

from esl_callback.callback.billing import Refusal
from esl_callback.callback.status import summary_line
from esl_callback.cli.common import config_option, json_option
from esl_callback.config import ConfigError, Settings, load_config
from esl_callback.operator_client import OperatorClient, Refused, Unreachable, controller_url

EXIT_COMPLETED, EXIT_NOT_COMPLETED, EXIT_REFUSED = 0, 1, 2
RECONNECTS = 3


def refuse(message: str) -> NoReturn:
    """Print an error for the operator and exit 2: nothing was started."""
    click.echo(f"error: {message}", err=True)
    sys.exit(EXIT_REFUSED)


def load(config_path: str | None) -> Settings:
    """The configuration serve runs with; anything that stops the command exits 2."""
    try:
        settings = load_config(config_path)
    except ConfigError as error:
        for message in error.messages:
            click.echo(message, err=True)
        refuse(f"{config_path or '(defaults)'}: the configuration is not valid")
    if not settings.web.enabled and not settings.web.controller_url:
        refuse(
            "web.enabled is false in this configuration: `esl-callback call` goes through the "
            "web API of `esl-callback serve`; enable it (web.bind stays on loopback by default)"
        )
    if not settings.web.secret:
        refuse(
            "web.secret is not set: `esl-callback call` proves it is the operator with it; set "
            "it in the configuration (or ESL_CALLBACK_WEB_SECRET) for serve and for this command"
        )
    return settings


def change(snap: dict[str, Any]) -> tuple:
    """What makes a new status line worth printing (not the seconds ticking by)."""
    legs = tuple((leg["leg"], leg["status"], leg["hangup_by"], leg["cost"]) for leg in snap["legs"])
    return snap["state"], snap["failure_cause"], snap["cost"], snap["final"], legs


def follow(
    serve: OperatorClient, first: dict[str, Any], show: Callable[[dict], None]
) -> dict[str, Any]:
    """Show each status change of the request until serve ends the stream; the last status."""
    last, seen_end, failures = first, False, 0
    while not seen_end:
        try:
            with contextlib.closing(serve.events(first["id"])) as events:
                for name, data in events:
                    if name == "status":
                        last, failures = json.loads(data), 0
                        show(last)
                    elif name == "end":
                        seen_end = True
                        break
                else:
                    raise Unreachable("the status stream ended early")
        except Unreachable:
            failures += 1
            if failures > RECONNECTS:
                raise
            time.sleep(1)
    return last


class Printer:
    """Prints a status line when something other than the running duration changed."""

    def __init__(self, err: bool) -> None:
        self.err = err
        self.shown: tuple | None = None

    def __call__(self, snap: dict[str, Any]) -> None:
        key = change(snap)
        if key != self.shown:
            self.shown = key
            click.echo(summary_line(snap), err=self.err)


@click.command("call")
@click.argument("source")
@click.argument("destination")
@click.option("-a", "--account", required=True, help="The account that pays: its name or id.")
@click.option(
    "--mode",
    type=click.Choice(["source-first", "simultaneous"]),
    default="source-first",
    show_default=True,
    help="Call the source first and then the destination, or both at once.",
)
@config_option(
    "The configuration file `esl-callback serve` runs with (its web section says where)."
)
@json_option
def call(
    source: str, destination: str, account: str, mode: str, config_path: str | None, as_json: bool
) -> None:
    """Call SOURCE, connect it to DESTINATION, charge ACCOUNT; print the status until it ends.

    Goes through the running `esl-callback serve` (the same checks as a callback from the
    portal). Ctrl-C hangs up both legs. Exit 0 completed, 1 not completed, 2 refused.
    With --json the status lines go to stderr and the final status to stdout as JSON.
    """
    settings = load(config_path)
    url = controller_url(settings)
    serve = OperatorClient(url, settings.web.secret)
    show = Printer(err=as_json)

    def unreachable(reason: object) -> NoReturn:
        refuse(
            f"cannot reach esl-callback serve at {url} (is `esl-callback serve` running with "
            f"this config?): {reason}"
        )

    try:
        first = serve.start(account, source, destination, mode.replace("-", "_"))
    except Unreachable as exc:
        unreachable(exc)
    except Refused as exc:
        refuse(explain(exc, url))
    except KeyboardInterrupt:
        click.echo(
            f"interrupted before esl-callback serve at {url} answered: the callback may have "
            "started; see `esl-callback requests --live`",
            err=True,
        )
        sys.exit(130)
    show(first)
    request_id = first["id"]
    try:
        try:
            last = follow(serve, first, show)
        except KeyboardInterrupt:
            click.echo(f"request {request_id}: cancelling, hanging up both legs", err=True)
            try:
                show(serve.cancel(request_id))
            except Refused as exc:  # e.g. it ended in the meantime
                click.echo(f"request {request_id}: {exc}", err=True)
            last = follow(serve, first, show)
    except KeyboardInterrupt:
        click.echo(
            f"request {request_id}: stopped following it; see `esl-callback requests --live`",
            err=True,
        )
        sys.exit(130)
    except Unreachable as exc:
        click.echo(
            f"error: lost esl-callback serve at {url} while following request {request_id} "
            f"({exc}); see `esl-callback requests` for how it ended",
            err=True,
        )
        sys.exit(EXIT_REFUSED)
    if as_json:
        click.echo(json.dumps(last, indent=2, sort_keys=True))
    sys.exit(exit_code(last))


def exit_code(final: dict[str, Any]) -> int:
    """0 completed; 2 refused by billing before anything was dialed; else 1."""
    if final["state"] == "completed":
        return EXIT_COMPLETED
    nothing_dialed = all(leg["status"] == "not_called" for leg in final["legs"])
    if final["failure_cause"] in set(Refusal) and nothing_dialed:
        return EXIT_REFUSED
    return EXIT_NOT_COMPLETED


def explain(exc: Refused, url: str) -> str:
    """serve's refusal, with what the operator can do about it."""
    if exc.status == 401:
        return (
            f"esl-callback serve at {url} refused the operator credential: {exc}. This command "
            "must read the configuration serve runs with (the same web.secret)"
        )
    if exc.field == "account":
        return f"{exc} (see `esl-callback account list`)"
    if exc.field in ("source", "destination"):  # which of the two numbers given, by its name
        return f"{exc.field.upper()}: {exc}"
    return str(exc)


COMMANDS = [call]
