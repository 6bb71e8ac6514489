"""Tokens used up: the ids of sessions ended by logging out, one-use form tokens once submitted.

A form that must not be carried out twice (the call form: a double click would place two calls)
carries a one-use token (`new_form_token`); the first submission spends it, a second finds it
spent.

A session cookie is signed, not stored: logging out clears the browser's copy, but a copy kept
from before would still be valid until it expires. So the session's id is recorded as spent, in
the database (the portal may run in `serve` and alone, on the same data), until no cookie
carrying it can still be valid. Run these through `Database.run`.
"""

from __future__ import annotations

import secrets
from datetime import timedelta

import peewee

from esl_callback.db import database_proxy, utcnow
from esl_callback.models import SpentToken

SESSION = "session"
FORM = "form"
MAX_LENGTH = 64  # SpentToken.token


def new_form_token() -> str:
    """A fresh one-use token for a form (nothing is stored until it is spent)."""
    return secrets.token_urlsafe(24)


def spend(kind: str, token: str, lifetime_seconds: int) -> bool:
    """Record `token` as spent for `lifetime_seconds`; False if it already was (a second use).

    Two concurrent uses of one token cannot both succeed: the (kind, token) index is unique.
    Spent tokens past their lifetime are forgotten here.
    """
    now = utcnow()
    SpentToken.delete().where(SpentToken.expires_at < now).execute()
    try:
        with database_proxy.atomic():
            SpentToken.create(
                kind=kind, token=token, expires_at=now + timedelta(seconds=lifetime_seconds)
            )
    except peewee.IntegrityError:
        return False
    return True


def spent(kind: str, token: str) -> peewee.Select:
    """A query finding `token` among the spent ones (for `EXISTS` in a larger statement)."""
    return SpentToken.select(SpentToken.id).where(
        SpentToken.kind == kind, SpentToken.token == token
    )
