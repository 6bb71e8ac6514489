"""Counting failed PINs and logins, persisted, to lock out guessing.

A key names what is being guessed at: `account:7` or `cid:4930123` for PINs, `user:alice` or
`ip:192.0.2.1` for web logins. Failures older than the window no longer count.
"""

from __future__ import annotations

from datetime import timedelta

from esl_callback.db import utcnow
from esl_callback.models import AuthFailure


def record_failure(kind: str, *keys: str) -> None:
    """Count one failure against each key."""
    now = utcnow()
    AuthFailure.insert_many(
        [{"kind": kind, "key": key, "created_at": now} for key in keys]
    ).execute()


def failures(kind: str, key: str, window_seconds: int) -> int:
    """Failures for `key` within the last `window_seconds`."""
    since = utcnow() - timedelta(seconds=window_seconds)
    return (
        AuthFailure.select()
        .where(AuthFailure.kind == kind, AuthFailure.key == key, AuthFailure.created_at >= since)
        .count()
    )


def is_locked(kind: str, keys: tuple[str, ...], limit: int, window_seconds: int) -> bool:
    """True when any key has reached `limit` failures inside the window."""
    return any(failures(kind, key, window_seconds) >= limit for key in keys)


def clear(kind: str, *keys: str) -> None:
    """Forget the failures of keys after a success."""
    AuthFailure.delete().where(AuthFailure.kind == kind, AuthFailure.key.in_(keys)).execute()
