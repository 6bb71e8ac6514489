"""The gateway API: SMS and call triggers reported by SMS gateways and gateway phones.

* `POST /api/v1/sms/inbound`: an incoming SMS (`from`, `to`, `text`, `message_id`; JSON or a
  form). It goes through `sms.SmsService.receive` like a FreeSWITCH MESSAGE; the reply is in
  the response and, when the gateway has a `reply_url`, POSTed there as JSON
  (`{"to", "from", "text", "in_reply_to"}`; credentials in the URL go as HTTP Basic auth), in
  a greenlet of the portal's (`Portal.spawn`) on gevent's own sockets: no native thread, so a
  reply still in flight when the service stops is abandoned like any greenlet (`Portal.stop`).
* `POST /api/v1/gateway/call`: a call the gateway phone rejected (`from` = caller ID, `to` =
  the number called, `call_id`). It takes the dialer's one trigger path (`Dialer.trigger_call`):
  the called number chooses PIN, caller-ID or DID access, with the same checks as a call that
  reaches FreeSWITCH. A repeated `call_id` of the same gateway triggers one callback
  (`report_key`).

Each gateway of `sms.gateways` authenticates with its token, sent as `Authorization: Bearer
<token>` or `X-Gateway-Token: <token>`, compared in constant time with every gateway's token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import logging
import ssl
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import gevent
import gevent.socket
import gevent.ssl
from flask import Blueprint, g, jsonify, request
from gevent.lock import Semaphore

from esl_callback import sms
from esl_callback.callback.flow import FlowEnded
from esl_callback.db import Database
from esl_callback.models import CallbackRequest
from esl_callback.web import inputs
from esl_callback.web.api import PREFIX
from esl_callback.web.errors import Invalid, Unauthorised, Unavailable
from esl_callback.web.portal import portal

log = logging.getLogger(__name__)

TOKEN_HEADER = "X-Gateway-Token"
REPLY_TIMEOUT_SECONDS = 10  # the whole POST, from resolving the host to the status line
ABANDONED = "service stopped"  # stored (not_sent: ...) for a reply the stop cut short
REPORT_KEY_LENGTH = 64  # callback_request.trigger_uuid

blueprint = Blueprint("gateway", __name__, url_prefix=PREFIX)
# One call report at a time: the duplicate check and the trigger must not interleave.
_call_reports = Semaphore()


@blueprint.before_request
def authenticate() -> None:
    """The gateway whose token the request carries, or 401."""
    scheme, _, bearer = request.headers.get("Authorization", "").partition(" ")
    sent = request.headers.get(TOKEN_HEADER) or (bearer if scheme.lower() == "bearer" else "")
    g.gateway = gateway_for(portal().settings.sms.gateways, sent.strip())
    if g.gateway is None:
        # A gateway with a stale token loses every SMS and call report: say so where it shows.
        log.warning(
            "gateway request to %s from %s refused: %s",
            request.path,
            request.remote_addr,
            "wrong token" if sent.strip() else "no token",
        )
        raise Unauthorised(f"send the gateway's token in {TOKEN_HEADER} or Authorization: Bearer")


def gateway_for(gateways: Any, token: str) -> Any:
    """The gateway with this token; every token is compared, in constant time."""
    found = None
    for gateway in gateways:
        if hmac.compare_digest(gateway.token.encode(), token.encode()) and token:
            found = gateway
    return found


def fields() -> Any:
    """The request's fields: a JSON object or a form."""
    if request.is_json:
        data = inputs.json_body()
        if not isinstance(data, dict):
            raise Invalid("send a JSON object, or a form")
        return data
    return request.form


def text_field(data: Any, name: str, max_length: int, *, required: bool = False) -> str:
    raw = data.get(name)
    if raw is None:
        raw = ""
    if isinstance(raw, int) and not isinstance(raw, bool):
        raw = str(raw)  # message and call ids are often numbers
    if not isinstance(raw, str):
        raise Invalid(f"{name} must be text", field=name)
    if required and not raw.strip():
        raise Invalid(f"{name} is required", field=name)
    if len(raw) > max_length:
        raise Invalid(f"{name} is too long (at most {max_length} characters)", field=name)
    return raw


@blueprint.post("/sms/inbound")
def inbound_sms() -> Any:
    """An SMS the gateway received: act on it, answer with the reply."""
    settings = portal().settings
    if not settings.sms.enabled:
        raise Unavailable("SMS triggers are switched off (sms.enabled)")
    data = fields()
    message = sms.Inbound(
        channel=g.gateway.name,
        sender=text_field(data, "from", 64, required=True),
        recipient=text_field(data, "to", 64),
        text=text_field(data, "text", sms.MAX_TEXT),
        message_id=text_field(data, "message_id", 128) or None,
    )
    service = sms.SmsService(portal().db, settings, portal().require_dialer())
    outcome = service.receive(message)
    if outcome.reply and not outcome.duplicate and g.gateway.reply_url:
        portal().spawn(send_reply, portal().db, g.gateway, message, outcome.reply)
    return jsonify(
        {
            "action": outcome.action,
            "reply": outcome.reply,
            "request_id": outcome.request_id,
            "duplicate": outcome.duplicate,
        }
    )


@blueprint.post("/gateway/call")
def gateway_call() -> Any:
    """A call the gateway phone saw and rejected: the same trigger as a call to FreeSWITCH."""
    data = fields()
    caller = text_field(data, "from", 64)
    called = text_field(data, "to", 64, required=True)
    call_id = text_field(data, "call_id", 128)
    trigger_uuid = report_key(g.gateway.name, call_id) if call_id else None
    dialer = portal().require_dialer()
    with _call_reports:
        earlier = portal().run(reported_call, trigger_uuid) if trigger_uuid else None
        if earlier is not None:
            return jsonify(describe_trigger(earlier, duplicate=True))
        try:
            triggered = dialer.trigger_call(
                caller, called, trigger="gateway", trigger_uuid=trigger_uuid
            )
        except FlowEnded as exc:
            raise Unavailable(f"the callback could not be started: {exc.detail}") from exc
    status = 202 if triggered.state == "queued" else 200
    return jsonify(describe_trigger(triggered, duplicate=False)), status


def report_key(gateway: str, call_id: str) -> str:
    """What a call report is stored under (trigger_uuid): one key per gateway and call id.

    `gateway:call_id` while that fits in `REPORT_KEY_LENGTH` characters; else the gateway's name
    (cut if need be), "#" and the SHA-256 of both, in URL-safe base64 (43 characters). Names
    hold neither ":" nor "#", so the two forms never meet.
    """
    key = f"{gateway}:{call_id}"
    if len(key) <= REPORT_KEY_LENGTH:
        return key
    hashed = base64.urlsafe_b64encode(hashlib.sha256(key.encode()).digest()).decode().rstrip("=")
    return f"{gateway[: REPORT_KEY_LENGTH - len(hashed) - 1]}#{hashed}"


def reported_call(trigger_uuid: str) -> CallbackRequest | None:
    return CallbackRequest.get_or_none(
        CallbackRequest.trigger == "gateway", CallbackRequest.trigger_uuid == trigger_uuid
    )


def describe_trigger(triggered: CallbackRequest, *, duplicate: bool) -> dict[str, Any]:
    return {
        "request_id": triggered.id,
        "state": triggered.state,
        "method": triggered.method,
        "reason": triggered.failure_cause,
        "detail": triggered.failure_detail,
        "duplicate": duplicate,
    }


# -- replies through the gateway --------------------------------------------------------------


def send_reply(db: Database, gateway: Any, message: sms.Inbound, text: str) -> None:
    """POST the reply to the gateway's reply_url and store whether it was taken.

    Killed (the service stops): the connection is closed and the reply stored as not sent,
    although the gateway may have taken it.
    """
    body = {"to": message.sender, "from": message.recipient, "text": text}
    body["in_reply_to"] = message.message_id
    outgoing = reply_request(gateway.reply_url, body)
    try:
        try:
            status = post(outgoing)
            sent, detail = 200 <= status < 300, f"HTTP {status}"
        except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as exc:
            sent, detail = False, str(exc)
    except gevent.GreenletExit:
        log.warning("sms reply via %s to %r abandoned: %s", gateway.name, message.sender, ABANDONED)
        db.run(
            sms.record_sent, gateway.name, message.recipient, message.sender, text, False, ABANDONED
        )
        raise
    if not sent:
        log.warning("sms reply via %s to %r not sent: %s", gateway.name, message.sender, detail)
    db.run(sms.record_sent, gateway.name, message.recipient, message.sender, text, sent, detail)


def reply_request(url: str, body: dict[str, Any]) -> urllib.request.Request:
    """A JSON POST to `url`; a user:password in the URL becomes HTTP Basic auth."""
    parts = urlsplit(url)
    headers = {"Content-Type": "application/json"}
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, netloc = netloc.rpartition("@")
        credentials = base64.b64encode(unquote(userinfo).encode()).decode()
        headers["Authorization"] = f"Basic {credentials}"
    target = urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
    return urllib.request.Request(
        target, data=json.dumps(body).encode(), headers=headers, method="POST"
    )


def post(outgoing: urllib.request.Request) -> int:
    """Send the request from this greenlet; its HTTP status, also for error statuses.

    At most REPLY_TIMEOUT_SECONDS in all (then TimeoutError): a gateway that answers a byte at
    a time does not hold the reply for ever, as a timeout per socket operation would let it.
    """
    deadline = gevent.Timeout(REPLY_TIMEOUT_SECONDS)
    deadline.start()
    try:
        with _opener().open(outgoing, timeout=REPLY_TIMEOUT_SECONDS) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code
    except gevent.Timeout as exc:
        if exc is not deadline:
            raise
        raise TimeoutError(f"no answer within {REPLY_TIMEOUT_SECONDS} s") from None
    finally:
        deadline.close()


# urllib (proxies from the environment, as urlopen) over gevent's sockets and TLS, whether or
# not the process is monkey-patched: waiting for the gateway never blocks the hub, and never
# needs a native thread (whose TLS the interpreter could finalize under at exit, #23).


class _HTTPConnection(http.client.HTTPConnection):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._create_connection = gevent.socket.create_connection


class _HTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._create_connection = gevent.socket.create_connection


class _HTTPHandler(urllib.request.HTTPHandler):
    def http_open(self, req: urllib.request.Request) -> Any:
        return self.do_open(_HTTPConnection, req)


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, context: ssl.SSLContext) -> None:
        super().__init__(context=context)
        self.tls = context

    def https_open(self, req: urllib.request.Request) -> Any:
        return self.do_open(_HTTPSConnection, req, context=self.tls)


def _opener() -> urllib.request.OpenerDirector:
    # ssl.create_default_context's verification (system CAs, SSL_CERT_FILE), gevent's sockets
    context = gevent.ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_default_certs()
    return urllib.request.build_opener(_HTTPHandler(), _HTTPSHandler(context))
