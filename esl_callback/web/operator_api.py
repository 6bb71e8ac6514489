"""The operator's API under /api/v1/operator: callbacks started from a terminal.

`esl-callback call` runs next to `esl-callback serve` and goes through this API, because the
dialer lives in the serve process. Every request carries an operator credential made from
`web.secret` (see `esl_callback.operator`): no web user, session or API token is involved.

* `POST /operator/requests` (`account` name or id, `source`, `destination`, `mode`) starts a
  callback for the account exactly as the account's own web user would (`callbacks.place`: the
  same number validation, source policy, per-account limits, then billing's authorisation), with
  the trigger `cli`.
* `GET /operator/requests/{id}` and `GET /operator/requests/{id}/events` give its status, the
  latter as the same Server-Sent Events stream the portal follows.
* `POST /operator/requests/{id}/cancel` hangs up both legs.
* `POST /operator/numbers/verifications/{id}/call` calls the number of a pending number
  verification (`verification.place_call`, as the portal does right after storing it).

`esl-callback web` (the portal run alone) places its calls through this API as well
(`web.remote_dialer`): it sends `trigger: web` and the cancel's `reason`.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from esl_callback import accounts, operator
from esl_callback.models import Account, CallbackRequest
from esl_callback.web import callbacks, history, inputs, sse, verification
from esl_callback.web.api import PREFIX
from esl_callback.web.errors import Forbidden, Invalid, NotFound, Unauthorised
from esl_callback.web.portal import portal

WHO = "the operator (esl-callback call)"
WHO_FOR = {"cli": WHO, "web": "a portal run alone (esl-callback web)"}
# Who may be named as a request's trigger here: the command line, or a portal run alone.
TRIGGERS = ("cli", "web")  # see WHO_FOR
NONCES = "esl_callback_operator_nonces"

blueprint = Blueprint("operator", __name__, url_prefix=f"{PREFIX}/operator")


@blueprint.record_once
def _setup(state: Any) -> None:
    state.app.extensions[NONCES] = operator.NonceCache()


@blueprint.before_request
def authenticate() -> None:
    """Refuse (401) anything without a valid, fresh, unused operator credential."""
    try:
        operator.verify(
            portal().settings.web.secret,
            request.headers.get("Authorization", ""),
            request.method,
            request.path,
            request.get_data(cache=True),
            current_app.extensions[NONCES],
        )
    except operator.CredentialError as exc:
        raise Unauthorised(str(exc)) from None


@blueprint.after_request
def challenge(response: Response) -> Response:
    if response.status_code == 401:
        response.headers["WWW-Authenticate"] = f'{operator.SCHEME} realm="esl-callback"'
    return response


def find_account(ref: Any) -> Account:
    """The account named `ref`, or with id `ref` (run through Database.run)."""
    if isinstance(ref, bool) or not isinstance(ref, str | int) or not str(ref).strip():
        raise NotFound("account: give the account's name or id", field="account")
    try:
        return accounts.find_account(str(ref).strip())
    except accounts.AccountError:
        raise NotFound(f"no account named {str(ref).strip()!r}", field="account") from None


def account_of(request_id: int) -> int:
    """The account a request belongs to (run through Database.run)."""
    found = CallbackRequest.get_or_none(CallbackRequest.id == request_id)
    if found is None or found.account_id is None:
        raise NotFound(f"no callback request {request_id}")
    return found.account_id


@blueprint.post("/requests")
def start_callback() -> Any:
    data = inputs.json_object()
    trigger = data.get("trigger", "cli")
    if trigger not in TRIGGERS:
        raise Invalid(f"trigger: one of {', '.join(TRIGGERS)}", field="trigger")
    account = portal().run(find_account, data.get("account"))
    order = callbacks.read_order(data, account.default_callback_number, portal().settings.numbers)
    try:
        request_id = callbacks.place(portal(), account.id, order, WHO_FOR[trigger], trigger)
    except Forbidden as exc:
        if exc.field != "source":
            raise
        raise Forbidden(
            f"source: {order.source} is not one of account {account.name}'s numbers; add it "
            f"with `esl-callback callerid add {account.name} {order.source}`, or let the "
            f"account call from any number with `esl-callback account set {account.name} "
            "--any-source`",
            field="source",
        ) from None
    return jsonify(portal().run(history.request_status, account.id, request_id)), 201


@blueprint.get("/requests/<int:request_id>")
def get_request(request_id: int) -> Any:
    account_id = portal().run(account_of, request_id)
    return jsonify(portal().run(history.request_status, account_id, request_id))


@blueprint.get("/requests/<int:request_id>/events")
def request_events(request_id: int) -> Any:
    account_id = portal().run(account_of, request_id)
    return sse.stream(sse.status_events(portal(), account_id, request_id))


@blueprint.post("/requests/<int:request_id>/cancel")
def cancel_request(request_id: int) -> Any:
    data = inputs.json_body()
    raw = data.get("reason") if isinstance(data, dict) else None
    reason = inputs.text(raw, "reason", "reason", max_length=128, required=False) or None
    account_id = portal().run(account_of, request_id)
    callbacks.hang_up(portal(), account_id, request_id, WHO, reason)
    return jsonify(portal().run(history.request_status, account_id, request_id))


@blueprint.post("/numbers/verifications/<int:verification_id>/call")
def call_verification(verification_id: int) -> Any:
    account_id = portal().run(verification.owner_of, verification_id)
    called = verification.place_call(portal(), account_id, verification_id)
    return jsonify(verification.describe(called))
