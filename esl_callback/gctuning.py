"""Garbage collection for the long-running server processes (`serve`, `sim`).

Calls should leave no reference cycles behind (a closed connection lets go of its receiver, a
destroyed simulator channel of its peers), so reference counting frees them at once. What the
cyclic collector still has to do, it does less often (every 10,000 allocations, not 700), and
the objects that exist at startup (modules, configuration, compiled statements) are left out of
it for good: with Python's defaults, full collections over thousands of live calls paused every
call's setup for 50-250 ms (and up to 800 ms in the simulator, when cycles were left).

Greenlets no longer record the stack that spawned them (gevent's `track_greenlet_tree`): some
six frame records per greenlet, read only by gevent's debugging helpers.
"""

from __future__ import annotations

import gc

import gevent


def tune_gc() -> None:
    """Call once, after startup."""
    gevent.config.track_greenlet_tree = False
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)
