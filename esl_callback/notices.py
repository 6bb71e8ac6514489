"""What controllers sharing PostgreSQL tell each other: a request changed, or cancel one.

A portal served by one controller streams the status of a request another owns, and its Cancel
button reaches the owner: each controller LISTENs on one channel of PostgreSQL's LISTEN/NOTIFY
(no polling) and NOTIFYs the others of its own requests' changes while it has live peers.
Payloads are `changed <sender> <request id>`, `cancel <sender> <request id> <reason>` and
`joined <sender> 0` (a controller that starts says so, so that the others tell it their changes
at once, not from their next heartbeat on); a controller ignores its own. On SQLite (one
controller) nothing is sent or listened to.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import gevent
import psycopg2
import psycopg2.extensions
from gevent.socket import wait_read

from esl_callback.db import Database, database_proxy

log = logging.getLogger(__name__)

CHANNEL = "esl_callback_requests"
RECONNECT_SECONDS = 2.0
MAX_REASON = 200  # NOTIFY payloads are limited (8000 bytes); a reason is a short sentence


class Notices:
    """This controller's end of the channel: `publish` its changes, `ask_cancel` another's
    request; `on_change` / `on_cancel` run for what peers send."""

    def __init__(
        self,
        db: Database,
        controller_id: str,
        on_change: Callable[[int], None],
        on_cancel: Callable[[int, str], bool],
    ) -> None:
        self.db = db
        self.controller_id = controller_id
        self.on_change = on_change
        self.on_cancel = on_cancel
        self.peers = 0  # live controllers besides this one (set by the heartbeat)
        self.listener: gevent.Greenlet | None = None

    @property
    def enabled(self) -> bool:
        return not self.db.is_sqlite

    def start(self) -> None:
        """Listen, and tell the others this controller is there."""
        if self.enabled:
            self.listener = gevent.spawn(self.listen_forever)
            self.send(f"joined {self.controller_id} 0")

    def stop(self) -> None:
        if self.listener is not None:
            self.listener.kill()

    def publish(self, request_id: int) -> None:
        """Tell the peers that one of this controller's requests changed (when there are)."""
        if self.enabled and self.peers:
            self.send(f"changed {self.controller_id} {request_id}")

    def ask_cancel(self, request_id: int, reason: str) -> None:
        """Ask the peers to cancel a request; its owner does (the others ignore it)."""
        self.send(f"cancel {self.controller_id} {request_id} {reason[:MAX_REASON]}")

    def send(self, payload: str) -> None:
        try:
            self.db.run(_notify, payload)
        except Exception as exc:  # a peer's portal misses a live update; its next poll shows it
            log.warning("cannot notify the other controllers (%s): %s", payload.split()[0], exc)

    def listen_forever(self) -> None:
        """LISTEN on a connection of its own, woken by the socket; reconnect when it drops."""
        while True:
            try:
                self.listen_once()
            except (psycopg2.Error, OSError) as exc:
                log.warning("listening to the other controllers stopped: %s; again in 2 s", exc)
            gevent.sleep(RECONNECT_SECONDS)

    def listen_once(self) -> None:
        connection = psycopg2.connect(self.db.url)
        try:
            connection.set_isolation_level(psycopg2.extensions.ISOLATION_LEVEL_AUTOCOMMIT)
            with connection.cursor() as cursor:
                cursor.execute(f"LISTEN {CHANNEL}")
            while True:
                wait_read(connection.fileno())
                connection.poll()
                while connection.notifies:
                    self.receive(connection.notifies.pop(0).payload)
        finally:
            connection.close()

    def receive(self, payload: str) -> None:
        kind, _, rest = payload.partition(" ")
        sender, _, rest = rest.partition(" ")
        if sender == self.controller_id:
            return
        number, _, reason = rest.partition(" ")
        if not number.isdigit():
            log.warning("ignored a notice from controller %s: %r", sender, payload[:80])
            return
        try:
            if kind == "joined":
                self.peers = max(self.peers, 1)
            elif kind == "changed":
                self.on_change(int(number))
            elif kind == "cancel" and self.on_cancel(int(number), reason or "cancelled"):
                log.info("cancelled at the request of controller %s", sender,
                         extra={"request_id": int(number)})  # fmt: skip
        except Exception:
            log.exception("handling a notice from controller %s failed", sender)


def _notify(payload: str) -> None:
    database_proxy.execute_sql("SELECT pg_notify(%s, %s)", (CHANNEL, payload))
