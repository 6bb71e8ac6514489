"""Simulated time: real time by default, or sped up by a constant factor for fast tests.

Every timestamp the simulator reports (event dates, channel times, billsec) comes from this
clock, so a call that lasts 8 simulated seconds reports billsec 8 at any speed.
"""

from __future__ import annotations

import time
from functools import lru_cache

import gevent


class SimClock:
    """Wall-clock time that runs ``speed`` times faster than real time."""

    def __init__(self, speed: float = 1.0) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.speed = speed
        self._mono0 = time.monotonic()
        self._epoch0 = time.time()

    def set(self, epoch: float) -> None:
        """Jump to ``epoch`` (simulated seconds); time runs on from there at the same speed."""
        self._mono0 = time.monotonic()
        self._epoch0 = epoch

    def now(self) -> float:
        """Simulated epoch seconds."""
        return self._epoch0 + (time.monotonic() - self._mono0) * self.speed

    def now_us(self) -> int:
        """Simulated epoch microseconds (FreeSWITCH's switch_micro_time_now)."""
        return int(self.now() * 1_000_000)

    def real(self, seconds: float) -> float:
        """How many real seconds a simulated duration takes."""
        return seconds / self.speed

    def sleep(self, seconds: float) -> None:
        """Sleep for a simulated duration."""
        gevent.sleep(max(0.0, seconds) / self.speed)


def local_stamp(epoch_us: int) -> str:
    """``2026-11-25 20:55:19`` in local time, as in Event-Date-Local and *_stamp variables."""
    return _local_second(epoch_us // 1_000_000)


def gmt_stamp(epoch_us: int) -> str:
    """``Wed, 25 Nov 2026 20:55:19 GMT`` as in Event-Date-GMT."""
    return _gmt_second(epoch_us // 1_000_000)


@lru_cache(maxsize=1024)  # every event has its stamps: the same second's, mostly
def _local_second(second: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second))


@lru_cache(maxsize=1024)
def _gmt_second(second: int) -> str:
    return time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(second))
