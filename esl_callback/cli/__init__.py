"""The `esl-callback` operator command line.

Each command group lives in its own module here; this package only assembles them.
"""

from __future__ import annotations

import importlib
import pkgutil

import click

from esl_callback import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="esl-callback")
def main() -> None:
    """esl-callback: FreeSWITCH callback controller, simulator and operator tools."""


def _register_commands() -> None:
    """Import every sibling module and add the click commands it exports in COMMANDS."""
    for module_info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        for command in getattr(module, "COMMANDS", ()):
            main.add_command(command)


_register_commands()
