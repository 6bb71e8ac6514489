"""The gateway API: SMS and call triggers reported by SMS gateways and gateway phones.

* `POST /api/v1/sms/inbound`: an incoming SMS (`from`, `to`, `text`, `message_id`; JSON or a
  form). It goes through `sms.SmsService.receive` like a FreeSWITCH MESSAGE; the reply is in
  the response and, when the gateway has a `reply_url`, POSTed there as JSON
  (`{"to", "from", "text", "in_reply_to"}`; credentials in the URL go as HTTP Basic auth).
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
import json
import logging
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import gevent
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
REPLY_TIMEOUT_SECONDS = 10
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
        gevent.spawn(send_reply, portal().db, g.gateway, message, outcome.reply)
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
    """POST the reply to the gateway's reply_url and store whether it was taken."""
    body = {"to": message.sender, "from": message.recipient, "text": text}
    body["in_reply_to"] = message.message_id
    outgoing = reply_request(gateway.reply_url, body)
    try:
        status = gevent.get_hub().threadpool.apply(post, (outgoing,))
        sent, detail = 200 <= status < 300, f"HTTP {status}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        sent, detail = False, str(exc)
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
    """Send the request (in a worker thread); its HTTP status, also for error statuses."""
    try:
        with urllib.request.urlopen(outgoing, timeout=REPLY_TIMEOUT_SECONDS) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
