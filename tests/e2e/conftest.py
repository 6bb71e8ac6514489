"""Fixtures for end-to-end tests: the simulator and the controller, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from platform_helpers import Platform, standard_rates, start_platform

from esl_callback.db import Database


@pytest.fixture
def platform(db: Database) -> Iterator[Callable[..., Platform]]:
    """Start simulator + controller with the given phones (after the test seeded the data)."""
    started: list[Platform] = []

    def start(phones: dict[str, Any], **options: Any) -> Platform:
        running = start_platform(db.url, phones, **options)
        started.append(running)
        return running

    standard_rates()
    yield start
    for running in started:
        running.observer.connection.stop()
        running.service.stop(timeout=2)
        for sim in [running.sim, *running.other_sims]:
            sim.stop()
