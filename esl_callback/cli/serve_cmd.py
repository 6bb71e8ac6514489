"""`esl-callback serve`: the controller, until SIGTERM."""

from __future__ import annotations

import logging
import signal

import click
import gevent
from gevent.event import Event

from esl_callback.cli.common import config_option, database_errors, fail
from esl_callback.cli.config_cmd import load_settings_or_exit, start_logging_or_exit
from esl_callback.gctuning import tune_gc
from esl_callback.service import PortTaken, Service

log = logging.getLogger(__name__)
STOPPING = (
    "stopping: no new calls; calls not connected yet are ended, connected ones go on and are "
    "taken over at the next start"
)


def run_until_signalled(service: Service, stopping: str = STOPPING) -> None:
    """Block until SIGTERM or SIGINT, then say `stopping` and stop the service gracefully."""
    stop = Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        gevent.signal_handler(signum, stop.set)
    stop.wait()
    click.echo(stopping, err=True)
    log.warning(stopping)
    service.stop()


@click.command("serve")
@config_option("Configuration file (default: built-in defaults and ESL_CALLBACK_* variables).")
def serve(config_path: str | None) -> None:
    """Run the controller: outbound socket server, FreeSWITCH connections, dialer, web portal."""
    settings = load_settings_or_exit(config_path)
    start_logging_or_exit(settings)
    service = Service(settings)
    try:
        with database_errors(service.db.display_url):
            service.start()
    except PortTaken as exc:
        fail(str(exc))
    tune_gc()
    run_until_signalled(service)


COMMANDS = [serve]
