"""Tokens used up: the ids of sessions ended by logging out, one-use form tokens once submitted;
and tokens waiting for their one use (the digests of sign-in links, `hold` and `take`).

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
SIGN_IN_LINK = "sign_in_link"  # held until used: see `sign_in_links`
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


def hold(kind: str, token: str, lifetime_seconds: int) -> None:
    """Record `token` (a digest: never a secret in clear) as waiting for its one use, for
    `lifetime_seconds`; `take` uses it. Tokens past their lifetime are forgotten here."""
    now = utcnow()
    SpentToken.delete().where(SpentToken.expires_at < now).execute()
    SpentToken.create(kind=kind, token=token, expires_at=now + timedelta(seconds=lifetime_seconds))


def take(kind: str, token: str) -> bool:
    """Use a token recorded by `hold`: True once, before it expires; False after, or for a
    token never held. Two concurrent uses cannot both succeed: the first deletes the row."""
    taken = (
        SpentToken.delete()
        .where(
            SpentToken.kind == kind,
            SpentToken.token == token,
            SpentToken.expires_at >= utcnow(),
        )
        .execute()
    )
    return taken == 1
