"""`esl-callback controllers`: every controller that shares the database, alive or not."""

from __future__ import annotations

import dataclasses

import click

from esl_callback import controllers
from esl_callback.cli.common import emit, json_option, with_database


@click.command("controllers")
@json_option
@with_database()
def controllers_command(as_json: bool) -> None:
    """The controllers (`serve` processes) registered in the database: alive (lease running)
    or not, since when, and how many live calls each owns. A dead controller's calls are taken
    over by a live one once its lease (controller.lease_seconds) runs out."""
    found = controllers.listing()
    lines = [
        f"{c.id:<32} {'alive' if c.alive else 'DEAD' if c.stopped_at is None else 'stopped':<8}"
        f" pid {c.pid:<8} on {c.host:<20} started {c.started_at:%Y-%m-%d %H:%M:%S} UTC"
        f"  last heartbeat {c.heartbeat_at:%H:%M:%S}  {c.live_requests} live calls"
        for c in found
    ]
    text = "\n".join(lines) if found else "no controller has run on this database yet"
    emit([dataclasses.asdict(c) for c in found], as_json, text)


COMMANDS = [controllers_command]
