"""`esl-callback demo`: simulator + controller + web portal with demo accounts, on SQLite."""

from __future__ import annotations

import os
import secrets
import shlex
import shutil
import socket
import sys
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

# The demo's simulator goes with it, and the next demo starts on a fresh database: unlike serve,
# nothing is left for a next start to take over.
STOPPING = (
    "stopping the demo: calls still up end with it (the next demo starts on a fresh database)"
)


def this_program() -> list[str]:
    """How to run esl-callback as this process was run, from any directory: `esl-callback` when
    that is on PATH, else the path of the script, or the interpreter with `-m esl_callback`."""
    program = sys.argv[0]
    if Path(program).name == "__main__.py":  # python -m esl_callback
        return [sys.executable, "-m", "esl_callback"]
    found = shutil.which("esl-callback")
    try:
        if found and os.path.samefile(found, program):
            return ["esl-callback"]
    except OSError:  # not a file: run some other way than a script
        return [sys.executable, "-m", "esl_callback"]
    return [os.path.abspath(program)]


def desktop_program() -> str:
    """The desktop client's script beside this one (`esl-callback-desktop` when on PATH)."""
    program = this_program()[0]
    if program == "esl-callback" or not program.endswith("esl-callback"):
        return "esl-callback-desktop"
    return program + "-desktop"


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
    requests = shlex.join([*this_program(), "requests", "--database", settings.database.url])
    click.echo(
        f"  a demo phone call from 15550001001 to {demo.PIN_ACCESS} starts in 3 s: "
        f"watch it in the portal's history, or in another terminal with\n    {requests}"
    )
    click.echo(
        f"  desktop client: {shlex.join([desktop_program(), '--server', url.rstrip('/')])}  "
        "(same logins; install it with pip install 'esl-callback[desktop]', which make test does)"
    )
    if agent is not None:
        modem_cmd = [*this_program(), "fake-modem"]
        control = ["--control", str(folder / "fake-modem.sock")]
        ring = shlex.join([*modem_cmd, "ring", "15550001001", *control])
        text = shlex.join([*modem_cmd, "sms", "15550001001", "BAL", *control])
        sent = shlex.join([*modem_cmd, "sent", *control])
        status = shlex.join(
            [*this_program(), "gateway-agent", "-c", str(folder / "agent.yaml"), "--status"]
        )
        click.echo(
            f"  GSM gateway agent on a fake modem (SIM number {demo.GATEWAY_NUMBER}, PIN "
            f"access); make it ring:\n    {ring}"
        )
        click.echo(f"    text it: {text}\n    its replies: {sent}\n    the agent: {status}")
    click.echo(f"  log: {folder / 'demo.log'}; stop with Ctrl-C")
    gevent.spawn_later(3, simulator.place_call, "15550001001", demo.PIN_ACCESS, "access")
    run_until_signalled(service, STOPPING)
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
