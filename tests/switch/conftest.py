"""Fixtures of the switch tests: a replaying socket peer, and a simulated FreeSWITCH lab."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from switch_lab import SwitchLab
from wire_peer import ReplayPeer


@pytest.fixture
def replay_peer() -> Iterator[ReplayPeer]:
    peer = ReplayPeer()
    try:
        yield peer
    finally:
        peer.stop()


@pytest.fixture
def lab() -> Iterator[SwitchLab]:
    switch_lab = SwitchLab()
    try:
        yield switch_lab
    finally:
        switch_lab.close()
