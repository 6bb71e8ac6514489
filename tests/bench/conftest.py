"""Fixtures of the bench tests: a running controller (see bench_helpers)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from bench_helpers import Running, start_controller

# The recorded wire transcripts are read by the simulator tests' wire_replay.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "simulator"))


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    yield from start_controller(tmp_path_factory.mktemp("serve"))
