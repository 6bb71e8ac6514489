"""No native thread may outlive a gevent command into the interpreter's finalization.

gevent's thread pool (password hashing, its DNS resolver) runs each worker thread's loop in a
greenlet of that thread. A worker still busy, or one waking up from its idle wait, while the
interpreter finalizes is made to exit by CPython when it next takes the GIL (pthread_exit); the
unwinding through the greenlet's switched stack, or TLS code running beside OpenSSL's exit
handlers, then kills the process with SIGSEGV (#23: serve on SIGTERM with a reply in flight).

So a gevent command, once done, stops the pool and waits until its threads are gone; one that
will not finish in time is left behind by ending the process at once (`os._exit`, after the
logs are flushed), with the exit status the command had: never a crash.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import traceback

import gevent
from gevent import monkey

log = logging.getLogger(__name__)

GRACE_SECONDS = 5.0  # a password hash takes tens of ms, a DNS lookup at most a few seconds


def _native_threads() -> int:
    """Threads started with `_thread` (gevent's workers among them) not finished yet."""
    count = monkey.get_original("_thread", "_count")
    return int(count())


def stop_thread_pool(timeout: float) -> bool:
    """Stop the hub's thread pool; whether every native thread ended within `timeout` s."""
    hub = gevent.get_hub()
    with gevent.Timeout(timeout, False):
        hub.threadpool.kill()  # idle workers leave now, busy ones after their task
        while _native_threads():
            gevent.sleep(0.005)
        return True
    return False


def exit_code(exc: BaseException | None) -> int:
    """The process's exit status for how the command ended (as the interpreter would set it)."""
    if exc is None:
        return 0
    if isinstance(exc, SystemExit):
        if exc.code is None:
            return 0
        if isinstance(exc.code, int):
            return exc.code
        print(exc.code, file=sys.stderr)
        return 1
    traceback.print_exception(exc)
    return 1


def leave(exc: BaseException | None, timeout: float | None = None) -> None:
    """After a gevent command ended (with `exc`): return once no native thread is left, or
    end the process now with the command's exit status (waiting `timeout`, GRACE_SECONDS)."""
    if timeout is None:
        timeout = GRACE_SECONDS
    if stop_thread_pool(timeout):
        return
    log.warning(
        "%d native threads still busy %.0f s after the stop; exiting without waiting for them",
        _native_threads(),
        timeout,
    )
    code = exit_code(exc)
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)
