"""The benchmark's results: a table for the terminal (and the README), and the JSON file."""

from __future__ import annotations

from typing import Any


def _fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        value = f"{value:.1f}" if value >= 10 else f"{value:.2f}"
    return f"{value}{unit}"


def _ms3(figures: dict[str, Any] | None) -> str:
    if not figures or figures.get("p50") is None:
        return "n/a"
    return f"{_fmt(figures['p50'])} / {_fmt(figures['p95'])} / {_fmt(figures['p99'])}"


def summarise(target: dict[str, Any], latency_rate: float) -> dict[str, Any]:
    """The headline figures of one target from its steps and concurrency run."""
    steps = target["steps"]
    confirmed = target.get("confirmed")
    sustained = [s for s in steps if s["sustained"]]
    at_rate = next((s for s in sustained if s["rate"] == latency_rate), None)
    if at_rate is None and sustained:  # it did not keep up at that rate: its best one
        at_rate = max(sustained, key=lambda s: s["rate"])
    held = target.get("concurrency") or {}
    best_step = max((s for s in steps if s["sustained"]), key=lambda s: s["rate"], default=None)
    return {
        "name": target["name"],
        "sustained_rate": confirmed["rate"] if confirmed and confirmed["sustained"] else None,
        "sustained_seconds": confirmed["seconds"] if confirmed else None,
        "best_step_rate": best_step["rate"] if best_step else None,
        "latency_rate": at_rate["rate"] if at_rate else None,
        "setup_ms": at_rate["setup_ms"] if at_rate else None,
        "bridge_ms": at_rate["bridge_ms"] if at_rate else None,
        "cpu_ms_per_callback": at_rate["controller_cpu_ms_per_callback"] if at_rate else None,
        "esl_messages_per_callback": at_rate["esl_messages_per_callback"] if at_rate else None,
        "cores_needed": at_rate["cores_needed"] if at_rate else None,
        "held_calls": held.get("bridged_at_once"),
        "rss_per_call_kb": held.get("rss_per_call_kb"),
        "rss_held_mb": held.get("controller_rss_held_mb"),
        "held_setup_p99_ms": (held.get("probe") or {}).get("setup_ms", {}).get("p99"),
        "held_event_lag_p99_ms": (held.get("probe") or {}).get("event_lag_ms_p99"),
        "event_backlog_peak": max([s["event_backlog_peak"] or 0 for s in steps] + [0])
        if target.get("metrics")
        else None,
    }


ROWS = (
    ("Highest rate sustained, zero failures (callbacks/s)", "sustained"),
    ("Offered rate the next five rows were measured at (callbacks/s)", "rate"),
    ("Trigger -> leg A originate, p50/p95/p99 (ms)", "setup"),
    ("Leg B answer -> bridge, p50/p95/p99 (ms)", "bridge"),
    ("Controller CPU per completed callback (ms)", "cpu"),
    ("Cores needed at that rate, controller / simulator (over 1: full)", "cores"),
    ("ESL messages per callback", "messages"),
    ("Bridged calls held at once", "held"),
    ("Controller RSS per live call (KB)", "rss"),
    ("Controller RSS with the calls up (MB)", "rss_total"),
    ("Trigger -> originate p99 while they are up (ms)", "held_setup"),
    ("Event lag p99 while they are up (ms)", "held_lag"),
    ("Largest event backlog (events)", "backlog"),
)


def _cell(summary: dict[str, Any], key: str) -> str:
    s = summary
    return {
        "sustained": (
            f"{_fmt(s['sustained_rate'])} for {_fmt(s['sustained_seconds'])} s"
            if s["sustained_rate"]
            else f"none confirmed (best step {_fmt(s['best_step_rate'])})"
        ),
        "rate": _fmt(s["latency_rate"]),
        "setup": _ms3(s["setup_ms"]),
        "bridge": _ms3(s["bridge_ms"]),
        "cpu": _fmt(s["cpu_ms_per_callback"]),
        "cores": (
            " / ".join(_fmt(n) for n in s["cores_needed"].values()) if s["cores_needed"] else "n/a"
        ),
        "messages": _fmt(s["esl_messages_per_callback"]),
        "held": _fmt(s["held_calls"]),
        "rss": _fmt(s["rss_per_call_kb"]),
        "rss_total": _fmt(s["rss_held_mb"]),
        "held_setup": _fmt(s["held_setup_p99_ms"]),
        "held_lag": _fmt(s["held_event_lag_p99_ms"]),
        "backlog": _fmt(s["event_backlog_peak"]),
    }[key]


def table(summaries: list[dict[str, Any]]) -> str:
    """A Markdown table: one row per figure, one column per target."""
    header = ["Figure", *(s["name"] for s in summaries)]
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
    ]
    for label, key in ROWS:
        cells = [label, *(_cell(s, key) for s in summaries)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def ratios(ours: dict[str, Any], plain: dict[str, Any]) -> dict[str, Any] | None:
    """esl-callback's figures divided by plain greenswitch's (below 1: ours is better).

    CPU and setup latency are compared at the highest offered rate both sustained.
    """
    rates = {s["rate"] for s in ours["steps"] if s["sustained"]}
    rates &= {s["rate"] for s in plain["steps"] if s["sustained"]}
    if not rates:
        return None
    rate = max(rates)
    a = next(s for s in ours["steps"] if s["rate"] == rate)
    b = next(s for s in plain["steps"] if s["rate"] == rate)

    def ratio(x: float | None, y: float | None) -> float | None:
        return round(x / y, 2) if x is not None and y else None

    rss = [(t.get("concurrency") or {}).get("rss_per_call_kb") for t in (ours, plain)]
    return {
        "at_rate": rate,
        "cpu_per_callback": ratio(
            a["controller_cpu_ms_per_callback"], b["controller_cpu_ms_per_callback"]
        ),
        "setup_p99": ratio(a["setup_ms"]["p99"], b["setup_ms"]["p99"]),
        "rss_per_live_call": ratio(*rss),
    }
