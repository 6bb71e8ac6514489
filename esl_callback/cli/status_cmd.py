"""`esl-callback status`: the figures of a running controller, from its /metrics, at a terminal."""

from __future__ import annotations

import http.client
import json
import sys
import time
import urllib.error
import urllib.parse
from typing import Any

import click

from esl_callback import metrics
from esl_callback.cli.common import config_option, fail
from esl_callback.cli.config_cmd import load_settings_or_exit
from esl_callback.config import local_url

P = metrics.PREFIX


NODE_DOWN = 2  # exit status when a FreeSWITCH node is not connected


def metrics_url(config_path: str | None) -> str:
    """Where the controller configured by `config_path` serves /metrics."""
    cfg = load_settings_or_exit(config_path).metrics
    if not cfg.enabled:
        fail("metrics.enabled is false in this configuration: there is nothing to read")
    return f"{local_url(cfg.bind, cfg.port)}/metrics"


def summary(before: metrics.Snapshot, after: metrics.Snapshot) -> dict[str, Any]:
    """The operator's figures: now (from `after`) and rates over the time between the two."""
    seconds = max(after.taken_at - before.taken_at, 1e-9)

    def rate(name: str) -> float:
        return (after.total(name) - before.total(name)) / seconds

    def quantiles(name: str) -> dict[str, float | None]:
        return {
            "count": after.total(f"{name}_count"),
            "p50_ms": _ms(after.quantile(name, 0.50)),
            "p99_ms": _ms(after.quantile(name, 0.99)),
        }

    ended: dict[str, dict[str, float]] = {}
    for labels, value in after.samples.get(f"{P}_requests_ended_total", ()):
        causes = ended.setdefault(labels.get("outcome", ""), {})
        causes[labels.get("cause", "")] = value
    connected = after.by_label(f"{P}_node_connected", "node")
    legs = after.by_label(f"{P}_legs_live", "node")
    return {
        "nodes": {
            name: {"connected": bool(connected[name]), "live_legs": int(legs.get(name, 0))}
            for name in sorted(connected)
        },
        "requests_live": {
            k: int(v) for k, v in after.by_label(f"{P}_requests_live", "state").items()
        },
        "requests_ended": ended,
        "setups_total": after.total(f"{P}_setups_total"),
        "setups_per_second": rate(f"{P}_setups_total"),
        "interval_seconds": seconds,
        "event_backlog": int(after.total(f"{P}_event_backlog")),
        "event_backlog_peak": int(after.total(f"{P}_event_backlog_peak")),
        "calls_turned_away": int(after.total(f"{P}_calls_turned_away_total")),
        "event_lag": quantiles(f"{P}_event_lag_seconds"),
        "esl_commands": quantiles(f"{P}_esl_command_seconds"),
        "esl_messages_per_second": rate(f"{P}_esl_messages_total"),
        "database": quantiles(f"{P}_database_seconds"),
        "database_unreachable": int(after.total(f"{P}_database_unreachable_total")),
        "outbound_sessions": int(after.total(f"{P}_outbound_sessions")),
        "resident_memory_mb": after.total("process_resident_memory_bytes") / 2**20,
        "cpu_percent": 100 * rate("process_cpu_seconds_total"),
    }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 2)


def _latency(figures: dict[str, Any]) -> str:
    if not figures["count"]:
        return "none yet"
    return f"p50 {figures['p50_ms']} ms, p99 {figures['p99_ms']} ms ({int(figures['count'])})"


def render(url: str, s: dict[str, Any]) -> str:
    """The summary as lines for a terminal."""
    nodes = ", ".join(
        f"{name} {'connected' if node['connected'] else 'DOWN'} ({node['live_legs']} legs up)"
        for name, node in s["nodes"].items()
    )
    live = s["requests_live"]
    live_text = ", ".join(f"{state} {count}" for state, count in sorted(live.items()))
    ended = []
    for outcome, causes in sorted(s["requests_ended"].items()):
        detail = ", ".join(f"{c} {int(n)}" for c, n in sorted(causes.items()) if c)
        ended.append(f"{outcome} {int(sum(causes.values()))}" + (f" ({detail})" if detail else ""))
    rows = [
        ("FreeSWITCH", nodes or "no node configured"),
        ("Live requests", f"{sum(live.values())}" + (f": {live_text}" if live_text else "")),
        ("Ended", "; ".join(ended) or "none yet"),
        (
            "Bridged calls",
            f"{s['setups_per_second']:.1f}/s over {s['interval_seconds']:.1f} s "
            f"({int(s['setups_total'])} since start)",
        ),
        (
            "Event backlog",
            f"{s['event_backlog']} now, {s['event_backlog_peak']} at most, "
            f"{s['calls_turned_away']} new calls turned away over it",
        ),
        ("Event lag", _latency(s["event_lag"])),
        ("ESL commands", _latency(s["esl_commands"])),
        ("ESL messages", f"{s['esl_messages_per_second']:.0f}/s"),
        (
            "Database calls",
            f"{_latency(s['database'])}; {s['database_unreachable']} could not reach it",
        ),
        (
            "Process",
            f"{s['resident_memory_mb']:.0f} MB resident, {s['cpu_percent']:.0f}% CPU, "
            f"{s['outbound_sessions']} outbound sessions",
        ),
    ]
    width = max(len(label) for label, _ in rows)
    return "\n".join([f"esl-callback at {url}", *(f"  {k:<{width}}  {v}" for k, v in rows)])


@click.command("status")
@config_option("The controller's configuration file (its metrics section says where to look).")
@click.option("--url", help="The /metrics URL instead (e.g. http://10.0.0.5:9464/metrics).")
@click.option(
    "--interval",
    default=1.0,
    show_default=True,
    type=click.FloatRange(0.1, 60),
    help="Seconds between the two reads that rates are measured over.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def status(config_path: str | None, url: str | None, interval: float, as_json: bool) -> None:
    """Live figures of a running `serve`: calls, setups per second, backlog, latencies.

    Exits 0 when every FreeSWITCH node is connected, 2 when one is down (for monitoring
    scripts), 1 when serve's figures cannot be read.
    """
    url = url or metrics_url(config_path)
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        fail(f"--url {url!r}: give serve's metrics address, e.g. http://10.0.0.5:9464/metrics")
    try:
        before = metrics.scrape(url)
        time.sleep(interval)
        after = metrics.scrape(url)
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", None) or exc.__class__.__name__
        fail(f"cannot read {url}: {reason}; is `esl-callback serve` running with metrics on?")
    except ValueError as exc:
        fail(
            f"{url} did not answer with metrics ({exc}); point it at serve's metrics port "
            "(metrics.port), not the web portal or another service"
        )
    figures = summary(before, after)
    if as_json:
        click.echo(json.dumps(figures, indent=2, sort_keys=True))
    else:
        click.echo(render(url, figures))
    if not all(node["connected"] for node in figures["nodes"].values()):
        sys.exit(NODE_DOWN)


COMMANDS = [status]
