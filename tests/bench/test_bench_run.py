"""scripts/bench runs end to end in miniature; and the arithmetic behind its figures.

Only what must hold at any speed is asserted (every offered callback completed and billed, the
results file has every part); the timed figures are printed by the benchmark, never checked.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import gevent
from bench_helpers import ROOT
from sim_setup import sim_config

from bench import report
from bench.phases import Step, idle, percentiles
from esl_callback import metrics
from esl_callback.simulator import Simulator
from esl_callback.simulator.core import DB_LAG
from esl_callback.switch.connection import InboundConnection

TARGETS = ["esl-callback (phone)", "esl-callback (web API)", "plain greenswitch (phone)"]


def test_a_miniature_bench_run_completes_every_callback_of_every_target(tmp_path: Path) -> None:
    output = tmp_path / "results.json"
    run = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "bench"),
            "--quick",
            "--rates=5",
            "--latency-rate=5",
            "--step-seconds=1",
            "--duration=1",
            "--concurrency=4",
            "--concurrency-rate=4",
            "--probe-rate=2",
            "--probe-seconds=1",
            "--accounts=10",
            "--web-users=2",
            f"--directory={tmp_path}",
            f"--output={output}",
        ],
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    results = json.loads(output.read_text())
    assert [t["name"] for t in results["targets"]] == TARGETS
    for target in results["targets"]:
        (step,) = target["steps"]
        assert (step["offered"], step["completed"], step["failures"]) == (5, 5, {}), target["name"]
        held = target["concurrency"]
        assert held["bridged_at_once"] == 4, target["name"]
        assert held["completed_and_billed"] == 4, target["name"]
        assert held["probe"]["completed"] == held["probe"]["offered"] == 2
    ours = results["targets"][0]["steps"][0]
    assert ours["esl_messages"] > 0 and ours["event_backlog_peak"] is not None
    assert set(results["ratios_to_plain"]) == {
        "at_rate",
        "cpu_per_callback",
        "setup_p99",
        "rss_per_live_call",
    }
    assert set(ours["cores_needed"]) == {"controller", "simulator"}
    assert "| Highest rate sustained, zero failures (callbacks/s) |" in run.stdout
    assert str(output) in run.stdout


def test_a_directory_with_an_earlier_runs_database_is_refused_before_anything_starts(
    tmp_path: Path,
) -> None:
    (tmp_path / "bench.db").write_bytes(b"")
    run = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench"), "--quick", f"--directory={tmp_path}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 1
    assert "bench.db is from an earlier run: give a new --directory" in run.stderr
    assert "Traceback" not in run.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bench.db"]


def test_after_a_failed_step_the_switch_is_idle_only_once_its_last_channel_is_gone() -> None:
    sim = Simulator(sim_config(), speed=20).start()
    switch = InboundConnection(
        host=sim.host, port=sim.port, password="ClueCon", events=["CHANNEL_ANSWER"]
    )
    try:
        assert switch.start().wait_connected(5)
        assert idle(switch, None)
        uuid = sim.place_call("15550009999", "15550001001", "phones")
        sim.wait_for(uuid, lambda channel: channel.answered)
        gevent.sleep(sim.clock.real(DB_LAG) + 0.1)  # `show channels` lists it now
        assert not idle(switch, None)
        sim.api(f"uuid_kill {uuid}")
        sim.wait_gone(uuid)
        gevent.sleep(sim.clock.real(DB_LAG) + 0.1)
        assert idle(switch, None)
    finally:
        switch.stop()
        sim.stop()


def test_percentiles_are_nearest_rank_in_milliseconds() -> None:
    seconds = [i / 1000 for i in range(1, 101)]  # 1 ms .. 100 ms
    assert percentiles(seconds) == {"p50": 51.0, "p95": 96.0, "p99": 100.0, "max": 100.0}
    assert percentiles([]) == {"p50": None, "p95": None, "p99": None, "max": None}


def test_histogram_quantiles_interpolate_within_the_bucket_like_prometheus() -> None:
    buckets = [(0.01, 50.0), (0.02, 90.0), (0.05, 100.0), (float("inf"), 100.0)]
    assert metrics.bucket_quantile(buckets, 0.5) == 0.01
    assert abs(metrics.bucket_quantile(buckets, 0.7) - 0.015) < 1e-12
    assert abs(metrics.bucket_quantile(buckets, 0.95) - 0.035) < 1e-12
    assert metrics.bucket_quantile([(0.01, 0.0), (float("inf"), 0.0)], 0.5) is None


def test_a_snapshot_quantile_counts_only_what_happened_since_the_earlier_one() -> None:
    text = """
# TYPE x_seconds histogram
x_seconds_bucket{le="0.01"} %d
x_seconds_bucket{le="1.0"} %d
x_seconds_bucket{le="+Inf"} %d
x_seconds_count %d
"""
    before = metrics.parse(text % (100, 100, 100, 100))
    after = metrics.parse(text % (100, 200, 200, 200))  # 100 more, all between 10 ms and 1 s
    assert after.quantile("x_seconds", 0.5) == 0.01
    assert 0.01 < after.quantile("x_seconds", 0.5, since=before) < 1.0


def test_ratios_compare_at_the_highest_rate_both_controllers_sustained() -> None:
    def target(steps: list[tuple[float, bool, float, float]], rss: float) -> dict:
        return {
            "steps": [
                {
                    "rate": rate,
                    "sustained": ok,
                    "controller_cpu_ms_per_callback": cpu,
                    "setup_ms": {"p99": p99},
                }
                for rate, ok, cpu, p99 in steps
            ],
            "concurrency": {"rss_per_call_kb": rss},
        }

    ours = target([(10, True, 30.0, 20.0), (20, True, 32.0, 40.0), (50, False, 60.0, 900.0)], 90)
    plain = target([(10, True, 5.0, 100.0), (20, True, 4.0, 80.0), (50, True, 4.0, 80.0)], 30)
    assert report.ratios(ours, plain) == {
        "at_rate": 20,
        "cpu_per_callback": 8.0,
        "setup_p99": 0.5,
        "rss_per_live_call": 3.0,
    }


def test_the_cores_each_process_needs_are_its_cpu_per_callback_times_the_rate() -> None:
    """Each process runs Python on one core: over 1 at a rate, that process is full there."""
    step = Step("esl-callback (phone)", rate=75, seconds=10, offered=750, completed=750)
    step.controller_cpu_seconds, step.simulator_cpu_seconds = 8.175, 10.575  # 10.9, 14.1 ms
    step.setup_ms = {"p50": 30.0, "p95": 330.0, "p99": 354.0}
    assert step.cores_needed == {"controller": 0.82, "simulator": 1.06}
    summary = report.summarise({"name": "x", "steps": [step.as_json()]}, latency_rate=75)
    row = "| Cores needed at that rate, controller / simulator (over 1: full) | 0.82 / 1.06 |"
    assert row in report.table([summary])

    step.completed = 0  # nothing to divide by
    assert step.cores_needed == {"controller": None, "simulator": None}
