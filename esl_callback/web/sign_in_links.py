"""One-time sign-in links: an app holding an API token opens a portal page already signed in.

A desktop or mobile app asks for a link to one of `PAGES` (`POST /api/v1/sign-in-links`) and
opens it in the browser. The link carries a fresh random secret, never the API token; it signs in
once, within `LIFETIME_SECONDS`, and starts an ordinary portal session. Only the SHA-256 digest of
the link's token is stored (`spent_tokens.hold`, kind `sign_in_link`); opening the link deletes
that row (`spent_tokens.take`), so of two uses of one link only the first signs in, and a link
read later from the browser's history or a log opens nothing. Run `issue` and `redeem` through
`Database.run`.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from esl_callback.db import utcnow
from esl_callback.web import spent_tokens
from esl_callback.web.auth import CurrentUser, load_user

LIFETIME_SECONDS = 60
# The portal pages a link may open: its name in the API, the page's endpoint.
PAGES = {
    "call": "pages.call",
    "history": "pages.history_page",
    "payments": "pages.payments",
    "phonebook": "pages.phonebook_list",
    "settings": "pages.settings",
}
MAX_TOKEN_LENGTH = 200  # a longer token is no token of ours: refused before any lookup


@dataclass(frozen=True)
class Link:
    """A link just issued: its token (for the URL, shown once) and when it stops working."""

    token: str
    page: str
    expires_at: datetime


def digest(token: str) -> str:
    """What is stored of a link's token (64 hex digits)."""
    return hashlib.sha256(token.encode()).hexdigest()


def issue(user_id: int, page: str) -> Link:
    """A new one-time link for the user to `page` (one of `PAGES`).

    The token names the user and the page in clear (they are not secret) and ends with the
    random secret; its digest covers all three, so neither can be changed.
    """
    if page not in PAGES:
        raise ValueError(f"no page {page!r} to link to")
    token = f"{user_id}.{page}.{secrets.token_urlsafe(32)}"
    spent_tokens.hold(spent_tokens.SIGN_IN_LINK, digest(token), LIFETIME_SECONDS)
    return Link(token, page, utcnow() + timedelta(seconds=LIFETIME_SECONDS))


def redeem(token: str) -> tuple[CurrentUser, str] | None:
    """The user to sign in and the page's name, the first time a valid link is opened; None
    for a link that is unknown, expired, already used, or whose user is gone."""
    user_part, _, rest = token.partition(".")
    page, _, secret = rest.partition(".")
    if len(token) > MAX_TOKEN_LENGTH or not (user_part.isascii() and user_part.isdecimal()):
        return None
    if page not in PAGES:
        return None
    if not secret or not spent_tokens.take(spent_tokens.SIGN_IN_LINK, digest(token)):
        return None
    user = load_user(int(user_part))
    return None if user is None else (user, page)
