"""Counting failed PINs and logins, persisted, to lock out guessing.

A key names what is being guessed at: `account:7` or `cid:4930123` for PINs, `user:alice` or
`ip:192.0.2.1` for web logins. Failures older than the window no longer count.
"""

from __future__ import annotations

from datetime import timedelta

from peewee import fn

from esl_callback.db import utcnow
from esl_callback.models import AuthFailure
from esl_callback.statements import Insert, ListStatement, Statement

_INSERT = Insert(AuthFailure)
_COUNT = Statement(
    lambda s: AuthFailure.select(fn.COUNT(AuthFailure.id)).where(
        AuthFailure.kind == s.kind, AuthFailure.key == s.key, AuthFailure.created_at >= s.since
    )
)
_CLEAR = ListStatement(
    lambda s, keys: AuthFailure.delete().where(
        AuthFailure.kind == s.kind, AuthFailure.key.in_(keys)
    )
)


def record_failure(kind: str, *keys: str) -> None:
    """Count one failure against each key."""
    now = utcnow()
    for key in keys:
        _INSERT.create(kind=kind, key=key, created_at=now)


def failures(kind: str, key: str, window_seconds: int) -> int:
    """Failures for `key` within the last `window_seconds`."""
    since = utcnow() - timedelta(seconds=window_seconds)
    (count,) = _COUNT.first(kind=kind, key=key, since=since)
    return count


def is_locked(kind: str, keys: tuple[str, ...], limit: int, window_seconds: int) -> bool:
    """True when any key has reached `limit` failures inside the window."""
    return any(failures(kind, key, window_seconds) >= limit for key in keys)


def clear(kind: str, *keys: str) -> None:
    """Forget the failures of keys after a success."""
    _CLEAR.execute(list(keys), kind=kind)
