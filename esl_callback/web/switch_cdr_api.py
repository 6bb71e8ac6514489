"""`POST /api/v1/switch/cdr?uuid=<uuid>`: the CDRs FreeSWITCH's mod_json_cdr posts.

The switch authenticates with HTTP Basic auth (json_cdr.conf.xml's `cred`, sent up front with
`auth-scheme` basic), compared in constant time with `cdr.username` and `cdr.password`. Each
CDR goes through `callback.switch_cdr.apply` (stored once per channel UUID, its leg billed
once) and the answer is 200 with what it did. mod_json_cdr posts from the channel's own thread
and holds the channel's teardown until it has an answer, so nothing here waits for anything
but the database. Any answer other than 2xx makes the switch post the same CDR again after
`delay` seconds and, after its last retry, keep it in err-log-dir (`esl-callback cdr import`):
a CDR refused here (401, 400, 503) is not lost.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
from typing import Any

from flask import Blueprint, Response, jsonify, request

from esl_callback.callback import switch_cdr
from esl_callback.web.api import PREFIX
from esl_callback.web.errors import Unauthorised, Unavailable, WebError
from esl_callback.web.portal import portal

log = logging.getLogger(__name__)

blueprint = Blueprint("switch_cdr", __name__, url_prefix=PREFIX)
REALM = 'Basic realm="esl-callback switch CDR"'


@blueprint.before_request
def authenticate() -> None:
    """The switch's Basic credentials, or 401 (503 while the CDR endpoint is off)."""
    settings = portal().settings.cdr
    if not settings.enabled:
        raise Unavailable("switch CDRs are not taken here: set cdr.enabled (and cdr.password)")
    user, password = basic_credentials(request.headers.get("Authorization", ""))
    good_user = hmac.compare_digest(user.encode(), settings.username.encode())
    good_password = hmac.compare_digest(password.encode(), settings.password.encode())
    if not (good_user and good_password):
        log.warning(
            "switch CDR %s from %s refused: %s",
            request.args.get("uuid", "?"),
            request.remote_addr,
            "wrong credentials" if user else "no Basic credentials",
        )
        raise Unauthorised(
            "send cdr.username:cdr.password as HTTP Basic auth (json_cdr.conf.xml: cred, "
            "auth-scheme basic)"
        )


@blueprint.after_request
def basic_challenge(response: Response) -> Response:
    """A 401 names the scheme the switch must use (Basic, not the API's Bearer)."""
    if response.status_code == 401:
        response.headers["WWW-Authenticate"] = REALM
    return response


def basic_credentials(header: str) -> tuple[str, str]:
    """(user, password) of an `Authorization: Basic` header; empty strings when there is none."""
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return "", ""
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return "", ""
    user, _, password = decoded.partition(":")
    return user, password


@blueprint.post(switch_cdr.PATH.removeprefix(PREFIX))
def receive() -> Any:
    """One channel's CDR: store it, bill its leg if nothing has, answer what it did."""
    uuid = request.args.get("uuid")
    if not uuid:
        raise WebError("no ?uuid=: mod_json_cdr appends ?uuid=<channel uuid> to its url")
    try:
        cdr = switch_cdr.read_post(request.get_data(cache=False), request.mimetype, uuid)
    except switch_cdr.CdrError as exc:
        log.error("switch CDR %s from %s refused: %s", uuid, request.remote_addr, exc)
        raise WebError(f"CDR {uuid}: {exc}") from None
    site = portal()
    outcome = site.run(switch_cdr.apply, cdr, site.settings.billing)
    if outcome.billed and site.dialer is not None:
        site.dialer.leg_billed_by_switch(outcome.uuid, outcome.request_id)
    return jsonify(
        {"uuid": outcome.uuid, "outcome": outcome.outcome, "deliveries": outcome.deliveries}
    )
