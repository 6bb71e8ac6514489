"""The /metrics endpoint of a running `esl-callback serve` and `esl-callback status`, over HTTP.

A phone of the simulator calls the PIN access number (as in scripts/bench); what the controller
did must show in its metrics and in what `status` prints.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace

import gevent
import pytest
import yaml
from bench_helpers import Running
from ports import free_port
from sim_setup import sim_config

from bench import plan
from bench.load import Call, Switch
from bench.processes import esl_callback_command
from esl_callback import metrics
from esl_callback.cli.status_cmd import render, summary
from esl_callback.simulator import Simulator
from esl_callback.switch.connection import InboundConnection

P = metrics.PREFIX
ALERT_RULES = Path(__file__).resolve().parents[2] / "scripts/prometheus-alerts.yml"
DASHBOARD = Path(__file__).resolve().parents[2] / "scripts/grafana-dashboard.json"
# The samples a family of each type is served as (prometheus_client's text format).
SAMPLE_SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
}


def wait_until(done: Callable[[], bool], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "timed out"
        gevent.sleep(0.05)


@pytest.fixture(scope="module")
def switch(running: Running) -> Iterator[Switch]:
    load = Switch(running.ports.switch)
    yield load
    load.stop()


def scrape(running: Running) -> metrics.Snapshot:
    return metrics.scrape(running.metrics_url)


def metric_settles(running: Running, name: str, value: float, **labels: str) -> None:
    """Until the controller reports `value` for the metric (it counts after the events)."""
    wait_until(lambda: scrape(running).total(name, **labels) == value)


def place(switch: Switch, kind: str, serial: int) -> Call:
    caller = plan.number(kind, serial % 5, serial)
    switch.place_trigger(caller)
    return switch.calls[caller]


def status(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*esl_callback_command(), "status", *args], capture_output=True, text=True, timeout=30
    )


def test_a_completed_callback_is_counted_with_its_commands_and_database_calls(
    running: Running, switch: Switch
) -> None:
    before = scrape(running)
    call = place(switch, plan.CALLER_SHORT, 1)
    wait_until(lambda: call.completed)
    ended = before.total(f"{P}_requests_ended_total", outcome="completed") + 1
    metric_settles(running, f"{P}_requests_ended_total", ended, outcome="completed")

    after = scrape(running)
    assert after.total(f"{P}_setups_total") == before.total(f"{P}_setups_total") + 1
    started = f"{P}_requests_started_total"
    assert after.total(started, mode="two_stage") == before.total(started, mode="two_stage") + 1
    assert after.total(f"{P}_node_connected", node="sim") == 1
    assert after.total(f"{P}_requests_live") == 0
    count = f"{P}_esl_command_seconds_count"
    earlier = before.by_label(count, "command")
    sent = {name: n - earlier.get(name, 0) for name, n in after.by_label(count, "command").items()}
    assert sent["bgapi originate"] == 2  # leg A and leg B
    # The bridge and the hangup at the paid duration go in one write, each counted once. Leg
    # A is capped by the switch from its answer (callback.allowance): the PIN deadline, then
    # what its hold pays once the PIN is known and again while the destination rings, each
    # replacing the last (sched_del); the call's hangup replaces the last cap.
    assert sent["api uuid_bridge"] == 1
    assert (sent["api sched_hangup"], sent["api sched_del"]) == (4, 3)
    for name in (f"{P}_database_seconds_count", f"{P}_events_total"):
        assert after.total(name) > before.total(name), name
    # Leg A's socket session gets only completions and its hangup: without the filters every
    # DTMF digit, CHANNEL_STATE and CHANNEL_EXECUTE came too (88 messages, then 64; the caps
    # of leg A and the PIN's unset, #22, made it 77).
    messages = f"{P}_esl_messages_total"
    assert 40 < after.total(messages) - before.total(messages) <= 80
    assert after.quantile(f"{P}_event_lag_seconds", 0.5) is not None
    assert after.total("process_resident_memory_bytes") > 0


def test_each_api_command_is_timed_once_whether_sent_alone_or_with_others() -> None:
    sim = Simulator(sim_config(), speed=20).start()
    node = InboundConnection(host=sim.host, port=sim.port, password="ClueCon", events=["API"])

    def sent(command: str) -> float:
        name, labels = f"{P}_esl_command_seconds_count", {"command": command}
        return metrics.REGISTRY.get_sample_value(name, labels) or 0.0

    try:
        assert node.start().wait_connected(5)
        metrics.instrument(SimpleNamespace(db=SimpleNamespace(run=None), nodes=[node]))
        metrics.COLLECTOR.service = None  # no Service to describe: only the node is timed
        version, uptime = sent("api version"), sent("api uptime")
        node.api("version")
        node.api_all(["version", "uptime"])
        assert (sent("api version") - version, sent("api uptime") - uptime) == (2, 1)
    finally:
        node.stop()
        sim.stop()


def test_a_bridged_call_shows_as_live_request_and_two_legs_up(
    running: Running, switch: Switch
) -> None:
    call = place(switch, plan.CALLER_HELD, 2)
    wait_until(lambda: call.bridged is not None)
    metric_settles(running, f"{P}_legs_live", 2, node="sim")

    live = scrape(running)
    assert live.by_label(f"{P}_requests_live", "state") == {"bridged": 1}
    assert live.total(f"{P}_outbound_sessions") == 1  # leg A's socket session
    switch.hang_up(call)
    wait_until(lambda: call.completed)
    metric_settles(running, f"{P}_legs_live", 0, node="sim")


def test_the_metrics_server_serves_only_metrics(running: Running) -> None:
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"http://127.0.0.1:{running.ports.metrics}/", timeout=5)
    assert refused.value.code == 404


def test_status_prints_the_figures_of_the_running_controller(
    running: Running, switch: Switch
) -> None:
    call = place(switch, plan.CALLER_SHORT, 3)
    wait_until(lambda: call.completed)

    shown = status("-c", str(running.config), "--interval", "0.2")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0] == f"esl-callback at {running.metrics_url}"
    text = shown.stdout
    assert "FreeSWITCH      sim connected (0 legs up)" in text
    assert "Ended           completed " in text
    bridged = r"\n  Bridged calls  +\d+\.\d/s over [\d.]+ s \([1-9]\d* since start\)\n"
    assert re.search(bridged, text), text
    for label in ("Event backlog", "ESL commands", "Database calls", "Process"):
        assert f"  {label}" in text


def test_status_shows_new_calls_turned_away_while_a_node_was_too_far_behind() -> None:
    text = (
        f'{P}_calls_turned_away_total{{node="sim"}} 3.0\n'
        f'{P}_event_backlog{{node="sim"}} 312.0\n'
        f"{P}_event_backlog_peak 420.0\n"
    )
    figures = summary(metrics.parse(text, 0.0), metrics.parse(text, 1.0))
    assert figures["calls_turned_away"] == 3
    shown = render("http://127.0.0.1:9464/metrics", figures)
    assert "  Event backlog   312 now, 420 at most, 3 new calls turned away over it\n" in shown


def test_status_json_has_the_same_figures(running: Running) -> None:
    shown = status("--url", running.metrics_url, "--interval", "0.1", "--json")
    assert shown.returncode == 0, shown.stderr
    figures = json.loads(shown.stdout)
    assert figures["nodes"] == {"sim": {"connected": True, "live_legs": 0}}
    assert figures["requests_ended"]["completed"][""] >= 1
    assert figures["setups_total"] >= 1
    assert figures["calls_turned_away"] == 0  # the node kept up
    assert figures["esl_commands"]["count"] > 0 and figures["esl_commands"]["p99_ms"] > 0
    assert figures["resident_memory_mb"] > 10


def test_status_says_what_to_check_when_nothing_answers() -> None:
    url = f"http://127.0.0.1:{free_port()}/metrics"
    shown = status("--url", url, "--interval", "0.1")
    assert shown.returncode == 1
    assert f"error: cannot read {url}" in shown.stderr
    assert "is `esl-callback serve` running with metrics on?" in shown.stderr


def test_status_refuses_a_configuration_without_metrics(running: Running) -> None:
    config = yaml.safe_load(running.config.read_text())
    config["metrics"]["enabled"] = False
    path = running.directory / "no-metrics.yaml"
    path.write_text(yaml.safe_dump(config))
    shown = status("-c", str(path))
    assert shown.returncode == 1
    assert "metrics.enabled is false" in shown.stderr


# -- what operators get to watch it: alerting rules and a dashboard (scripts/) --------------


def alert_rules() -> list[dict]:
    groups = yaml.safe_load(ALERT_RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def dashboard_panels() -> list[dict]:
    return json.loads(DASHBOARD.read_text())["panels"]


def served_sample_names(exposition: str) -> set[str]:
    """Every sample name the families of a scrape can have, from their `# TYPE` lines (listed
    even while a labelled metric has no sample yet)."""
    names = set()
    for line in exposition.splitlines():
        if line.startswith("# TYPE "):
            _, _, family, kind = line.split()
            base = family.removesuffix("_total")
            names.update(base + suffix for suffix in SAMPLE_SUFFIXES.get(kind, ("",)))
            names.add(family)
    return names


def metric_names(expressions: list[str]) -> set[str]:
    return {
        name
        for expression in expressions
        for name in re.findall(r"\b(?:esl_callback|process)_[a-z_]+\b", expression)
    }


def test_every_metric_the_alerts_and_the_dashboard_use_is_served_by_a_running_controller(
    running: Running,
) -> None:
    with urllib.request.urlopen(running.metrics_url, timeout=5) as response:
        served = served_sample_names(response.read().decode())
    alerting = metric_names([rule["expr"] for rule in alert_rules()])
    shown = metric_names([t["expr"] for panel in dashboard_panels() for t in panel["targets"]])
    assert len(alerting) >= 7 and len(shown) >= 12
    assert alerting <= served, f"not served: {sorted(alerting - served)}"
    assert shown <= served, f"not served: {sorted(shown - served)}"


def test_each_alert_rule_says_how_bad_it_is_and_what_to_check() -> None:
    rules = alert_rules()
    assert len({rule["alert"] for rule in rules}) == len(rules)
    for rule in rules:
        assert rule["labels"]["severity"] in ("critical", "warning"), rule["alert"]
        assert rule["annotations"]["summary"].strip(), rule["alert"]
        assert rule["annotations"]["description"].strip().endswith("."), rule["alert"]


def test_a_nodes_turned_away_count_is_served_as_zero_before_its_first(running: Running) -> None:
    """An alert on `increase()` would miss the first turn-away of a series that was absent."""
    samples = scrape(running).samples.get(f"{P}_calls_turned_away_total", [])
    assert ({"node": "sim"}, 0.0) in samples


def test_the_dashboard_imports_with_any_prometheus_as_its_data_source() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert [i["name"] for i in dashboard["__inputs"]] == ["DS_PROMETHEUS"]
    panels = dashboard_panels()
    assert len({panel["id"] for panel in panels}) == len(panels)
    for panel in panels:
        sources = [panel["datasource"], *(target["datasource"] for target in panel["targets"])]
        assert all(source["uid"] == "${DS_PROMETHEUS}" for source in sources), panel["title"]
        assert panel["description"].strip(), panel["title"]
