"""Garbage collection for the long-running server processes (`serve`, `sim`).

Every call leaves reference cycles (legs linked to their flow, sessions and their sockets) that
only the cyclic collector frees. With Python's default thresholds a busy process collects every
700 allocations, and every few seconds a full collection goes over every live object: with
2,000 calls up that took 50-250 ms in the controller, a pause in every call's setup. Collect less
often (every 10,000 allocations, not 700) and leave the objects that exist at startup (modules,
configuration, compiled statements) out of it for good.
"""

from __future__ import annotations

import gc


def tune_gc() -> None:
    """Call once, after startup."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)
