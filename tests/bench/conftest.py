"""Fixtures of the bench tests: a running controller (see bench_helpers)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from bench_helpers import Running, start_controller


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    yield from start_controller(tmp_path_factory.mktemp("serve"))
