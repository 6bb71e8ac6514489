"""The web portal run alone (`esl-callback web`): its own process, serve's dialer over HTTP.

The same app (`create_app`) served the same way (`serve_web`, TCP_NODELAY) on `web.bind`/
`web.port`, on the database `esl-callback serve` uses; calls go to that serve at
`web.controller_url` through `RemoteDialer`. Run it under gevent's monkey patching (the command
does) so that its HTTP requests to serve wait cooperatively.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

import gevent.monkey
from gevent.pywsgi import WSGIServer

from esl_callback.config import Settings
from esl_callback.db import Database, make_psycopg2_cooperative
from esl_callback.service import WEB_STOP_SECONDS, check_database
from esl_callback.web.app import create_app
from esl_callback.web.portal import Portal, portal_of
from esl_callback.web.remote_dialer import RemoteDialer
from esl_callback.web.server import serve_web

log = logging.getLogger(__name__)


def problems(settings: Settings) -> list[str]:
    """Why these settings cannot run the portal alone (empty: they can)."""
    web = settings.web
    found = []
    if not web.enabled:
        found.append("web.enabled: false; `esl-callback web` runs the portal, set it true")
    if not web.controller_url:
        found.append(
            "web.controller_url: not set; give the address of the portal of the "
            "`esl-callback serve` that places the calls, e.g. http://127.0.0.1:8080"
        )
    elif points_at_itself(web.controller_url, web.bind, web.port):
        found.append(
            f"web.controller_url: {web.controller_url} is this portal's own address "
            f"(web.bind/web.port); give serve's, and run this portal on another port"
        )
    if not web.secret:
        found.append(
            "web.secret: not set; calls go to serve with an operator credential made from it: "
            "use serve's web.secret (here or in ESL_CALLBACK_WEB_SECRET)"
        )
    return found


def points_at_itself(url: str, bind: str, port: int) -> bool:
    parts = urlsplit(url)
    url_port = parts.port or (443 if parts.scheme == "https" else 80)
    local = {bind, "127.0.0.1", "localhost", "::1"} if bind in ("0.0.0.0", "::") else {bind}
    return url_port == port and (parts.hostname or "") in local


class StandalonePortal:
    """What `esl-callback web` runs: database, remote dialer, web server."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.db = Database(settings.database.url, settings.database.pool_size)
        self.dialer = RemoteDialer(self.db, settings.web.controller_url or "", settings.web.secret)
        self.server: WSGIServer | None = None
        self.portal: Portal | None = None

    def start(self) -> StandalonePortal:
        """Check the database, listen; say whether serve answers (calls need it, nothing else)."""
        check_database(self.db)
        if not self.db.is_sqlite and gevent.monkey.is_module_patched("threading"):
            make_psycopg2_cooperative()
        web = self.settings.web
        app = create_app(self.settings, self.db, self.dialer)
        self.portal = portal_of(app)
        self.server = serve_web(app, web.bind, web.port)
        problem = self.dialer.check()
        if problem:
            log.warning("%s; calls cannot be placed until it does (the rest works)", problem)
        else:
            log.info("calls are placed by esl-callback serve at %s", self.dialer.url)
        return self

    @property
    def port(self) -> Any:
        return self.server.server_port if self.server else None

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop(timeout=WEB_STOP_SECONDS)
        if self.portal is not None:
            self.portal.stop(WEB_STOP_SECONDS)
        self.dialer.close()
        self.db.close()
        log.info("web portal stopped")
