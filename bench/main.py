"""`scripts/bench`: esl-callback against the simulator, side by side with plain greenswitch.

The simulator, the controller (`esl-callback serve`, the real serve path) and the plain
greenswitch controller each run in a process of their own; this process seeds the database,
drives the load and reads /metrics, /proc and the database. See README.md, "Benchmarks".
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import signal
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import yaml

from bench import plan, report
from bench.load import Switch, WebClients
from bench.phases import Bench, Target
from bench.processes import (
    ROOT,
    Process,
    ThrowawayPostgres,
    esl_callback_command,
    free_port,
    simulator_command,
    start,
    wait_listening,
)
from esl_callback import metrics
from esl_callback.db import Database, make_psycopg2_cooperative

log = logging.getLogger("bench")


QUICK = {
    "rates": "10,25",
    "step_seconds": 3.0,
    "duration": 3.0,
    "latency_rate": 25.0,
    "concurrency": 50,
    "concurrency_rate": 25.0,
    "accounts": 100,
    "web_users": 5,
    "probe_rate": 5.0,
    "probe_seconds": 2.0,
}


def arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="scripts/bench", description=__doc__.split("\n")[0])
    add = parser.add_argument
    add("--quick", action="store_true", help="A short run (seconds) to see that all works.")
    add("--database", help="postgresql://... to use (default: a new SQLite file).")
    add("--postgres", action="store_true", help="Run on a throwaway PostgreSQL cluster.")
    add("--rates", default="10,20,30,50,75,100,150,200,300", help="Offered rates to climb (/s).")
    add("--step-seconds", type=float, default=10, help="Length of each rising-rate step.")
    add("--duration", type=float, default=30, help="Confirmation run at the best rate (s).")
    add(
        "--latency-rate", type=float, default=100, help="Rate to report latencies at (or the best)."
    )
    add("--concurrency", type=int, default=500, help="Bridged calls to hold at once (<=10000).")
    add("--concurrency-rate", type=float, default=20, help="Rate the held calls are set up at.")
    add("--accounts", type=int, default=1000, help="Accounts (PINs) the callers use.")
    add("--web-users", type=int, default=50, help="Web users (API tokens) posting callbacks.")
    add("--skip-web", action="store_true", help="No web (HTTP API) callbacks.")
    add("--skip-plain", action="store_true", help="No plain greenswitch comparison.")
    add(
        "--only",
        help="Only these targets, comma-separated: phone, web (esl-callback), plain (greenswitch).",
    )
    add("--directory", help="Where configs, logs and the database go (default test-artifacts/).")
    add("--output", help="JSON results file (default: DIRECTORY/results.json).")
    add("--probe-rate", type=float, default=10, help="Callbacks/s while the held calls are up.")
    add("--probe-seconds", type=float, default=3, help="How long those are offered.")
    if parser.parse_known_args(argv)[0].quick:  # short defaults; options given still win
        parser.set_defaults(**QUICK)
    args = parser.parse_args(argv)
    args.rates = [float(r) for r in str(args.rates).split(",")]
    if args.latency_rate not in args.rates:
        args.rates = sorted({*args.rates, args.latency_rate})
    if not 1 <= args.concurrency <= 10_000:
        parser.error("--concurrency must be 1 to 10000")
    args.targets = ["phone", "web", "plain"]
    if args.skip_web:
        args.targets.remove("web")
    if args.skip_plain:
        args.targets.remove("plain")
    if args.only:
        only = [t.strip() for t in args.only.split(",") if t.strip()]
        unknown = set(only) - {"phone", "web", "plain"}
        if unknown or not only:
            parser.error("--only takes phone, web and/or plain")
        args.targets = [t for t in args.targets if t in only]
    return args


def machine() -> dict[str, Any]:
    model = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    memory_kb = int(Path("/proc/meminfo").read_text().split()[1])
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_gb": round(memory_kb / 2**20, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
    }


class Run:
    """Everything one benchmark run starts, and stops again."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        stamp = time.strftime("%Y%m%d-%H%M%S")
        self.directory = Path(args.directory or ROOT / "test-artifacts" / f"bench-{stamp}")
        self.directory.mkdir(parents=True, exist_ok=True)
        self.ports = plan.Ports(free_port(), free_port(), free_port(), free_port())
        self.probe = (args.probe_rate, args.probe_seconds)  # short calls while many are up
        self.timing = plan.Timing()
        self.processes: list[Process] = []
        self.postgres: ThrowawayPostgres | None = None

    def database_url(self) -> str:
        if self.args.database:
            return self.args.database
        if self.args.postgres:
            self.postgres = ThrowawayPostgres()
            return self.postgres.url
        path = self.directory / "bench.db"
        if path.exists():  # its accounts and calls would clash with this run's
            raise SystemExit(f"{path} is from an earlier run: give a new --directory")
        return f"sqlite:///{path}"

    def write(self, name: str, data: dict[str, Any]) -> Path:
        path = self.directory / name
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return path

    def launch(self, name: str, argv: list[str], port: int) -> Process:
        process = start(name, argv, self.directory / f"{name}.log")
        self.processes.append(process)
        wait_listening(port, 30, process)
        return process

    def stop(self, process: Process) -> None:
        process.stop()
        self.processes.remove(process)

    def close(self) -> None:
        for process in reversed(self.processes):
            process.stop()
        if self.postgres is not None:
            self.postgres.stop()


def wait_connected(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if metrics.scrape(url).total(f"{metrics.PREFIX}_node_connected") >= 1:
            return
        time.sleep(0.2)
    raise RuntimeError("the controller did not connect to the simulator")


def run(args: argparse.Namespace) -> dict[str, Any]:
    runner = Run(args)
    ports, timing = runner.ports, runner.timing
    results: list[dict[str, Any]] = []
    try:
        url = runner.database_url()
        database = Database(url)
        database.init()
        if not database.is_sqlite:
            make_psycopg2_cooperative()
        log.info("seeding %d accounts on %s", args.accounts, database.display_url)
        logins = plan.seed(database, args.accounts, args.web_users)
        sim_config = runner.write("simulator.yaml", plan.simulator_mapping(ports, timing))
        simulator = runner.launch(
            "simulator", simulator_command(sim_config, ports.switch), ports.switch
        )
        switch = Switch(ports.switch)
        bench = Bench(switch, simulator, args.accounts, timing)
        controller_config = runner.write(
            "controller.yaml",
            plan.controller_mapping(
                ports, url, str(runner.directory / "controller.log"), args.concurrency * 2 + 2000
            ),
        )
        serve = [*esl_callback_command(), "serve", "-c", str(controller_config)]
        metrics_url = f"http://127.0.0.1:{ports.metrics}/metrics"
        kinds = [
            (name, kind)
            for name, kind in (("esl-callback (phone)", "phone"), ("esl-callback (web API)", "web"))
            if kind in args.targets
        ]
        for name, kind in kinds:  # a fresh process each: its memory is its own calls'
            controller = runner.launch("controller", serve, ports.metrics)
            wait_connected(metrics_url)
            web = WebClients(ports.web, logins) if kind == "web" else None
            target = Target(name, kind, controller, metrics_url, database, web)
            results.append(measure(bench, target, args, runner.probe))
            runner.stop(controller)
        if "plain" in args.targets:
            plain = runner.launch("plain-greenswitch", plain_command(ports), ports.outbound)
            target = Target("plain greenswitch (phone)", "phone", plain)
            results.append(measure(bench, target, args, runner.probe))
            runner.stop(plain)
        switch.stop()
        database.close()
    finally:
        runner.close()
    return assemble(args, runner, results)


def plain_command(ports: plan.Ports) -> list[str]:
    return [
        sys.executable,
        str(ROOT / "bench" / "plain_greenswitch.py"),
        str(ports.switch),
        plan.SWITCH_PASSWORD,
        str(ports.outbound),
        plan.GATEWAY,
        plan.ACCESS_NUMBER,
    ]


def measure(
    bench: Bench, target: Target, args: argparse.Namespace, probe: tuple[float, float]
) -> dict[str, Any]:
    """Warm up, hold calls at once (before the ramp grows the heap), then rising rates."""
    bench.step(target, min(args.rates[0], 5), 2)
    held = bench.concurrency(target, args.concurrency, args.concurrency_rate, *probe)
    steps, confirmed = bench.ramp(target, args.rates, args.step_seconds, args.duration)
    return {
        "name": target.name,
        "metrics": target.metrics_url is not None,
        "steps": [s.as_json() for s in steps],
        "confirmed": confirmed.as_json() if confirmed else None,
        "concurrency": held,
    }


def assemble(
    args: argparse.Namespace, runner: Run, results: list[dict[str, Any]]
) -> dict[str, Any]:
    summaries = [report.summarise(r, args.latency_rate) for r in results]
    by_name = {r["name"]: r for r in results}
    plain = by_name.get("plain greenswitch (phone)")
    ours = by_name.get("esl-callback (phone)")
    return {
        "machine": machine(),
        "options": vars(args),
        "timing": asdict(runner.timing),
        "directory": str(runner.directory),
        "targets": results,
        "summary": summaries,
        "ratios_to_plain": report.ratios(ours, plain) if ours and plain else None,
    }


def main(argv: list[str] | None = None) -> None:
    args = arguments(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # stop what was started, then exit
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("esl_callback").setLevel(logging.WARNING)
    results = run(args)
    output = Path(args.output or Path(results["directory"]) / "results.json")
    output.write_text(json.dumps(results, indent=2, default=str))
    m = results["machine"]
    print()
    print(f"Machine: {m['cpus']} vCPU {m['cpu_model']}, {m['memory_gb']} GB, Python {m['python']}")
    print(report.table(results["summary"]))
    if results["ratios_to_plain"]:
        print()
        print("esl-callback / plain greenswitch:", results["ratios_to_plain"])
    print(f"\nJSON: {output}")
