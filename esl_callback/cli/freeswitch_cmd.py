"""`esl-callback freeswitch files`: FreeSWITCH's files for a real install, from the config."""

from __future__ import annotations

import os
from pathlib import Path

import click

from esl_callback import fsfiles
from esl_callback.cli.common import config_option, fail
from esl_callback.cli.config_cmd import load_settings_or_exit


@click.group("freeswitch")
def freeswitch() -> None:
    """The FreeSWITCH side of a real install."""


@freeswitch.command("files")
@config_option(
    "The configuration serve runs with (default: built-in defaults and ESL_CALLBACK_* variables)."
)
@click.option(
    "--out",
    "out",
    type=click.Path(file_okay=False),
    help="Write the files into this directory, laid out as FreeSWITCH's conf/ (created mode "
    "0700; files with a password mode 0600). Without it, print them.",
)
@click.option("--node", "node_name", help="The node of freeswitch.nodes (needed with several).")
@click.option(
    "--placeholders",
    is_flag=True,
    help="CHANGE-ME values instead of the configuration's secrets, and every file, with example "
    "numbers where the configuration has none (the files shipped in freeswitch/ and dialplan/).",
)
def files(
    config_path: str | None, out: str | None, node_name: str | None, placeholders: bool
) -> None:
    """Write FreeSWITCH's files for this controller from its configuration.

    The dialplan's `socket HOST:PORT async full` (outbound.advertise, else outbound.bind and
    outbound.port), event_socket.conf.xml and fs_cli.conf (the node's host, port and password),
    the esl_controller ACL, the directory user for `userauth` (when the node has a `user`), the
    chatplan for sms.numbers, json_cdr.conf.xml (when cdr.enabled: the switch posts its CDRs to
    the portal) and the snippets to paste into switch.conf.xml and SIP profiles.
    Install them as the README's "Running against a real FreeSWITCH" says.
    """
    settings = load_settings_or_exit(config_path, sections=("outbound",))
    try:
        result = fsfiles.render(settings, node_name, placeholders=placeholders)
    except fsfiles.FilesError as error:
        for message in error.messages:
            click.echo(f"error: {message}", err=True)
        raise SystemExit(1) from None
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
    if out is None:
        for written in result.files:
            if written.text is None:
                click.echo(f"==> {written.file.path}: {written.note} <==\n")
            else:
                click.echo(f"==> {written.file.path} <==\n{written.text}")
        return
    folder = Path(out)
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        for written in result.files:
            path = folder / written.file.path
            if written.text is None:
                click.echo(f"{path}: {written.note}")
                continue
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            _write(path, written.text, 0o600 if written.file.secret else 0o644)
            click.echo(f"wrote {path}: {written.note}")
    except OSError as problem:
        fail(f"cannot write {problem.filename or out}: {problem.strerror}")


def _write(path: Path, text: str, mode: int) -> None:
    """Write `text` to `path` with `mode`, never readable by others even for a moment."""
    if path.exists():
        path.chmod(mode & 0o600)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode & 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)
    path.chmod(mode)


COMMANDS = [freeswitch]
