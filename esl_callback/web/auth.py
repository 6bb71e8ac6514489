"""Who is asking: logins with lockout, sessions, CSRF tokens and per-user API tokens.

A browser logs in with a form and then carries a signed session cookie (HttpOnly, SameSite=Lax,
Secure unless `web.secure_cookies` is off); every state-changing request it makes must carry the
session's CSRF token (form field `csrf_token` or header `X-CSRF-Token`). Each session has an id;
logging out records it as spent (`spent_tokens`), so a copy of the cookie kept from before no
longer logs in, while the user's sessions on other devices go on. A session also carries a
fingerprint of the user's password hash and session key: changing the password, or "log out
other sessions" (a new session key), ends every other session; the one that asked starts afresh.

A desktop or mobile client sends `Authorization: Bearer <token>` instead; no cookie is involved,
so no CSRF token either. A user may have several tokens (one per app), each listed in Settings
with its last use (written at most once a minute, so a busy app costs no write per request) and
revocable on its own.

Failed logins are persisted (`lockout`, kind "login"): a username is locked after
`web.login_max_failures` failures within `web.login_lockout_seconds`, an address after
`IP_FAILURE_FACTOR` times as many (many usernames tried from one place). A locked login is refused
before its password is even checked; a wrong current password typed in Settings counts the same
(a session left open must not become a way to guess the password). Argon2 runs in gevent's
thread pool, never on the loop. Nothing here logs a password, a PIN or a token.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

import gevent
from flask import request, session
from peewee import fn

from esl_callback import accounts, lockout
from esl_callback.callback.status import iso
from esl_callback.db import utcnow
from esl_callback.hashing import hash_api_token, hash_password, new_api_token, verify_password
from esl_callback.models import Account, ApiToken, WebUser
from esl_callback.web import spent_tokens
from esl_callback.web.errors import Forbidden, Invalid, NotFound, TooMany, Unauthorised
from esl_callback.web.portal import Portal

log = logging.getLogger(__name__)

LOGIN = "login"
IP_FAILURE_FACTOR = 5
WRONG_LOGIN = "The username or password is wrong: check both and try again."
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
SESSION_ID = "sid"
# A request in flight when its session ends may still re-sign the cookie a moment later.
SESSION_END_MARGIN_SECONDS = 60
# A token's last use is written when the one stored is older than this.
LAST_USE_STEP = timedelta(minutes=1)
TOKEN_LABEL_LENGTH = 64


@dataclass(frozen=True)
class CurrentUser:
    """The logged-in user and what every page shows of their account."""

    id: int
    username: str
    account_id: int
    account_name: str
    account_active: bool
    balance: Decimal
    currency: str
    default_callback_number: str | None
    allow_any_source: bool
    fingerprint: str  # changes with the password and session key: the change ends old sessions


def fingerprint(password_hash: str, session_key: str | None = None) -> str:
    """What a session must carry to be the user's: it changes with the password and the
    session key (None, for users who never logged out other sessions, leaves it as it was)."""
    material = password_hash if session_key is None else f"{password_hash}\n{session_key}"
    return hashlib.sha256(material.encode()).hexdigest()[:16]


def _current(user: WebUser, account: Account) -> CurrentUser:
    return CurrentUser(
        id=user.id,
        username=user.username,
        account_id=account.id,
        account_name=account.name,
        account_active=account.is_active,
        balance=account.balance,
        currency=account.currency,
        default_callback_number=account.default_callback_number,
        allow_any_source=account.allow_any_source,
        fingerprint=fingerprint(user.password_hash, user.session_key),
    )


def _load(*where: object) -> CurrentUser | None:
    row = WebUser.select(WebUser, Account).join(Account).where(*where).first()
    return None if row is None else _current(row, row.account)


def load_user(user_id: int) -> CurrentUser | None:
    """The user with this id and their account (run through `Database.run`)."""
    return _load(WebUser.id == user_id)


def session_user(user_id: int, session_id: str) -> CurrentUser | None:
    """The user of a session that was not ended by logging out (one statement)."""
    ended = spent_tokens.spent(spent_tokens.SESSION, session_id)
    return _load(WebUser.id == user_id, ~fn.EXISTS(ended))


def user_for_token(token: str) -> CurrentUser | None:
    """The user whose API token this is, noting its use (run through `Database.run`)."""
    found = (
        ApiToken.select(ApiToken.id, ApiToken.web_user, ApiToken.last_used_at)
        .where(ApiToken.token_hash == hash_api_token(token))
        .first()
    )
    if found is None:
        return None
    now = utcnow()
    if found.last_used_at is None or now - found.last_used_at >= LAST_USE_STEP:
        ApiToken.update(last_used_at=now).where(ApiToken.id == found.id).execute()
    return load_user(found.web_user_id)


# -- logging in -----------------------------------------------------------------------------


def _keys(username: str, address: str) -> tuple[str, str]:
    return f"user:{username.strip().lower()}", f"ip:{address}"


def _locked(username: str, address: str, limit: int, window: int) -> bool:
    user_key, ip_key = _keys(username, address)
    return lockout.is_locked(LOGIN, (user_key,), limit, window) or lockout.is_locked(
        LOGIN, (ip_key,), limit * IP_FAILURE_FACTOR, window
    )


def _find_user(username: str) -> WebUser | None:
    return WebUser.get_or_none(WebUser.username == username.strip())


def _succeeded(user_id: int, username: str, address: str) -> CurrentUser | None:
    lockout.clear(LOGIN, _keys(username, address)[0])
    WebUser.update(last_login_at=utcnow()).where(WebUser.id == user_id).execute()
    return load_user(user_id)


@functools.cache
def _decoy_hash() -> str:
    """A hash to check unknown usernames against, so they take as long as known ones."""
    return hash_password(secrets.token_hex(16))


def check_password(stored_hash: str | None, candidate: str) -> bool:
    """Argon2 verification in gevent's thread pool (it costs tens of ms of CPU)."""
    return gevent.get_hub().threadpool.apply(verify_password, (stored_hash, candidate))


def attempt_login(portal: Portal, username: str, password: str, address: str) -> CurrentUser:
    """The user if the password is right; else Unauthorised, or TooMany while locked out."""
    web = portal.settings.web
    window = web.login_lockout_seconds
    if portal.run(_locked, username, address, web.login_max_failures, window):
        minutes = max(window // 60, 1)
        raise TooMany(
            f"Too many failed logins: try again in about {minutes} minute(s).",
            retry_after=window,
        )
    user = portal.run(_find_user, username) if username.strip() else None
    if not check_password(user.password_hash if user else _decoy_hash(), password) or not user:
        portal.run(lockout.record_failure, LOGIN, *_keys(username, address))
        raise Unauthorised(WRONG_LOGIN)
    current = portal.run(_succeeded, user.id, username, address)
    if current is None:
        raise Unauthorised(WRONG_LOGIN)
    return current


# -- self-service: password, other sessions --------------------------------------------------


def _password_hash(user_id: int) -> str:
    return WebUser.get_by_id(user_id).password_hash


def confirm_password(portal: Portal, user: CurrentUser, password: str, address: str) -> None:
    """Invalid (on `current_password`) unless `password` is the user's; a wrong one counts
    towards the login lockout, and while locked out it is not even checked (TooMany)."""
    web = portal.settings.web
    window = web.login_lockout_seconds
    if portal.run(_locked, user.username, address, web.login_max_failures, window):
        minutes = max(window // 60, 1)
        raise TooMany(
            f"Too many wrong passwords: try again in about {minutes} minute(s).",
            retry_after=window,
        )
    if not check_password(portal.run(_password_hash, user.id), password):
        portal.run(lockout.record_failure, LOGIN, *_keys(user.username, address))
        raise Invalid("That is not your current password.", field="current_password")


def read_new_password(form: Any) -> str:
    """The new password of a form (`new_password`, typed twice), or Invalid saying why not."""
    new, again = form.get("new_password") or "", form.get("new_password_again") or ""
    if len(new) < accounts.MIN_PASSWORD_LENGTH:
        raise Invalid(
            f"Your new password is too short: use at least {accounts.MIN_PASSWORD_LENGTH} "
            "characters.",
            field="new_password",
        )
    if new != again:
        raise Invalid(
            "The two new passwords are not the same: type it again.", field="new_password_again"
        )
    return new


def change_password(portal: Portal, user: CurrentUser, new_password: str) -> CurrentUser:
    """Store the new password (its fingerprint ends the user's other sessions)."""
    hashed = gevent.get_hub().threadpool.apply(hash_password, (new_password,))
    portal.run(lambda: WebUser.update(password_hash=hashed).where(WebUser.id == user.id).execute())
    log.info("web user %s changed their password", user.username)
    return portal.run(load_user, user.id)


def end_other_sessions(user_id: int) -> CurrentUser | None:
    """A new session key: every session of the user ends; the caller starts a new one."""
    WebUser.update(session_key=secrets.token_hex(16)).where(WebUser.id == user_id).execute()
    return load_user(user_id)


# -- API tokens -----------------------------------------------------------------------------


def issue_token(user_id: int, label: str = "App") -> str:
    """A new API token for the user, besides any others; only its hash is kept."""
    token = new_api_token()
    ApiToken.create(web_user=user_id, token_hash=hash_api_token(token), label=label)
    return token


def tokens(user_id: int) -> list[dict[str, Any]]:
    """The user's API tokens (never the tokens themselves), newest first."""
    return [
        {
            "id": token.id,
            "label": token.label,
            "created_at": iso(token.created_at),
            "last_used_at": iso(token.last_used_at),
        }
        for token in ApiToken.select()
        .where(ApiToken.web_user == user_id)
        .order_by(ApiToken.created_at.desc(), ApiToken.id.desc())
    ]


def revoke_token(user_id: int, token_id: int) -> str:
    """Revoke one of the user's API tokens (the settings page); its label."""
    token = ApiToken.get_or_none(ApiToken.id == token_id, ApiToken.web_user == user_id)
    if token is None:
        raise NotFound("That token is not one of yours, or it was revoked already.")
    token.delete_instance()
    return token.label


def revoke_own_token(token: str) -> None:
    """Revoke this API token (an app logging out); the user's other tokens are left alone."""
    ApiToken.delete().where(ApiToken.token_hash == hash_api_token(token)).execute()


# -- sessions and CSRF ----------------------------------------------------------------------


def bearer_token() -> str | None:
    """The token of an `Authorization: Bearer ...` header, if the request has one."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def resolve_user(portal: Portal) -> CurrentUser | None:
    """The user a request is made by: its bearer token, else its session; None if neither."""
    token = bearer_token()
    if token is not None:
        user = portal.run(user_for_token, token)
        if user is None:
            raise Unauthorised("That API token is not valid (revoked, or mistyped): sign in again.")
        return user
    user_id, session_id = session.get("uid"), session.get(SESSION_ID)
    if not isinstance(user_id, int):
        return None
    if not isinstance(session_id, str):  # a session from before sessions had ids: log in again
        session.clear()
        return None
    user = portal.run(session_user, user_id, session_id)
    if user is None or not hmac.compare_digest(session.get("fp", ""), user.fingerprint):
        session.clear()
        return None
    return user


def start_session(user: CurrentUser) -> None:
    """A fresh session for a user who just logged in (never reuse the one before login)."""
    session.clear()
    session.permanent = True
    session["uid"] = user.id
    session[SESSION_ID] = secrets.token_urlsafe(24)
    session["fp"] = user.fingerprint
    session[CSRF_FIELD] = secrets.token_urlsafe(32)


def end_session(portal: Portal) -> None:
    """Log out: clear the session and record its id as spent, so no copy of it logs in again.

    It stays recorded for as long as a cookie signed before now can be valid.
    """
    session_id = session.get(SESSION_ID)
    if isinstance(session_id, str):
        lifetime = portal.settings.web.session_lifetime_seconds + SESSION_END_MARGIN_SECONDS
        portal.run(spent_tokens.spend, spent_tokens.SESSION, session_id, lifetime)
    session.clear()


def csrf_token() -> str:
    """The session's CSRF token, made on first use (the login form needs one too)."""
    token = session.get(CSRF_FIELD)
    if not token:
        token = session[CSRF_FIELD] = secrets.token_urlsafe(32)
    return token


def check_csrf() -> None:
    """Refuse a state-changing request made with the session cookie but without its token."""
    sent = request.headers.get(CSRF_HEADER) or request.form.get(CSRF_FIELD) or ""
    expected = session.get(CSRF_FIELD) or ""
    # As bytes: compare_digest refuses str with non-ASCII characters (TypeError), and a token
    # typed as "é" is simply wrong.
    if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        raise Forbidden(
            "This form has expired or is missing its security token: reload the page and try again."
        )
