"""The controller process: database, FreeSWITCH connections, outbound server, dialer, web.

`Service(settings).start()` brings everything up in the current gevent hub; `stop()` takes it
down gracefully (live outbound sessions may finish). `esl-callback serve` runs one under
gevent's monkey patching and stops it on SIGTERM/SIGINT.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import gevent
import gevent.monkey
from gevent.event import Event
from gevent.pywsgi import WSGIServer

from esl_callback import controllers, metrics
from esl_callback.alerts import LowBalanceAlerts
from esl_callback.callback import reconcile
from esl_callback.callback.dialer import Dialer
from esl_callback.callback.flow import event_variable
from esl_callback.callback.reconcile import OWN_LEGS
from esl_callback.config import Settings
from esl_callback.db import Database, DatabaseError, latest_version, make_psycopg2_cooperative
from esl_callback.notices import Notices
from esl_callback.sms import SmsService
from esl_callback.switch import commands
from esl_callback.switch.connection import Backoff, CommandTimeout, InboundConnection
from esl_callback.switch.outbound import OutboundChannel, OutboundServer
from esl_callback.switch.router import EventRouter
from esl_callback.web import create_app, serve_web
from esl_callback.web.portal import Portal, portal_of

log = logging.getLogger(__name__)
T = TypeVar("T")

# Only what the dialer and billing need: FreeSWITCH drops a listener 500 events behind.
SUBSCRIBED_EVENTS = (
    "CHANNEL_PROGRESS",
    "CHANNEL_PROGRESS_MEDIA",
    "CHANNEL_ANSWER",
    "CHANNEL_HANGUP",
    "CHANNEL_HANGUP_COMPLETE",
    "BACKGROUND_JOB",
    "MESSAGE",  # SMS (mod_sms), see esl_callback/sms.py
)


# Of those, FreeSWITCH sends only this controller's calls' events (every leg it originates carries
# callback_controller: other controllers' calls are not read and dropped here), job results and
# SMS; a switch that also carries other traffic does not make us read its events, nor fall
# behind on them. When a dead controller's calls are taken over, its id is added.
def event_filters(controller_id: str) -> tuple[tuple[str, str], ...]:
    """The filters of this controller's event subscription."""
    return (
        (OWN_LEGS, controller_id),
        ("Event-Name", "BACKGROUND_JOB"),
        ("Event-Name", "MESSAGE"),
    )


TRIGGER_CLOSE_SECONDS = 10.0  # a refused trigger call is down well before this
# What the portal's requests left running (SMS replies to a gateway) may take to finish at stop,
# as long as the web server gives a request in flight.
WEB_STOP_SECONDS = 1.0


class PortTaken(OSError):
    """A port serve must listen on cannot be bound; the message names which one (an OSError,
    as the bind's own error was)."""


def listen(what: str, bind: str, port: int, start: Callable[[], T]) -> T:
    """Start one listener, or raise PortTaken naming it: every port serve listens on is
    fatal at start, so that `status` and Prometheus never read another process's figures."""
    try:
        return start()
    except OSError as exc:
        raise PortTaken(
            f"cannot listen on the {what} port {bind}:{port} ({exc.strerror or exc}); "
            "is another serve running? Free the port or change it in the configuration"
        ) from exc


def check_database(db: Database) -> None:
    """Refuse to run on a database that is unreachable or on another schema version."""
    db.check()
    version = db.schema_version()
    if version is None:
        raise DatabaseError(f"{db.display_url} is not initialised; run `esl-callback db init`")
    if version != latest_version():
        raise DatabaseError(
            f"{db.display_url} has schema version {version}, this code needs "
            f"{latest_version()}; run `esl-callback db upgrade`"
        )


def with_controller_id(settings: Settings) -> Settings:
    """The settings with `controller.id` filled in (default: host name and outbound port)."""
    if settings.controller.id is not None:
        return settings
    own_id = controllers.default_id(settings.outbound.port)
    return dataclasses.replace(
        settings, controller=dataclasses.replace(settings.controller, id=own_id)
    )


class Service:
    """Everything `esl-callback serve` runs, wired together."""

    def __init__(self, settings: Settings) -> None:
        settings = with_controller_id(settings)
        self.settings = settings
        self.db = Database(settings.database.url, settings.database.pool_size)
        self.router = EventRouter()
        fs = settings.freeswitch
        self.nodes = [
            InboundConnection(
                node,
                events=SUBSCRIBED_EVENTS,
                filters=event_filters(settings.controller.id),
                on_event=self.dispatch_event,
                on_connected=self.on_node_connected,
                command_timeout=node.command_timeout_seconds,
                connect_timeout=node.connect_timeout_seconds,
                backoff=Backoff(fs.reconnect_min_seconds, fs.reconnect_max_seconds),
            )
            for node in fs.nodes
        ]
        self.dialer = Dialer(self.db, settings, self.nodes, self.router)
        self.notices = Notices(
            self.db, settings.controller.id, self.dialer.notify_here, self.dialer.cancel_here
        )
        if self.notices.enabled:
            self.dialer.peers = self.notices
        self.router.on("CHANNEL_HANGUP_COMPLETE", self.dialer.handle_orphan_event)
        self.sms = SmsService(self.db, settings, self.dialer)
        self.alerts = LowBalanceAlerts(self.db, settings, self.sms)
        self.dialer.bill_listeners.append(self.alerts.after_bill)
        if settings.sms.enabled:
            self.router.on("MESSAGE", self.sms.on_message_event)
        self.web_server: WSGIServer | None = None
        self.portal: Portal | None = None
        self.metrics_server: WSGIServer | None = None
        self.identity: controllers.Identity | None = None
        self.heartbeats: gevent.Greenlet | None = None
        # Set when this controller lost its lease: it must stop acting (serve exits).
        self.fenced = Event()
        out = settings.outbound
        self.outbound = OutboundServer(
            self.on_channel,
            host=out.bind,
            port=out.port,
            allow=[str(network) for network in out.allow],
            max_sessions=out.max_sessions,
        )
        metrics.instrument(self)

    def start(self) -> Service:
        """Check the database, recover what a previous run left, connect, listen."""
        self.check_database()
        if not self.db.is_sqlite and gevent.monkey.is_module_patched("threading"):
            make_psycopg2_cooperative()
        cfg_controller = self.settings.controller
        self.identity = self.db.run(
            controllers.register,
            cfg_controller.id,
            cfg_controller.lease_seconds,
            self.db.is_sqlite,
        )
        abandoned = self.db.run(reconcile.abandon_requests_without_legs, self.identity.id)
        if abandoned:
            log.warning("%d requests left by a previous run were marked failed", abandoned)
        out, web, cfg = self.settings.outbound, self.settings.web, self.settings.metrics
        listen("outbound", out.bind, out.port, self.outbound.start)
        if web.enabled:
            app = create_app(self.settings, self.db, self.dialer)
            self.portal = portal_of(app)
            self.web_server = listen(
                "web", web.bind, web.port, lambda: serve_web(app, web.bind, web.port)
            )
        if cfg.enabled:
            self.metrics_server = listen(
                "metrics", cfg.bind, cfg.port, lambda: metrics.serve(cfg.bind, cfg.port)
            )
            log.info("metrics at http://%s:%d/metrics", cfg.bind, self.metrics_server.server_port)
        for node in self.nodes:
            node.start()
        self.notices.peers = self.db.run(controllers.alive_peers, self.identity.id)
        self.notices.start()
        self.heartbeats = gevent.spawn(self.renew_lease, self.identity)
        log.info(
            "esl-callback running: outbound %s:%d, FreeSWITCH %s, database %s",
            self.outbound.host,
            self.outbound.port,
            ", ".join(f"{n.name}={n.host}:{n.port}" for n in self.nodes),
            self.db.display_url,
        )
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop taking calls; end those not connected yet (up to `timeout`) and leave the
        connected ones to the next start; disconnect."""
        if self.heartbeats is not None:
            self.heartbeats.kill()
        self.notices.stop()
        for server in (self.web_server, self.metrics_server):
            if server is not None:
                server.stop(timeout=WEB_STOP_SECONDS)
        if self.portal is not None:
            self.portal.stop(WEB_STOP_SECONDS)
        self.outbound.stop_accepting()
        if not self.fenced.is_set():  # a fenced controller's calls may be another's now
            self.dialer.wind_down(timeout)
        self.outbound.stop(timeout=1)
        for node in self.nodes:
            node.stop()
        self.alerts.finish(timeout=2)  # alerts being sent (their SMTP server's timeout bounds)
        self.sms.finish()  # SMS replies still waiting for their `chat` store that it was cut
        if self.identity is not None and not self.fenced.is_set():
            with contextlib.suppress(DatabaseError):
                self.db.run(controllers.unregister, self.identity)
        self.db.close()
        log.info("esl-callback stopped")

    def check_database(self) -> None:
        check_database(self.db)

    def renew_lease(self, identity: controllers.Identity) -> None:
        """Renew the lease every third of it, and take over the calls of controllers found
        dead; on a lost lease, fence this controller (`fenced`): serve stops at once, acting on
        nothing more."""
        interval = identity.lease_seconds / 3
        while True:
            gevent.sleep(interval)
            try:
                self.db.run(controllers.heartbeat, identity)
            except controllers.LeaseLost as exc:
                log.critical("%s; stopping without touching any call", exc)
                self.fenced.set()
                return
            except DatabaseError as exc:
                log.error("cannot renew controller %s's lease: %s", identity.id, exc)
                continue
            self.notices.peers = self.db.run(controllers.alive_peers, identity.id)
            claimed = self.dialer.reconciler.take_over()
            if claimed:
                now = datetime.now(UTC).replace(tzinfo=None)
                for node in self.nodes:
                    if node.connected:
                        self.dialer.reconciler.reconcile(node, now, only=set(claimed))

    def dispatch_event(self, event: Any, node: str) -> None:
        """Every event from a node: measured, then routed to its call (never blocks)."""
        metrics.observe_event(event)
        self.router.dispatch(event, node)

    def on_node_connected(self, node: InboundConnection) -> None:
        """After every (re)connect: learn the switch's Core-UUID, reconcile with what it has."""
        core_uuid = node.api(commands.global_getvar("core_uuid")).strip()
        if core_uuid and not core_uuid.startswith("-"):
            self.dialer.core_uuids[node.name] = core_uuid
        up_since = datetime.fromtimestamp(node.up_since, UTC).replace(tzinfo=None)
        self.dialer.reconcile(node, up_since)

    def on_channel(self, channel: OutboundChannel) -> None:
        """A channel reached our outbound server: a trigger call, or leg A of a callback.

        A trigger needs no events: it is refused with a `hangup` and the switch closes the
        socket once the channel is down (a disconnect notice), which is awaited before `exit`
        so the refusal is never cut short. Leg A's IVR needs its completions and its hangup;
        no `linger`: the flow follows the legs on the inbound connection, so the switch may
        close the socket as soon as leg A is down (no `exit` round trip per call).
        """
        data: Any = channel.connect()
        if event_variable(data, "callback_request_id"):
            channel.myevents()
            self.dialer.handle_leg_session(channel, data)
        else:
            self.dialer.handle_trigger(channel, data)
            with contextlib.suppress(CommandTimeout):
                channel.wait_hangup(TRIGGER_CLOSE_SECONDS)
