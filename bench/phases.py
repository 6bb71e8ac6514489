"""The measurements: rising offered rates, a confirmation run, and calls held at once.

A `Target` is one controller under load in one way (esl-callback by phone, esl-callback by the
web API, plain greenswitch by phone). A step offers callbacks at a fixed rate for some seconds,
waits for them to end, and tells what happened to each (from the switch's events, and for
esl-callback from its database: request completed, both CDRs billed), the latencies, and what
the controller spent.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import gevent
from peewee import JOIN, fn

from bench import plan
from bench.load import Call, Switch, WebClients, pace
from bench.processes import Process
from esl_callback import metrics
from esl_callback.db import Database
from esl_callback.models import CallbackRequest, Leg

log = logging.getLogger(__name__)

P = metrics.PREFIX
IDLE_SECONDS = 2.0  # s: how long the held calls are left alone to measure the switch's CPU
SETUP_LIMIT = 1.0  # s: a step whose p99 trigger-to-originate exceeds this is falling behind
IDLE_TIMEOUT = 120.0  # s: how long a failed step may leave the switch and controller busy


@dataclass
class Target:
    name: str
    kind: str  # "phone" or "web"
    controller: Process
    metrics_url: str | None = None
    database: Database | None = None
    web: WebClients | None = None


def percentiles(values: list[float]) -> dict[str, float | None]:
    """p50/p95/p99/max in milliseconds (nearest rank)."""
    ordered = sorted(values)
    if not ordered:
        return {"p50": None, "p95": None, "p99": None, "max": None}

    def rank(q: float) -> float:
        return round(1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)

    return {"p50": rank(0.50), "p95": rank(0.95), "p99": rank(0.99), "max": rank(1.0)}


@dataclass
class Step:
    """One offered rate (or one hold of concurrent calls) and what came of it."""

    target: str
    rate: float
    seconds: float
    offered: int = 0
    completed: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    failed_examples: list[dict[str, Any]] = field(default_factory=list)  # a few, for diagnosis
    elapsed: float = 0.0  # from the first trigger until the last call ended
    setup_ms: dict[str, float | None] = field(default_factory=dict)
    bridge_ms: dict[str, float | None] = field(default_factory=dict)
    controller_cpu_seconds: float = 0.0
    esl_messages: int | None = None
    controller_cpu_percent: float = 0.0
    simulator_cpu_percent: float = 0.0
    simulator_cpu_seconds: float = 0.0
    load_cpu_percent: float = 0.0
    event_backlog_peak: int | None = None
    event_lag_ms_p99: float | None = None
    http_response_ms: dict[str, float | None] | None = None
    switch_api_ms: dict[str, float | None] | None = None  # `api uptime` round trips (the load's)

    @property
    def failed(self) -> int:
        return self.offered - self.completed

    @property
    def controller_cpu_ms_per_callback(self) -> float | None:
        """Controller CPU over the step, per completed callback."""
        if not self.completed:
            return None
        return round(1000 * self.controller_cpu_seconds / self.completed, 2)

    @property
    def simulator_cpu_ms_per_callback(self) -> float | None:
        """Simulator CPU over the step, per completed callback."""
        if not self.completed:
            return None
        return round(1000 * self.simulator_cpu_seconds / self.completed, 2)

    @property
    def cores_needed(self) -> dict[str, float | None]:
        """What the controller and the simulator each need of a core at this rate: CPU per
        callback times the rate. Each runs Python on one core at a time: over 1, it is full."""
        return {
            process: None if ms is None else round(ms * self.rate / 1000, 2)
            for process, ms in (
                ("controller", self.controller_cpu_ms_per_callback),
                ("simulator", self.simulator_cpu_ms_per_callback),
            )
        }

    @property
    def esl_messages_per_callback(self) -> float | None:
        if not self.completed or self.esl_messages is None:
            return None
        return round(self.esl_messages / self.completed, 1)

    @property
    def sustained(self) -> bool:
        """No call failed, and the controller kept up (setup p99 under SETUP_LIMIT)."""
        p99 = self.setup_ms.get("p99")
        return self.failed == 0 and p99 is not None and p99 <= SETUP_LIMIT * 1000

    def as_json(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "failed": self.failed,
            "sustained": self.sustained,
            "controller_cpu_ms_per_callback": self.controller_cpu_ms_per_callback,
            "simulator_cpu_ms_per_callback": self.simulator_cpu_ms_per_callback,
            "esl_messages_per_callback": self.esl_messages_per_callback,
            "cores_needed": self.cores_needed,
        }


class Bench:
    """Runs steps against targets on one simulator, through one load connection."""

    def __init__(
        self, switch: Switch, simulator: Process, accounts: int, timing: plan.Timing
    ) -> None:
        self.switch = switch
        self.simulator = simulator
        self.accounts = accounts
        self.timing = timing
        self.serial = itertools.count()  # every call of the run has numbers of its own

    # -- one call -------------------------------------------------------------------------

    def starter(self, target: Target, held: bool, calls: list[Call]) -> Callable[[int], None]:
        def start_one(_: int) -> None:
            index = next(self.serial)
            if target.kind == "web":
                assert target.web is not None
                target.web.post(self.switch, index, held)
                source = plan.number(
                    plan.WEB_SOURCE,
                    target.web.logins[index % len(target.web.logins)].account,
                    index // len(target.web.logins),
                )
            else:
                kind = plan.CALLER_HELD if held else plan.CALLER_SHORT
                source = plan.number(kind, index % self.accounts, index // self.accounts)
                self.switch.place_trigger(source)
            calls.append(self.switch.calls[source])

        return start_one

    def call_seconds(self) -> float:
        """How long a short callback lasts on the phones' side (without controller delays)."""
        t = self.timing
        return t.ring + t.pin_after + t.destination_after + t.ring + t.talk

    # -- steps ----------------------------------------------------------------------------

    def step(self, target: Target, rate: float, seconds: float) -> Step:
        """Offer `rate` short callbacks a second for `seconds`; wait for them; measure."""
        log.info("%s: %g callbacks/s for %g s", target.name, rate, seconds)
        calls: list[Call] = []
        result = Step(target.name, rate, seconds)
        with Window(self, target, result) as window:
            result.offered = pace(rate, seconds, self.starter(target, False, calls))
            window.wait_calls(calls, self.call_seconds() + 15)
        self.settle(target, calls, result)
        if result.failed:  # what the controller left behind must not burden the next step
            self.switch.hang_up_all()
            self.wait_idle(target)
        if target.web is not None:
            result.http_response_ms = percentiles(target.web.response_seconds)
            target.web.response_seconds.clear()
        cores = result.cores_needed
        log.info(
            "%s: %g/s -> %d of %d completed, setup p99 %s ms, %s ms CPU per callback"
            " (simulator %s ms); cores needed: controller %s, simulator %s",
            target.name,
            rate,
            result.completed,
            result.offered,
            result.setup_ms.get("p99"),
            result.controller_cpu_ms_per_callback,
            result.simulator_cpu_ms_per_callback,
            cores["controller"],
            cores["simulator"],
        )
        return result

    def ramp(
        self, target: Target, rates: list[float], step_seconds: float, confirm_seconds: float
    ) -> tuple[list[Step], Step | None]:
        """Rising rates until one is not sustained; then the best one again, for longer."""
        steps: list[Step] = []
        passed: list[float] = []
        for rate in rates:
            steps.append(self.step(target, rate, step_seconds))
            if not steps[-1].sustained:
                break
            passed.append(rate)
        confirmed = None
        for rate in reversed(passed[-2:]):
            if confirm_seconds <= step_seconds:
                confirmed = next(s for s in steps if s.rate == rate)
                break
            confirmed = self.step(target, rate, confirm_seconds)
            if confirmed.sustained:
                break
        return steps, confirmed

    def concurrency(
        self, target: Target, count: int, rate: float, probe_rate: float, probe_seconds: float
    ) -> dict[str, Any]:
        """`count` bridged calls held at once: memory per call, and event latency meanwhile."""
        log.info("%s: %d calls held at once (set up at %g/s)", target.name, count, rate)
        held: list[Call] = []
        before = target.controller.usage()
        started = time.monotonic()
        pace(rate, count / rate, self.starter(target, True, held))
        _wait(lambda: all(c.bridged or c.error for c in held), count / rate + 30)
        up = sum(1 for c in held if c.bridged and not c.ended)
        setup_seconds = time.monotonic() - started
        gevent.sleep(1)
        idle_began, simulator_before = time.monotonic(), self.simulator.usage()
        gevent.sleep(IDLE_SECONDS)  # nothing happens: what do the held calls cost the switch?
        simulator_idle = self.simulator.usage().cpu - simulator_before.cpu
        idle_seconds = time.monotonic() - idle_began
        during = target.controller.usage()
        probe = self.step(target, probe_rate, probe_seconds)
        still_up = sum(1 for c in held if c.bridged and not c.ended)
        hangups = time.monotonic()
        for index, call in enumerate(held):  # the destinations hang up, twice as fast
            gevent.sleep(max(0.0, hangups + index / (2 * rate) - time.monotonic()))
            gevent.spawn(self.switch.hang_up, call)
        _wait(lambda: all(c.completed or c.error for c in held), count / (2 * rate) + 30)
        result = Step(target.name, rate, count / rate, offered=count)
        self.settle(target, held, result)
        return {
            "target": target.name,
            "requested": count,
            "bridged_at_once": up,
            "still_up_after_probe": still_up,
            "setup_seconds": round(setup_seconds, 1),
            "controller_rss_before_mb": round(before.rss / 2**20, 1),
            "controller_rss_held_mb": round(during.rss / 2**20, 1),
            "rss_per_call_kb": round((during.rss - before.rss) / max(up, 1) / 1024, 1),
            "simulator_cpu_percent_held_idle": round(100 * simulator_idle / idle_seconds, 1),
            "simulator_rss_held_mb": round(self.simulator.usage().rss / 2**20, 1),
            "completed_and_billed": result.completed,
            "failures": result.failures,
            "probe": probe.as_json(),
        }

    def wait_idle(self, target: Target, timeout: float = IDLE_TIMEOUT) -> None:
        """Until the switch has no channel and the controller follows no request: an overloaded
        step leaves both catching up for a while, and the next step must not inherit that."""

        began = time.monotonic()
        if _wait(lambda: idle(self.switch.esl, target.metrics_url), timeout):
            log.info("%s: idle again after %.1f s", target.name, time.monotonic() - began)
        else:
            log.warning("%s: still busy %g s after a failed step; going on", target.name, timeout)

    # -- what became of the calls -----------------------------------------------------------

    def settle(self, target: Target, calls: list[Call], result: Step) -> None:
        """Completion from the switch's events (and the database), latencies, failures."""
        records = billing_records(target.database, [c.source for c in calls])
        failures: Counter[str] = Counter()
        for call in calls:
            reason = failure_reason(call, records)
            if reason is None:
                result.completed += 1
            else:
                failures[reason] += 1
                if len(result.failed_examples) < 5:
                    result.failed_examples.append(example(call, reason))
        result.failures = dict(failures.most_common(8))
        result.setup_ms = percentiles([s for c in calls if (s := c.setup_seconds) is not None])
        result.bridge_ms = percentiles([s for c in calls if (s := c.bridge_seconds) is not None])


def idle(switch: Any, metrics_url: str | None) -> bool:
    """The switch has no channel, and the controller (if it has /metrics) follows no request."""
    if switch.api("show channels count").split() != ["0", "total."]:
        return False
    return not metrics_url or metrics.scrape(metrics_url).total(f"{P}_requests_live") == 0


def failure_reason(call: Call, records: dict[str, tuple[str, str, int]] | None) -> str | None:
    """Why a callback does not count as complete (None when it does)."""
    if call.error:
        return call.error.split(":", 1)[0]
    if call.a_created is None:
        return "leg A never originated"
    if call.bridged is None:
        if call.b_uuid is None:
            return "never bridged: leg B never originated"
        if call.b_answered is None:
            return "never bridged: leg B never answered"
        return "never bridged"
    if not call.completed:
        return "legs not hung up"
    if records is None:
        return None
    state, cause, billed = records.get(call.source, ("missing", "", 0))
    if state != "completed":
        return f"request {state} {cause}".strip()
    if billed != 2:
        return f"{billed} of 2 CDRs billed"
    return None


def example(call: Call, reason: str) -> dict[str, Any]:
    """A failed call: why, and its times in ms after the trigger."""

    def after(stamp: float | None) -> float | None:
        return None if stamp is None else round(1000 * (stamp - call.started), 1)

    return {
        "source": call.source,
        "reason": reason,
        "error": call.error,
        "a_created_ms": after(call.a_created),
        "b_answered_ms": after(call.b_answered),
        "bridged_ms": after(call.bridged),
        "ended": sorted(call.ended),
    }


def billing_records(
    database: Database | None, sources: list[str], timeout: float = 15.0
) -> dict[str, tuple[str, str, int]] | None:
    """(state, failure cause, CDRs billed) of each source's request, once none is live."""
    if database is None:
        return None
    deadline = time.monotonic() + timeout
    while True:
        records: dict[str, tuple[str, str, int]] = {}
        for start in range(0, len(sources), 500):
            records.update(database.run(_records, sources[start : start + 500]))
        live = [s for s, (state, _, _) in records.items() if state not in _ENDED]
        if not live or time.monotonic() > deadline:
            return records
        gevent.sleep(0.5)


_ENDED = frozenset({"completed", "failed", "cancelled", "rejected"})


def _records(sources: list[str]) -> dict[str, tuple[str, str, int]]:
    billed = (Leg.request == CallbackRequest.id) & (Leg.billed == True)  # noqa: E712
    query = (
        CallbackRequest.select(
            CallbackRequest.source,
            CallbackRequest.state,
            CallbackRequest.failure_cause,
            fn.COUNT(Leg.id),
        )
        .join(Leg, JOIN.LEFT_OUTER, on=billed)
        .where(CallbackRequest.source.in_(sources))
        .group_by(CallbackRequest.id)
        .tuples()
    )
    return {source: (state, cause or "", count) for source, state, cause, count in query}


def _wait(done: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            return False
        gevent.sleep(0.2)
    return True


class Window:
    """CPU of the controller, the simulator and the load, and /metrics, around one step."""

    def __init__(self, bench: Bench, target: Target, result: Step) -> None:
        self.bench = bench
        self.target = target
        self.result = result
        self.scrape: metrics.Snapshot | None = None

    def __enter__(self) -> Window:
        self.round_trips: list[float] = []
        self.prober = gevent.spawn(self._probe_switch)
        self.began = time.monotonic()
        self.controller = self.target.controller.usage()
        self.simulator = self.bench.simulator.usage()
        self.load = time.process_time()
        if self.target.metrics_url:
            self.scrape = metrics.scrape(self.target.metrics_url)
        return self

    def _probe_switch(self) -> None:
        """How promptly the switch answers a trivial API command meanwhile (every 100 ms)."""
        while True:
            sent = time.monotonic()
            try:
                self.bench.switch.esl.api("uptime")
            except Exception:  # a diagnostic: never fail the step for it
                return
            self.round_trips.append(time.monotonic() - sent)
            gevent.sleep(max(0.0, 0.1 - (time.monotonic() - sent)))

    def wait_calls(self, calls: list[Call], after_last: float) -> None:
        """Until every call completed (or failed in the load), at most `after_last` s more."""
        _wait(lambda: all(c.completed or c.error for c in calls), after_last)

    def __exit__(self, *exc: object) -> None:
        self.prober.kill()
        result = self.result
        result.switch_api_ms = percentiles(self.round_trips)
        seconds = max(time.monotonic() - self.began, 1e-6)
        result.elapsed = round(seconds, 2)
        result.controller_cpu_seconds = self.target.controller.usage().cpu - self.controller.cpu
        result.controller_cpu_percent = round(100 * result.controller_cpu_seconds / seconds, 1)
        simulator = self.bench.simulator.usage().cpu - self.simulator.cpu
        result.simulator_cpu_seconds = round(simulator, 2)
        result.simulator_cpu_percent = round(100 * simulator / seconds, 1)
        result.load_cpu_percent = round(100 * (time.process_time() - self.load) / seconds, 1)
        if self.scrape is None or not self.target.metrics_url:
            return
        after = metrics.scrape(self.target.metrics_url)
        name = f"{P}_esl_messages_total"
        result.esl_messages = int(after.total(name) - self.scrape.total(name))
        result.event_backlog_peak = int(after.total(f"{P}_event_backlog_peak"))
        lag = after.quantile(f"{P}_event_lag_seconds", 0.99, since=self.scrape)
        result.event_lag_ms_p99 = None if lag is None else round(lag * 1000, 2)
