"""`esl-callback serve` and the simulator, each in a process of its own (as scripts/bench runs
them), on a SQLite file seeded with the bench's data."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # the `bench` package of scripts/bench

from ports import free_port  # noqa: E402

from bench import plan  # noqa: E402
from bench.processes import (  # noqa: E402
    Process,
    esl_callback_command,
    simulator_command,
    start,
    wait_listening,
)
from esl_callback.db import Database  # noqa: E402

ACCOUNTS = 5


@dataclass
class Running:
    ports: plan.Ports
    config: Path
    controller: Process
    directory: Path

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.metrics}/metrics"


def start_controller(directory: Path) -> Iterator[Running]:
    """Seed, start both processes, yield; stop them afterwards."""
    ports = plan.Ports(free_port(), free_port(), free_port(), free_port())
    url = f"sqlite:///{directory / 'bench.db'}"
    database = Database(url)
    database.init()
    plan.seed(database, ACCOUNTS, 0)
    database.close()
    sim_config = directory / "simulator.yaml"
    sim_config.write_text(yaml.safe_dump(plan.simulator_mapping(ports, plan.Timing())))
    config = directory / "controller.yaml"
    mapping = plan.controller_mapping(ports, url, str(directory / "controller.log"), 100)
    config.write_text(yaml.safe_dump(mapping))
    started: list[Process] = []
    try:
        simulator = start(
            "simulator", simulator_command(sim_config, ports.switch), directory / "sim.log"
        )
        started.append(simulator)
        wait_listening(ports.switch, 30, simulator)
        controller = start(
            "controller",
            [*esl_callback_command(), "serve", "-c", str(config)],
            directory / "serve.log",
        )
        started.append(controller)
        wait_listening(ports.metrics, 30, controller)
        yield Running(ports, config, controller, directory)
    finally:
        for process in reversed(started):
            process.stop()
