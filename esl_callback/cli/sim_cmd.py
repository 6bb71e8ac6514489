"""`esl-callback sim`: run the FreeSWITCH simulator, or export its dialplan as FreeSWITCH XML."""

from __future__ import annotations

import logging
import signal
import sys

import click
import gevent
from gevent.event import Event

from esl_callback.gctuning import tune_gc
from esl_callback.simulator.chatplan import ChatplanError
from esl_callback.simulator.config import ConfigError, SimConfig, load, parse_listen
from esl_callback.simulator.core import Simulator
from esl_callback.simulator.dialplan import DialplanError

CONFIG_HELP = "Simulator YAML (default: the built-in demo dialplan and phones)."


def _load(config_path: str | None) -> SimConfig:
    try:
        return load(config_path)
    except (OSError, ConfigError, DialplanError, ChatplanError) as exc:
        raise click.ClickException(f"cannot load the simulator configuration: {exc}") from exc
    except Exception as exc:  # YAML syntax errors and the like
        raise click.ClickException(f"bad simulator configuration: {exc}") from exc


@click.group("sim", invoke_without_command=True)
@click.option("-c", "--config", "config_path", type=click.Path(dir_okay=False), help=CONFIG_HELP)
@click.option("--listen", help="Inbound ESL address HOST:PORT (default from the config).")
@click.option("--password", help="Inbound ESL password (default from the config).")
@click.option("--speed", type=float, help="Time factor: 10 runs ten times faster than real time.")
@click.pass_context
def sim(
    ctx: click.Context,
    config_path: str | None,
    listen: str | None,
    password: str | None,
    speed: float | None,
) -> None:
    """Run a simulated FreeSWITCH 1.10 (inbound ESL, outbound sockets, virtual phones)."""
    ctx.obj = config_path
    if ctx.invoked_subcommand is not None:
        return
    config = _load(config_path)
    try:
        address = parse_listen(listen) if listen else None
    except ConfigError as exc:
        raise click.BadParameter(str(exc), param_hint="--listen") from exc
    if speed is not None and speed <= 0:
        raise click.BadParameter("must be positive", param_hint="--speed")
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    simulator = Simulator(config, speed=speed, listen=address, password=password)
    try:
        simulator.start()
    except OSError as exc:
        host, port = address or (config.listen_host, config.listen_port)
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    click.echo(
        f"FreeSWITCH simulator: inbound ESL on {simulator.host}:{simulator.port} "
        f"(speed {simulator.clock.speed:g}); Ctrl-C stops it"
    )
    sys.stdout.flush()
    tune_gc()
    stop = Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        gevent.signal_handler(signum, stop.set)
    stop.wait()
    simulator.stop()


@sim.command("export-xml")
@click.option("-c", "--config", "config_path", type=click.Path(dir_okay=False), help=CONFIG_HELP)
@click.option(
    "-o", "--output", type=click.File("w"), default="-", help="Write here instead of stdout."
)
@click.pass_obj
def export_xml(parent_config: str | None, config_path: str | None, output) -> None:
    """Write the simulator's dialplan (phones included) as FreeSWITCH XML."""
    output.write(_load(config_path or parent_config).dialplan.to_xml())


COMMANDS = [sim]
