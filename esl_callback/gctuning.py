"""Garbage collection for the long-running server processes (`serve`, `sim`).

Calls should leave no reference cycles behind (a closed connection lets go of its receiver, a
destroyed simulator channel of its peers, a lost command raises a fresh exception), so
reference counting frees them at once. The collector still walks the young objects now and
then, and everything older less and less often:

* the objects that exist at startup (modules, configuration, compiled statements) are left out
  of it for good (`gc.freeze`);
* a young collection every 1,000 net allocations (Python's default is 700): its pause grows
  with the objects it walks. At 10,000 the simulator's young collections walked 15,000-36,000
  objects and took 14-23 ms of CPU each, twice a second at 100 callbacks/s, and those pauses
  set the callbacks' p99 setup time (270 ms in a run; 110 ms with these settings);
* the middle generation every 20 young ones, and a full collection only every 50 of those
  (one per million allocations, as before): with Python's defaults, full collections over
  thousands of live calls paused every call's setup for 50-250 ms.

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
    gc.set_threshold(1_000, 20, 50)
