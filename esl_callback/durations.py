"""A length of time in words, as the portal and the desktop client both write it."""

from __future__ import annotations


def duration(seconds: int | None) -> str:
    """A length of time in words: 45 s, 8 min 09 s, 2 h 05 min."""
    seconds = max(int(seconds or 0), 0)
    if seconds < 60:
        return f"{seconds} s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"
