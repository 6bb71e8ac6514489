"""`esl-callback cdr import DIR`: the CDRs FreeSWITCH could not post, from its err-log-dir."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import click

from esl_callback.callback import billing, switch_cdr
from esl_callback.cli.common import BILLING, emit, fail, json_option, with_database


@click.group("cdr")
def cdr_group() -> None:
    """The switch's CDRs (mod_json_cdr), as posted to serve's portal."""


@cdr_group.command("import")
@click.argument("folder", metavar="DIR", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--remove", is_flag=True, help="Delete each file once its CDR is stored (bad files are kept)."
)
@json_option
@with_database(billing.BillingError)
def cdr_import(folder: Path, remove: bool, as_json: bool) -> None:
    """Store and bill the CDRs mod_json_cdr kept in its err-log-dir (DIR/<uuid>.cdr.json).

    FreeSWITCH writes a CDR there when every post to the controller failed, and never sends it
    again. Each is taken as if posted: a leg whose hangup no controller saw is billed with the
    switch's billsec, a leg billed already is left as it is, so importing a file twice (or one
    the switch also delivered) changes nothing. Give -c with the configuration serve runs with
    (its database and its billing rounding). A file that is not a CDR is named and kept; the
    exit status is then 1.
    """
    if not folder.is_dir():
        fail(f"{folder} is not a directory: give mod_json_cdr's err-log-dir")
    settings = click.get_current_context().meta.get(BILLING) or billing.DefaultBilling()
    outcomes: Counter[str] = Counter()
    problems: list[str] = []
    for path in sorted(folder.iterdir()):
        uuid = switch_cdr.file_uuid(path.name)
        if uuid is None or not path.is_file():
            continue
        try:
            text = switch_cdr.file_text(path.read_bytes())
            cdr = switch_cdr.parse(text, uuid)
        except (OSError, UnicodeDecodeError, switch_cdr.CdrError) as exc:
            problems.append(f"{path}: {exc}")
            continue
        outcome = switch_cdr.apply(cdr, settings)
        outcomes[outcome.outcome] += 1
        if not as_json:
            click.echo(f"{path.name}: {outcome.outcome}")
        if remove:
            path.unlink()
    for problem in problems:
        click.echo(f"error: {problem}; kept", err=True)
    summary = {"outcomes": dict(outcomes), "bad_files": len(problems)}
    counted = ", ".join(f"{count} {name}" for name, count in sorted(outcomes.items()))
    emit(summary, as_json, f"{sum(outcomes.values())} CDRs imported ({counted or 'none'})")
    if problems:
        raise SystemExit(1)


COMMANDS = [cdr_group]
