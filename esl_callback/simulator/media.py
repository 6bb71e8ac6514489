"""How long a sound plays: files from the config, tone/silence/local streams, file_string."""

from __future__ import annotations

import math
import re

INFINITE = math.inf

_TONE_SEGMENT = re.compile(r"%\(([^)]*)\)")


def tone_duration(spec: str) -> float:
    """Seconds a ``tone_stream://`` plays (``loops=-1`` plays forever)."""
    loops = 1
    match = re.search(r"loops=(-?\d+)", spec)
    if match:
        loops = int(match.group(1))
    once = 0.0
    for segment in _TONE_SEGMENT.findall(spec):
        parts = [p for p in segment.split(",") if p.strip()]
        if len(parts) >= 2:
            once += (float(parts[0]) + float(parts[1])) / 1000.0
        elif parts:
            once += float(parts[0]) / 1000.0
    if loops < 0:
        return INFINITE
    return once * max(loops, 1)


def duration(path: str, files: dict[str, float], default: float) -> float:
    """Seconds ``path`` plays; INFINITE for streams that never end on their own."""
    if path.startswith("file_string://"):
        return sum(duration(p, files, default) for p in path[14:].split("!") if p)
    if path.startswith("tone_stream://"):
        return tone_duration(path)
    if path.startswith("silence_stream://"):
        ms = path[17:].split(",")[0].strip()
        value = int(ms) if ms.lstrip("-").isdigit() else 0
        return INFINITE if value < 0 else value / 1000.0
    if path.startswith(("local_stream://", "shout://")):
        return INFINITE
    return files.get(path, default)


def full_path(path: str, sound_prefix: str | None) -> str:
    """The file name after sound_prefix, as in Playback-File-Path."""
    if "://" in path or path.startswith("/") or not sound_prefix:
        return path
    return f"{sound_prefix}/{path}"


def file_type(path: str) -> str | None:
    """Playback-File-Type (only streams that generate their audio report one)."""
    return "tone_stream" if path.startswith("tone_stream://") else None
