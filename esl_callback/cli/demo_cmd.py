"""`esl-callback demo`: simulator + controller + web portal with demo accounts, on SQLite."""

from __future__ import annotations

import secrets
import socket
from pathlib import Path
from typing import Any

import click
import gevent
import yaml

from esl_callback import demo
from esl_callback.cli.serve_cmd import run_until_signalled
from esl_callback.config import settings_from_mapping
from esl_callback.db import Database
from esl_callback.logs import setup_logging
from esl_callback.service import Service
from esl_callback.simulator.config import from_mapping
from esl_callback.simulator.core import Simulator


def free_port(preferred: int) -> int:
    """`preferred` if nothing listens there, else any free port."""
    for port in (preferred, 0):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return probe.getsockname()[1]
    raise click.ClickException("no free TCP port on 127.0.0.1")


@click.command("demo")
@click.option("--web-port", default=8080, show_default=True, help="Port of the web portal.")
@click.option(
    "--directory",
    default=".demo",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Where the demo database and log go (recreated on every start).",
)
@click.option(
    "--gateway-agent/--no-gateway-agent",
    default=True,
    show_default=True,
    help="Also run the GSM gateway agent on a fake modem.",
)
def demo_command(web_port: int, directory: str, gateway_agent: bool) -> None:
    """Run the whole product on this machine: FreeSWITCH simulator, controller and portal."""
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    for stale in [*folder.glob("demo.db*"), *folder.glob("gateway-agent.db*")]:
        stale.unlink()
    token = secrets.token_hex(16)
    outbound_port = free_port(8084)
    simulator = Simulator(from_mapping(demo.simulator_mapping(outbound_port))).start()
    settings = settings_from_mapping(
        {
            "freeswitch": {"nodes": [{"name": "simulator", "port": simulator.port}]},
            "outbound": {"port": outbound_port},
            "database": {"url": f"sqlite:///{(folder / 'demo.db').resolve()}"},
            "web": {"port": free_port(web_port), "secret": "demo-" * 8, "secure_cookies": False},
            "metrics": {"port": free_port(9464)},
            "callback": {"delay_seconds": 2, "originate_timeout_seconds": 20},
            "routes": [{"prefix": "", "template": "loopback/{number}/phones"}],
            "logging": {"file": str((folder / "demo.log").resolve())},
            "sms": {
                "enabled": gateway_agent,
                "numbers": [demo.GATEWAY_NUMBER],
                "gateways": [{"name": demo.GATEWAY_NAME, "token": token}],
            },
        },
        environ={},
    )
    setup_logging(settings.logging)
    database = Database(settings.database.url)
    database.init()
    logins = demo.seed()
    database.close()
    service = Service(settings).start()
    agent, modem = start_agent(folder, settings.web.port, token) if gateway_agent else (None, None)
    url = f"http://127.0.0.1:{settings.web.port}/"
    click.echo(f"esl-callback demo is running: open {url}")
    for login in logins:
        click.echo(
            f"  login {login['username']} / {login['password']}  "
            f"(phone {login['phone']}, PIN {login['pin']})"
        )
    click.echo(
        f"  FreeSWITCH simulator on 127.0.0.1:{simulator.port} (password ClueCon); "
        f"access numbers {demo.PIN_ACCESS} (PIN) and {demo.ANI_ACCESS} (caller ID), "
        f"alice's DID {demo.ALICE_DID}"
    )
    click.echo(
        f"  a demo phone call from 15550001001 to {demo.PIN_ACCESS} starts in 3 s: "
        "watch it in the portal's history or with `esl-callback requests`"
    )
    if agent is not None:
        control = f"--control {folder / 'fake-modem.sock'}"
        click.echo(
            f"  GSM gateway agent on a fake modem (SIM number {demo.GATEWAY_NUMBER}, PIN access); "
            f"make it ring: esl-callback fake-modem ring 15550001001 {control}"
        )
        click.echo(
            f"    text it: esl-callback fake-modem sms 15550001001 BAL {control}; its replies: "
            f"esl-callback fake-modem sent {control}; the agent: "
            f"esl-callback gateway-agent -c {folder / 'agent.yaml'} --status"
        )
    click.echo(f"  log: {folder / 'demo.log'}; stop with Ctrl-C")
    gevent.spawn_later(3, simulator.place_call, "15550001001", demo.PIN_ACCESS, "access")
    run_until_signalled(service)
    if agent is not None and modem is not None:
        agent.stop(timeout=2)
        modem.stop()
    simulator.stop()


def start_agent(folder: Path, web_port: int, token: str) -> tuple[Any, Any]:
    """A fake modem (control socket in `folder`) and the gateway agent on it."""
    from esl_callback.gateway_agent.agent import Agent
    from esl_callback.gateway_agent.config import agent_settings
    from esl_callback.gateway_agent.fake_modem import FakeModem

    modem = FakeModem(folder / "fake-modem-tty").start()
    modem.serve_control(folder / "fake-modem.sock")
    mapping = demo.agent_mapping(folder, web_port, token, free_port(9465))
    (folder / "agent.yaml").write_text(yaml.safe_dump(mapping, sort_keys=False))
    return Agent(agent_settings(mapping, environ={})).start(), modem


COMMANDS = [demo_command]
