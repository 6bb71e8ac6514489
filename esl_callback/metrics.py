"""Prometheus metrics of a running controller, the `/metrics` server, and reading them back.

Counters and histograms live here and are updated where things happen (the dialer counts
requests and setups, `instrument` times database calls and ESL commands, `observe_event` the
events); figures of the present (live requests by state, live legs per node, event backlog,
connections) are read from the running `Service` when scraped. Everything is in `REGISTRY`,
with the process's CPU and memory.

`/metrics` is served on its own port (config section `metrics`), not on the web portal: it works
when the portal is disabled, it is never exposed where the portal is published, and a scrape never
waits behind portal requests. `esl-callback status` and `scripts/bench` read it with `scrape`.
"""

from __future__ import annotations

import math
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    ProcessCollector,
    make_wsgi_app,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.parser import text_string_to_metric_families

from esl_callback.db import UNREACHABLE
from esl_callback.switch.connection import TRAFFIC

PREFIX = "esl_callback"
# Seconds: from 0.5 ms (a local api reply) to 10 s (a command timing out).
LATENCY_BUCKETS = (
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0,
)  # fmt: skip

REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)

REQUESTS_STARTED = Counter(
    f"{PREFIX}_requests_started",
    "Callback flows started, by mode (two_stage, source_first, simultaneous, verify).",
    ["mode"],
    registry=REGISTRY,
)
REQUESTS_ENDED = Counter(
    f"{PREFIX}_requests_ended",
    "Requests ended, by outcome (completed, failed, cancelled, rejected) and cause.",
    ["outcome", "cause"],
    registry=REGISTRY,
)
TURNED_AWAY = Counter(
    f"{PREFIX}_calls_turned_away",
    "New callbacks turned away because the node was too far behind in its events "
    "(freeswitch.max_event_backlog).",
    ["node"],
    registry=REGISTRY,
)
SETUPS = Counter(
    f"{PREFIX}_setups",
    "Callbacks set up: both legs bridged (rate() = setups per second).",
    registry=REGISTRY,
)
COMMAND_SECONDS = Histogram(
    f"{PREFIX}_esl_command_seconds",
    "Time from sending an api/bgapi command to FreeSWITCH's reply, by command.",
    ["command"],
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)
DATABASE_SECONDS = Histogram(
    f"{PREFIX}_database_seconds",
    "Time a database call took as its caller saw it (queueing for the SQLite thread included).",
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)
DATABASE_UNREACHABLE = Counter(
    f"{PREFIX}_database_unreachable",
    "Database calls that failed because the database could not be reached (server stopped, "
    "file locked by another process, disk full).",
    registry=REGISTRY,
)
SWITCH_CDRS = Counter(
    f"{PREFIX}_switch_cdrs",
    "Deliveries of the switch's CDRs (mod_json_cdr), by what they did: billed (an open leg), "
    "rebilled (a leg closed LOST_WHILE_DISCONNECTED), duplicate, mismatch (billed already with "
    "another billsec: look at it), unknown (not one of our legs).",
    ["outcome"],
    registry=REGISTRY,
)
EVENT_LAG_SECONDS = Histogram(
    f"{PREFIX}_event_lag_seconds",
    "From an event's Event-Date-Timestamp on the switch to its dispatch here (needs NTP).",
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)


def observe_event(event: Any) -> None:
    """Note one event as it is dispatched: how long after the switch stamped it."""
    stamp = event.get("Event-Date-Timestamp")
    if stamp and stamp.isdigit():
        EVENT_LAG_SECONDS.observe(max(0.0, time.time() - int(stamp) / 1e6))


def timed(histogram: Any, fn: Callable[..., Any]) -> Callable[..., Any]:
    """`fn` observing its duration in `histogram` (a labelled child or a plain histogram)."""

    def call(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            histogram.observe(time.perf_counter() - started)

    return call


def _counting_unreachable(run: Callable[..., Any]) -> Callable[..., Any]:
    """`run` counting the calls that failed because the database could not be reached."""

    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return run(*args, **kwargs)
        except UNREACHABLE:
            DATABASE_UNREACHABLE.inc()
            raise

    return call


def command_name(command: str) -> str:
    """The label of an api command: its verb (`originate`, `uuid_bridge`), never its data."""
    return command.split(" ", 1)[0][:32]


def instrument(service: Any) -> None:
    """Time the database and the ESL commands of `service`, and describe it when scraped."""
    service.db.run = timed(DATABASE_SECONDS, _counting_unreachable(service.db.run))
    for node in service.nodes:
        # Served as 0 from the start, so that an alert on `increase()` sees the first one.
        TURNED_AWAY.labels(node.name)
        node.api = _timed_command(node.api, "api")
        node.api_all = _timed_command(node.api_all, "api", together=True)
        node.bgapi = _timed_command(node.bgapi, "bgapi")
    COLLECTOR.service = service


def _timed_command(
    send: Callable[..., Any], kind: str, together: bool = False
) -> Callable[..., Any]:
    """`send` observing each command's latency, labelled by its verb. With `together`, `send`
    takes a list of commands sent at once; each is observed with the time the group took (its
    reply arrived within it)."""

    def call(sent: Any, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return send(sent, *args, **kwargs)
        finally:
            took = time.perf_counter() - started
            for command in sent if together else [sent]:
                COMMAND_SECONDS.labels(f"{kind} {command_name(command)}").observe(took)

    return call


class ServiceCollector:
    """Figures of the present, read from the running service at each scrape."""

    service: Any = None

    def collect(self) -> Iterator[Any]:
        service = self.service
        if service is None:
            return
        dialer, router = service.dialer, service.router
        live = GaugeMetricFamily(
            f"{PREFIX}_requests_live", "Requests being handled now, by state.", labels=["state"]
        )
        by_state: dict[str, int] = {}
        legs: dict[str, int] = {node.name: 0 for node in service.nodes}
        for flow in list(dialer.flows.values()):
            by_state[str(flow.state)] = by_state.get(str(flow.state), 0) + 1
            for leg in list(flow.every_leg.values()):
                if not leg.ended:
                    legs[leg.node] = legs.get(leg.node, 0) + 1
        for adopted in list(dialer.adopted.values()):  # bridged calls taken over at a start
            by_state["bridged"] = by_state.get("bridged", 0) + 1
            for node in adopted.values():
                legs[node.name] = legs.get(node.name, 0) + 1
        for state, count in sorted(by_state.items()):
            live.add_metric([state], count)
        yield live
        legs_live = GaugeMetricFamily(
            f"{PREFIX}_legs_live", "Call legs up now, per FreeSWITCH node.", labels=["node"]
        )
        connected = GaugeMetricFamily(
            f"{PREFIX}_node_connected", "1 while the node's ESL connection is up.", labels=["node"]
        )
        backlog = GaugeMetricFamily(
            f"{PREFIX}_event_backlog",
            "Events a node has sent that are not read yet (estimated from the socket's buffer).",
            labels=["node"],
        )
        for node in service.nodes:
            legs_live.add_metric([node.name], legs.get(node.name, 0))
            connected.add_metric([node.name], 1 if node.connected else 0)
            backlog.add_metric([node.name], node.queued_events())
        yield legs_live
        yield connected
        yield backlog
        yield GaugeMetricFamily(
            f"{PREFIX}_event_backlog_peak",
            "The largest event backlog seen since start (unread from a node, or queued for a "
            "handler).",
            value=max([router.peak_backlog, *(node.peak_backlog for node in service.nodes)]),
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_outbound_sessions",
            "Outbound-socket sessions open now.",
            value=service.outbound.live_sessions,
        )
        events = CounterMetricFamily(
            f"{PREFIX}_events",
            "ESL events routed to a call or handler, or dropped.",
            labels=["fate"],
        )
        events.add_metric(["dispatched"], router.dispatched)
        events.add_metric(["dropped"], router.dropped.total())
        yield events
        messages = CounterMetricFamily(
            f"{PREFIX}_esl_messages",
            "ESL frames read and commands written, all connections.",
            labels=["direction"],
        )
        messages.add_metric(["in"], TRAFFIC.frames_in)
        messages.add_metric(["out"], TRAFFIC.frames_out)
        yield messages


COLLECTOR = ServiceCollector()
REGISTRY.register(COLLECTOR)


def serve(bind: str, port: int) -> Any:
    """Serve `REGISTRY` at /metrics on bind:port (0: any free port); returns the server."""
    from esl_callback.web.server import NoDelayWSGIServer

    exporter = make_wsgi_app(REGISTRY)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if environ.get("PATH_INFO") != "/metrics":
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"metrics are at /metrics\n"]
        return exporter(environ, start_response)

    server = NoDelayWSGIServer((bind, port), app, log=None)
    server.start()
    return server


# -- reading them back (esl-callback status, scripts/bench) -------------------------------------


@dataclass
class Snapshot:
    """One scrape of /metrics: samples by name, each a list of (labels, value)."""

    taken_at: float
    samples: dict[str, list[tuple[dict[str, str], float]]] = field(default_factory=dict)

    def total(self, name: str, **labels: str) -> float:
        """Sum of the samples named `name` whose labels include `labels`."""
        return sum(
            value
            for found, value in self.samples.get(name, ())
            if all(found.get(k) == v for k, v in labels.items())
        )

    def by_label(self, name: str, label: str) -> dict[str, float]:
        """Sum of samples named `name`, grouped by the value of `label`."""
        grouped: dict[str, float] = {}
        for found, value in self.samples.get(name, ()):
            key = found.get(label, "")
            grouped[key] = grouped.get(key, 0.0) + value
        return grouped

    def buckets(self, name: str) -> list[tuple[float, float]]:
        """(upper bound, cumulative count) of a histogram, all label sets added up."""
        summed: dict[float, float] = {}
        for found, value in self.samples.get(f"{name}_bucket", ()):
            bound = float(found["le"])
            summed[bound] = summed.get(bound, 0.0) + value
        return sorted(summed.items())

    def quantile(self, name: str, q: float, since: Snapshot | None = None) -> float | None:
        """Estimated `q` quantile of a histogram (since an earlier snapshot); None if empty."""
        now = self.buckets(name)
        before = dict(since.buckets(name)) if since is not None else {}
        counts = [(bound, count - before.get(bound, 0.0)) for bound, count in now]
        return bucket_quantile(counts, q)


def bucket_quantile(buckets: list[tuple[float, float]], q: float) -> float | None:
    """Prometheus' histogram_quantile: linear within the bucket the rank falls in."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (
                count - lower_count
            )
        lower_bound, lower_count = bound, count
    return lower_bound


def parse(text: str, taken_at: float | None = None) -> Snapshot:
    """A Snapshot of Prometheus text exposition format."""
    snapshot = Snapshot(time.time() if taken_at is None else taken_at)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            snapshot.samples.setdefault(sample.name, []).append(
                (dict(sample.labels), float(sample.value))
            )
    return snapshot


def scrape(url: str, timeout: float = 5.0) -> Snapshot:
    """GET `url` (a /metrics endpoint) and parse it."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return parse(response.read().decode("utf-8"))
