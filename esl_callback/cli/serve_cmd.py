"""`esl-callback serve`: the controller, until SIGTERM."""

from __future__ import annotations

import logging
import signal
import sys

import click
import gevent
from gevent.event import Event

from esl_callback.cli.common import config_option, database_errors, fail
from esl_callback.cli.config_cmd import load_settings_or_exit, start_logging_or_exit
from esl_callback.controllers import ControllerConflict
from esl_callback.gctuning import tune_gc
from esl_callback.service import PortTaken, Service

log = logging.getLogger(__name__)
STOPPING = (
    "stopping: no new calls; calls not connected yet are ended, connected ones go on and are "
    "taken over at the next start"
)


FENCED = (
    "stopped: this controller lost its lease, so other controllers may own its calls now; "
    "it touched none of them. Check its database connection and start it again"
)
FENCED_STATUS = 3


def run_until_signalled(service: Service, stopping: str = STOPPING) -> None:
    """Block until SIGTERM or SIGINT, then say `stopping` and stop the service gracefully;
    if the controller loses its lease first, stop without touching a call and exit 3."""
    stop = Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        gevent.signal_handler(signum, stop.set)
    gevent.spawn(lambda: service.fenced.wait() and stop.set())
    stop.wait()
    if service.fenced.is_set():
        click.echo(FENCED, err=True)
        service.stop(timeout=0)
        sys.exit(FENCED_STATUS)
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
    except (PortTaken, ControllerConflict) as exc:
        fail(str(exc))
    tune_gc()
    run_until_signalled(service)


COMMANDS = [serve]
