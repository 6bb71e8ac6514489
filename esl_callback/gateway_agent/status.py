"""What the agent knows about itself, logged and served on its status port.

`GET /status` answers JSON (what `esl-callback gateway-agent --status` prints), `GET /metrics`
the same in Prometheus' text format (`esl_callback_agent_*`). Both are on 127.0.0.1 by default:
they hold no secret, but nothing outside the PC needs them.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

log = logging.getLogger(__name__)

REGISTRATION = {
    0: "not registered",
    1: "home network",
    2: "searching",
    3: "registration denied",
    4: "unknown",
    5: "roaming",
}


def signal_dbm(rssi: int | None) -> int | None:
    """AT+CSQ's <rssi> (0-31, 99 unknown) in dBm: -113 + 2 x rssi."""
    if rssi is None or not 0 <= rssi <= 31:
        return None
    return -113 + 2 * rssi


class AgentStatus:
    """Modem state, signal, registration, counters and the last error (thread-safe)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.modem_state = "starting"
        self.rssi: int | None = None
        self.registration: int | None = None
        self.last_error: str | None = None
        self.last_error_at: float | None = None
        self.platform_reachable: bool | None = None
        self.counts = {
            "calls": 0,
            "calls_not_allowed": 0,
            "sms_received": 0,
            "sms_not_allowed": 0,
            "unreadable": 0,
            "delivered": 0,
            "delivery_failures": 0,
            "replies_sent": 0,
            "modem_resets": 0,
            "noise_lines": 0,
        }

    def modem(self, state: str) -> None:
        with self.lock:
            self.modem_state = state

    def signal(self, rssi: int | None, registration: int | None) -> None:
        with self.lock:
            self.rssi, self.registration = rssi, registration

    def count(self, name: str, by: int = 1) -> None:
        with self.lock:
            self.counts[name] += by

    def error(self, message: str) -> None:
        with self.lock:
            self.last_error, self.last_error_at = message, time.time()

    def delivered(self) -> None:
        with self.lock:
            self.platform_reachable = True
            self.counts["delivered"] += 1

    def platform_down(self, message: str) -> None:
        with self.lock:
            self.platform_reachable = False
            self.counts["delivery_failures"] += 1
            self.last_error, self.last_error_at = message, time.time()

    def snapshot(self, queue: dict[str, Any]) -> dict[str, Any]:
        """Everything, as /status serves it; `queue` the outbox's figures."""
        with self.lock:
            return {
                "modem": {
                    "state": self.modem_state,
                    "signal_rssi": self.rssi,
                    "signal_dbm": signal_dbm(self.rssi),
                    "registration": REGISTRATION.get(self.registration or -1)
                    if self.registration is not None
                    else None,
                    "registered": self.registration in (1, 5),
                },
                "platform_reachable": self.platform_reachable,
                "queue": queue,
                "counts": dict(self.counts),
                "last_error": self.last_error,
                "last_error_at": self.last_error_at,
            }


class _Collector:
    """The snapshot as Prometheus metrics."""

    def __init__(self, snapshot: Callable[[], dict[str, Any]]) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterator[Any]:
        s = self.snapshot()
        modem, queue = s["modem"], s["queue"]
        yield _gauge(
            "modem_ready",
            "1 while the modem is initialised and answering",
            modem["state"] == "ready",
        )
        yield _gauge(
            "signal_dbm",
            "Signal strength (AT+CSQ), NaN when unknown",
            modem["signal_dbm"] if modem["signal_dbm"] is not None else float("nan"),
        )
        yield _gauge(
            "registered", "1 while registered (home network or roaming)", modem["registered"]
        )
        yield _gauge(
            "platform_reachable",
            "1 when the last delivery attempt reached the platform",
            bool(s["platform_reachable"]),
        )
        yield _gauge(
            "queue_length", "Calls and SMS waiting to reach the platform", queue["queue_length"]
        )
        yield _gauge(
            "oldest_waiting_seconds",
            "Age of the oldest item waiting (0: none)",
            queue["oldest_waiting_seconds"] or 0,
        )
        yield _gauge("replies_to_send", "Reply SMS waiting to be sent", queue["replies_to_send"])
        yield _gauge("unreadable_messages", "Malformed SMS kept on the SIM", queue["unreadable"])
        yield _gauge(
            "last_error_timestamp_seconds",
            "When the last error happened (0: never)",
            s["last_error_at"] or 0,
        )
        for name, value in s["counts"].items():
            counter = CounterMetricFamily(f"esl_callback_agent_{name}", f"Total {name}")
            counter.add_metric([], value)
            yield counter


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"esl_callback_agent_{name}", documentation, value=float(value))


class StatusServer:
    """/status and /metrics over HTTP, in a thread of its own."""

    def __init__(self, bind: str, port: int, snapshot: Callable[[], dict[str, Any]]) -> None:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Collector(snapshot))

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/status":
                    body, kind = json.dumps(snapshot(), indent=2).encode(), "application/json"
                elif self.path == "/metrics":
                    body, kind = generate_latest(registry), "text/plain; version=0.0.4"
                else:
                    self.send_error(404, "see /status and /metrics")
                    return
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                log.debug("status page: " + format, *args)

        self.server = ThreadingHTTPServer((bind, port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, name="agent-status", daemon=True
        )

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def start(self) -> StatusServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
