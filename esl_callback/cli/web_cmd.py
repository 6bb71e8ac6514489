"""`esl-callback web`: the web portal alone, in its own process, until SIGTERM.

For operators who run the portal on another process or host than the controller: the same
portal as `serve` runs, on the same database; calls are placed by the `esl-callback serve` at
`web.controller_url` (see `esl_callback.web.standalone`).
"""

from __future__ import annotations

import signal

import click
import gevent
from gevent.event import Event

from esl_callback.cli.common import config_option, fail
from esl_callback.cli.config_cmd import load_settings_or_exit, start_logging_or_exit
from esl_callback.db import DatabaseError
from esl_callback.web.standalone import StandalonePortal, problems


@click.command("web")
@config_option("Configuration file: its web section (with web.controller_url) and database.")
def web(config_path: str | None) -> None:
    """Run the web portal alone; calls go through the `esl-callback serve` at
    web.controller_url (same database and web.secret)."""
    settings = load_settings_or_exit(config_path, sections=("web", "database"))
    found = problems(settings)
    if found:
        fail("; ".join(found))
    start_logging_or_exit(settings)
    portal = StandalonePortal(settings)
    try:
        portal.start()
    except DatabaseError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(
            f"cannot listen ({exc.strerror}) on {settings.web.bind}:{settings.web.port} "
            "(web.bind/web.port); is something else using that port?"
        )
    stop = Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        gevent.signal_handler(signum, stop.set)
    stop.wait()
    portal.stop()


COMMANDS = [web]
