"""The `esl-callback` console entry point.

Commands that run servers (serve, web, demo, sim, bench) need gevent's monkey patching, and it
must happen before anything imports `socket` or `threading`: so it is decided here, from the
command line, before the CLI (and everything it imports) is loaded. Once such a command is
done, no native thread of gevent's may run on into the interpreter's finalization
(`native_threads.leave`).
"""

from __future__ import annotations

import sys

GEVENT_COMMANDS = frozenset({"serve", "web", "demo", "sim", "bench"})


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] in GEVENT_COMMANDS:
        from gevent import monkey

        monkey.patch_all()
        from esl_callback import native_threads
        from esl_callback.cli import main as cli

        try:
            cli()
        finally:
            native_threads.leave(sys.exc_info()[1])
        return
    from esl_callback.cli import main as cli

    cli()
