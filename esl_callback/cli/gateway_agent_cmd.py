"""`esl-callback gateway-agent`: the GSM gateway agent, its config check and its status;
`esl-callback fake-modem`: the simulated modem, to try the agent without one."""

from __future__ import annotations

import json
import sqlite3
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import click

from esl_callback.config import ConfigError, section_to_dict
from esl_callback.gateway_agent.config import AgentSettings, load_agent_config
from esl_callback.logs import check_log_file, setup_logging


def load_or_exit(path: str) -> AgentSettings:
    """The agent's settings, or every problem printed (as `config check` does) and exit 1."""
    try:
        settings = load_agent_config(path)
        check_log_file(settings.logging)
    except ConfigError as error:
        for message in error.messages:
            click.echo(message, err=True)
        count = len(error.messages)
        click.echo(f"{path}: {count} error{'s' if count != 1 else ''}", err=True)
        sys.exit(1)
    return settings


@click.command("gateway-agent")
@click.option(
    "-c",
    "--config",
    "config_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="The agent's configuration (agent.yaml).",
)
@click.option("--check", is_flag=True, help="Check the configuration: every error, or OK.")
@click.option("--show", is_flag=True, help="Print the effective configuration, secrets masked.")
@click.option("--status", is_flag=True, help="Ask the running agent: modem, signal, queue.")
@click.option("--json", "as_json", is_flag=True, help="With --status: print JSON.")
def gateway_agent(config_path: str, check: bool, show: bool, status: bool, as_json: bool) -> None:
    """Run the GSM gateway agent: calls and SMS on a phone or modem become callback requests."""
    settings = load_or_exit(config_path)
    if check:
        click.echo(f"{config_path}: OK")
        return
    if show:
        import yaml

        data = section_to_dict(settings)
        click.echo(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), nl=False)
        return
    if status:
        sys.exit(print_status(settings, as_json))
    setup_logging(settings.logging)
    from esl_callback.gateway_agent.agent import Agent

    try:
        agent = Agent(settings)
    except sqlite3.Error as exc:
        click.echo(
            f"error: cannot open the queue file {settings.queue.path} ({exc}): its directory "
            "must be writable by the agent's user",
            err=True,
        )
        sys.exit(1)
    try:
        agent.start()
    except OSError as exc:
        click.echo(
            f"error: cannot listen on the status port {settings.status.bind}:"
            f"{settings.status.port} ({exc.strerror or exc}): is another agent running? "
            "Change status.port",
            err=True,
        )
        sys.exit(1)
    agent.run_until_signalled()


def print_status(settings: AgentSettings, as_json: bool) -> int:
    """Print the running agent's status; 0 all well, 2 modem or platform not well, 1 no agent."""
    if not settings.status.enabled:
        click.echo("error: status.enabled is false in the configuration", err=True)
        return 1
    url = f"{settings.status_url}/status"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            figures = json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError) as exc:
        click.echo(f"error: no agent answers at {url} ({exc}); is it running?", err=True)
        return 1
    if as_json:
        click.echo(json.dumps(figures, indent=2, sort_keys=True))
    else:
        click.echo(describe(figures))
    well = figures["modem"]["state"] == "ready" and figures["platform_reachable"] is not False
    return 0 if well else 2


def describe(figures: dict[str, Any]) -> str:
    """The status in lines for an operator."""
    modem, queue = figures["modem"], figures["queue"]
    signal = (
        f"{modem['signal_dbm']} dBm (rssi {modem['signal_rssi']}/31)"
        if modem["signal_dbm"] is not None
        else "unknown"
    )
    oldest = queue["oldest_waiting_seconds"]
    reach = {True: "reachable", False: "NOT reachable", None: "not tried yet"}
    lines = [
        f"modem:    {modem['state']}; signal {signal}; "
        f"{modem['registration'] or 'registration unknown'}",
        f"platform: {reach[figures['platform_reachable']]}",
        f"queue:    {queue['queue_length']} waiting"
        + (f" (oldest {oldest:.0f} s)" if oldest is not None else "")
        + f", {queue['replies_to_send']} replies to send, {queue['delivered']} delivered, "
        f"{queue['refused']} refused, {queue['unreadable']} unreadable SMS on the SIM",
    ]
    counts = figures["counts"]
    lines.append(
        f"counts:   {counts['calls']} calls, {counts['sms_received']} SMS, "
        f"{counts['replies_sent']} replies sent, {counts['modem_resets']} modem resets"
    )
    if figures["last_error"]:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(figures["last_error_at"]))
        lines.append(f"last error ({when}): {figures['last_error']}")
    return "\n".join(lines)


@click.group("fake-modem")
def fake_modem() -> None:
    """A simulated GSM modem on a pseudo-terminal, to try the gateway agent without one."""


@fake_modem.command("run")
@click.option("--link", required=True, type=click.Path(dir_okay=False), help="Symlink to its port.")
@click.option("--control", required=True, type=click.Path(dir_okay=False), help="Control socket.")
def fake_modem_run(link: str, control: str) -> None:
    """Run a fake modem until Ctrl-C: point the agent's modem.port at LINK."""
    from esl_callback.gateway_agent.fake_modem import FakeModem

    modem = FakeModem(Path(link)).start()
    modem.serve_control(control)
    click.echo(
        f"fake modem on {link}; control: esl-callback fake-modem ring NUMBER --control {control}"
    )
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        modem.stop()


def _control(path: str, request: dict[str, Any]) -> dict[str, Any]:
    from esl_callback.gateway_agent.fake_modem import control

    try:
        return control(path, request)
    except OSError as exc:
        click.echo(f"error: no fake modem answers on {path} ({exc})", err=True)
        sys.exit(1)


@fake_modem.command("ring")
@click.argument("number", default="")
@click.option("--control", required=True, type=click.Path(dir_okay=False), help="Control socket.")
def fake_modem_ring(number: str, control: str) -> None:
    """Make the fake modem ring with caller ID NUMBER (none: withheld)."""
    _control(control, {"ring": number})
    click.echo(f"ringing from {number or 'a withheld number'}")


@fake_modem.command("sms")
@click.argument("number")
@click.argument("text")
@click.option("--control", required=True, type=click.Path(dir_okay=False), help="Control socket.")
def fake_modem_sms(number: str, text: str, control: str) -> None:
    """Make the fake modem receive an SMS from NUMBER."""
    answer = _control(control, {"sms": {"from": number, "text": text}})
    click.echo(f"SMS from {number} stored at SIM index {', '.join(map(str, answer['stored_at']))}")


@fake_modem.command("sent")
@click.option("--control", required=True, type=click.Path(dir_okay=False), help="Control socket.")
def fake_modem_sent(control: str) -> None:
    """The SMS the agent sent through the fake modem (replies)."""
    for message in _control(control, {"sent": True})["sent"]:
        click.echo(f"to {message['to']}: {message['text']}")


COMMANDS = [gateway_agent, fake_modem]
