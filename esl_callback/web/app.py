"""The Flask application: portal pages and the JSON API, over one set of domain functions."""

from __future__ import annotations

import logging
import secrets
from datetime import timedelta
from typing import Any

from flask import Flask, Response, g, render_template, request
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.routing import IntegerConverter

from esl_callback.callback.status import StatusHub
from esl_callback.db import UNREACHABLE, Database, in_words
from esl_callback.web import api, auth, formats, operator_api, pages, sms_api, spent_tokens
from esl_callback.web.errors import Unavailable, WebError
from esl_callback.web.portal import EXTENSION, CallStarter, Portal, portal
from esl_callback.web.time_zones import when

log = logging.getLogger(__name__)

MAX_UPLOAD_BYTES = 2 * 1024 * 1024
LARGEST_ID = 2**63 - 1  # SQLite INTEGER; PostgreSQL simply finds no row for a larger id
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)


def create_app(settings: Any, database: Database, dialer: CallStarter | None) -> Flask:
    """The portal for `settings` (config.Settings) on `database`.

    `dialer` starts and cancels calls and tells the live status of every change (the app adds
    its listener to `dialer.listeners`); None serves everything but placing calls (503).
    """
    app = Flask(__name__)
    secret = settings.web.secret
    if not secret:
        log.warning("web.secret is not set: sessions end when the process restarts")
        secret = secrets.token_hex(32)
    app.config.update(
        SECRET_KEY=secret,
        SESSION_COOKIE_NAME="esl_callback_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SECURE=settings.web.secure_cookies,
        SESSION_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=timedelta(seconds=settings.web.session_lifetime_seconds),
        MAX_CONTENT_LENGTH=MAX_UPLOAD_BYTES,
    )
    hub = StatusHub()
    if dialer is not None:
        dialer.listeners.append(hub.publish)
    app.extensions[EXTENSION] = Portal(settings, database, dialer, hub)
    app.url_map.converters["int"] = DatabaseId  # before any route is added
    app.before_request(identify)
    app.after_request(security_headers)
    app.register_error_handler(WebError, web_error)
    app.register_error_handler(HTTPException, http_error)
    for unreachable in UNREACHABLE:
        app.register_error_handler(unreachable, database_unreachable)
    app.context_processor(template_globals)
    for name in ("money", "amount", "price", "clock", "duration", "phone"):
        app.add_template_filter(getattr(formats, name), name)
    app.add_template_filter(when)
    app.register_blueprint(api.blueprint)
    app.register_blueprint(sms_api.blueprint)
    app.register_blueprint(operator_api.blueprint)
    app.register_blueprint(pages.blueprint)
    proxies = settings.web.trusted_proxies
    if proxies:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies)  # type: ignore[method-assign]
    return app


class DatabaseId(IntegerConverter):
    """`<int:...>` in every route: an id larger than a database id can be is not found (404).

    Without a bound, SQLite's driver fails on an id from 2**63 up (a 500 instead of a 404).
    """

    def __init__(self, url_map: Any, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max", LARGEST_ID)
        super().__init__(url_map, *args, **kwargs)


def identify() -> None:
    """Who makes the request (None for no one); pages and API decide what that allows."""
    # Gateways (sms_api) and the operator (operator_api) authenticate with their own
    # credentials, never as a user.
    skip = request.endpoint == "static" or request.blueprint in (
        sms_api.blueprint.name,
        operator_api.blueprint.name,
    )
    g.user = None if skip else auth.resolve_user(portal())


def wants_json() -> bool:
    return request.path.startswith(api.PREFIX)


def security_headers(response: Response) -> Response:
    response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    if request.endpoint != "static":
        response.headers.setdefault("Cache-Control", "no-store")
    return response


def web_error(exc: WebError) -> Any:
    if wants_json():
        response = api.error_response(exc)
    else:
        body = render_template("error.html", status=exc.status, message=exc.message)
        response = Response(body, exc.status)
    if exc.retry_after:
        response.headers["Retry-After"] = str(exc.retry_after)
    return response


def database_unreachable(exc: Exception) -> Any:
    """503, not an internal error: the database is down, locked or full; nothing was done."""
    log.error(
        "%s %s: the database cannot be reached (%s)", request.method, request.path, in_words(exc)
    )
    message = "the service cannot reach its database just now: try again in a moment"
    return web_error(Unavailable(message, retry_after=30))


def http_error(exc: HTTPException) -> Any:
    """Werkzeug's error as the app's JSON or HTML error, with werkzeug's headers (a 405's Allow)."""
    status = exc.code or 500
    message = exc.description if status < 500 else "internal error; it has been logged"
    if wants_json():
        response = api.error_response(WebError(message), status=status, code=exc.name)
    else:
        response = Response(render_template("error.html", status=status, message=message), status)
    own = {name.lower() for name, _ in response.headers}  # the body's Content-Type stays
    for name, value in exc.get_headers():
        if name.lower() not in own:
            response.headers.add(name, value)
    return response


def template_globals() -> dict[str, Any]:
    return {
        "user": g.get("user"),
        "csrf_token": auth.csrf_token,
        "form_token": spent_tokens.new_form_token,
    }
