"""`esl-callback call`: start a callback from a terminal and follow it until it ends.

The dialer lives in the running `esl-callback serve`, so the command goes through that process's
operator API (`web/operator_api.py`) at the web portal's address from the same configuration
file, proving it is the operator with credentials made from `web.secret`
(`esl_callback.operator`). It prints one line per status change (`status.summary_line`), read
from the same live status stream the portal shows; Ctrl-C hangs up both legs.

Exit codes: 0 the callback completed; 1 it failed, was busy, not answered or cancelled;
2 refused or not started (usage, unknown account, bad number, serve not reachable).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any, NoReturn

import click

from esl_callback import operator
from esl_callback.callback.status import summary_line
from esl_callback.cli.common import json_option
from esl_callback.config import ConfigError, Settings, load_config

API = "/api/v1/operator"
EXIT_COMPLETED, EXIT_NOT_COMPLETED, EXIT_REFUSED = 0, 1, 2
REQUEST_TIMEOUT_SECONDS = 15
STREAM_TIMEOUT_SECONDS = 45  # the stream sends a fresh status at least every 15 s
RECONNECTS = 3


def refuse(message: str) -> NoReturn:
    """Print an error for the operator and exit 2: nothing was started."""
    click.echo(f"error: {message}", err=True)
    sys.exit(EXIT_REFUSED)


class Unreachable(Exception):
    """serve did not answer (not running, wrong port, or it went away)."""


class Refused(Exception):
    """serve answered with an error; `status` is the HTTP status, the message is its message."""

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.field = field


class Serve:
    """The operator API of one running `esl-callback serve`."""

    def __init__(self, base_url: str, secret: str) -> None:
        self.base_url = base_url
        self.secret = secret
        # Straight to serve, never through an HTTP proxy from the environment.
        self.opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def open(self, method: str, path: str, data: Any = None, timeout: float = 15) -> Any:
        """The response to a signed request (the caller closes it); Unreachable or Refused."""
        body = b"" if data is None else json.dumps(data).encode()
        headers = {"Authorization": operator.sign(self.secret, method, path, body)}
        if data is not None:
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(
            self.base_url + path, data=body if data is not None else None, method=method
        )
        for name, value in headers.items():
            req.add_header(name, value)
        try:
            return self.opener.open(req, timeout=timeout)
        except urllib.error.HTTPError as exc:
            with exc:
                raise refused(exc) from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            raise Unreachable(str(getattr(exc, "reason", exc))) from None

    def call(self, method: str, path: str, data: Any = None) -> dict[str, Any]:
        with self.open(method, path, data, REQUEST_TIMEOUT_SECONDS) as response:
            try:
                return json.loads(response.read())
            except (ValueError, OSError, http.client.HTTPException) as exc:
                raise Unreachable(f"unexpected answer: {exc}") from None

    def start(self, account: str, source: str | None, destination: str, mode: str) -> dict:
        order = {"account": account, "destination": destination, "mode": mode}
        if source:
            order["source"] = source
        return self.call("POST", f"{API}/requests", order)

    def cancel(self, request_id: int) -> dict[str, Any]:
        return self.call("POST", f"{API}/requests/{request_id}/cancel", {})

    def events(self, request_id: int) -> Iterator[tuple[str, str]]:
        """(event name, data) of the request's status stream, until serve closes it."""
        path = f"{API}/requests/{request_id}/events"
        with self.open("GET", path, timeout=STREAM_TIMEOUT_SECONDS) as response:
            try:
                yield from server_sent_events(response)
            except (OSError, http.client.HTTPException) as exc:
                raise Unreachable(str(exc)) from None


def refused(exc: urllib.error.HTTPError) -> Refused:
    try:
        error = json.loads(exc.read())["error"]
        return Refused(exc.code, error["message"], error.get("field"))
    except (ValueError, KeyError, TypeError, OSError, http.client.HTTPException):
        return Refused(exc.code, f"HTTP {exc.code} {exc.reason}")


def server_sent_events(lines: Any) -> Iterator[tuple[str, str]]:
    """Parse a text/event-stream (bytes lines) into (event, data) pairs."""
    name, data = "message", []
    for raw in lines:
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        if not line:
            if data:
                yield name, "\n".join(data)
            name, data = "message", []
        elif not line.startswith(":"):
            key, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if key == "event":
                name = value
            elif key == "data":
                data.append(value)


def serve_url(settings: Settings) -> str:
    """Where the serve using these settings answers: its web portal, from this machine."""
    web = settings.web
    host = "127.0.0.1" if web.bind in ("0.0.0.0", "::", "") else web.bind
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{web.port}"


def load(config_path: str | None) -> Settings:
    """The configuration serve runs with; anything that stops the command exits 2."""
    try:
        settings = load_config(config_path)
    except ConfigError as error:
        for message in error.messages:
            click.echo(message, err=True)
        refuse(f"{config_path or '(defaults)'}: the configuration is not valid")
    if not settings.web.enabled:
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


def follow(serve: Serve, first: dict[str, Any], show: Callable[[dict], None]) -> dict[str, Any]:
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
@click.option(
    "-c",
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    help="The configuration file `esl-callback serve` runs with (its web section says where).",
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
    url = serve_url(settings)
    serve = Serve(url, settings.web.secret)
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
    sys.exit(EXIT_COMPLETED if last["state"] == "completed" else EXIT_NOT_COMPLETED)


def explain(exc: Refused, url: str) -> str:
    """serve's refusal, with what the operator can do about it."""
    if exc.status == 401:
        return (
            f"esl-callback serve at {url} refused the operator credential: {exc}. This command "
            "must read the configuration serve runs with (the same web.secret)"
        )
    if exc.field == "account":
        return f"{exc} (see `esl-callback account list`)"
    return str(exc)


COMMANDS = [call]
