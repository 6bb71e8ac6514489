"""The JSON API under /api/v1: everything the portal does, for desktop and mobile clients.

Clients authenticate with `Authorization: Bearer <token>` (POST /api/v1/auth/token gives one for
a username and password); the portal's own scripts use the session cookie and send the CSRF token
in `X-CSRF-Token`. The API is described in `openapi.yaml` (served at /api/v1/openapi.yaml).
"""

from __future__ import annotations

from importlib import resources
from typing import Any

from flask import Blueprint, Response, g, jsonify, request, url_for

from esl_callback.callback.status import iso
from esl_callback.web import (
    account,
    auth,
    callbacks,
    history,
    inputs,
    phonebook,
    quotes,
    sign_in_links,
    sse,
    verification,
)
from esl_callback.web.errors import Forbidden, Invalid, Unauthorised, WebError
from esl_callback.web.portal import portal

PREFIX = "/api/v1"
PUBLIC = frozenset({"api.create_token", "api.openapi"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

blueprint = Blueprint("api", __name__, url_prefix=PREFIX)


def error_response(exc: WebError, status: int | None = None, code: str | None = None) -> Response:
    body = exc.as_json()
    if code:
        body["error"]["code"] = code.lower().replace(" ", "_")
    response = jsonify(body)
    response.status_code = status or exc.status
    if response.status_code == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="esl-callback"'
    return response


@blueprint.before_request
def require_user() -> None:
    if request.endpoint in PUBLIC:
        return
    if g.user is None:
        raise Unauthorised("log in first: send Authorization: Bearer <token>")
    if request.method not in SAFE_METHODS and auth.bearer_token() is None:
        auth.check_csrf()


def csv_response(text: str, filename: str) -> Response:
    return Response(
        text,
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


# -- tokens ---------------------------------------------------------------------------------


@blueprint.post("/auth/token")
def create_token() -> Any:
    """A new API token for a username and password, besides the user's others; `label` (e.g.
    "Desktop on my laptop") names it in the portal's list of tokens."""
    data = inputs.json_object()
    username = inputs.text(data.get("username"), "username", "username", max_length=64)
    label = inputs.text(
        data.get("label"), "label", "label", max_length=auth.TOKEN_LABEL_LENGTH, required=False
    )
    password = data.get("password")
    if not isinstance(password, str) or not password:
        raise Invalid("Type your password.", field="password")
    user = auth.attempt_login(portal(), username, password, request.remote_addr or "")
    token = portal().run(auth.issue_token, user.id, label or "App")
    return jsonify({"token": token, "username": user.username, "account": user.account_name}), 201


@blueprint.delete("/auth/token")
def revoke_token() -> Any:
    """Revoke the bearer token this request is made with; a portal session may not.

    With the session cookie the token would be another device's app's, revoked by surprise.
    """
    token = auth.bearer_token()
    if token is None:
        raise Forbidden(
            "this revokes the API token sent in Authorization: Bearer, and this request has "
            "none; to log out of the portal, POST /logout; to revoke your app's token, use "
            "Revoke next to it in Settings (/settings)"
        )
    portal().run(auth.revoke_own_token, token)
    return "", 204


@blueprint.post("/sign-in-links")
def create_sign_in_link() -> Any:
    """A one-time link that opens a portal page signed in (see `sign_in_links`)."""
    page = inputs.json_object().get("page")
    if not isinstance(page, str) or page not in sign_in_links.PAGES:
        raise Invalid(f"page: one of {', '.join(sign_in_links.PAGES)}", field="page")
    link = portal().run(sign_in_links.issue, g.user.id, page)
    body = {
        "url": url_for("pages.sign_in_link", token=link.token, _external=True),
        "page": page,
        "expires_at": iso(link.expires_at),
        "expires_in": sign_in_links.LIFETIME_SECONDS,
    }
    return jsonify(body), 201


# -- account, numbers, payments -------------------------------------------------------------


@blueprint.get("/account")
def get_account() -> Any:
    return jsonify(portal().run(account.overview, g.user.account_id))


@blueprint.put("/account/default-number")
def set_default_number() -> Any:
    digits = inputs.number(inputs.json_object().get("number"), "number", portal().settings.numbers)
    portal().run(account.set_default_number, g.user.account_id, digits)
    return jsonify(portal().run(account.overview, g.user.account_id))


@blueprint.delete("/numbers/<number>")
def remove_number(number: str) -> Any:
    digits = inputs.number(number, "number", portal().settings.numbers)
    portal().run(account.remove_number, g.user.account_id, digits)
    return "", 204


@blueprint.post("/numbers/verifications")
def start_verification() -> Any:
    digits = inputs.number(inputs.json_object().get("number"), "number", portal().settings.numbers)
    started = verification.begin(portal(), g.user.account_id, digits)
    return jsonify(verification.describe(started)), 201


@blueprint.get("/numbers/verifications/<int:verification_id>")
def get_verification(verification_id: int) -> Any:
    found = portal().run(verification.settle, g.user.account_id, verification_id)
    return jsonify(verification.describe(found))


@blueprint.get("/payments")
def list_payments() -> Any:
    return jsonify({"items": portal().run(account.payments, g.user.account_id)})


# -- callbacks and history ------------------------------------------------------------------


@blueprint.post("/vouchers/redeem")
def redeem_voucher() -> Any:
    """Top the account up with a voucher's code."""
    code = inputs.json_object().get("code")
    settings = portal().settings.billing
    client = request.remote_addr or ""
    return jsonify(portal().run(account.redeem_voucher, g.user.account_id, code, client, settings))


@blueprint.post("/requests")
def start_callback() -> Any:
    return jsonify(callbacks.start(portal(), g.user, inputs.json_object())), 201


@blueprint.get("/quote")
def get_quote() -> Any:
    """What a callback would cost and the longest call the balance pays (see `quotes`)."""
    user = g.user
    order = callbacks.read_order(
        request.args, user.default_callback_number, portal().settings.numbers
    )
    return jsonify(portal().run(quotes.quote, user.account_id, order, portal().settings))


@blueprint.get("/requests")
def list_requests() -> Any:
    wanted = history.read_filter(request.args)
    found = portal().run(history.page, g.user.account_id, wanted, inputs.page_request(request.args))
    return jsonify(found.as_json())


@blueprint.get("/requests.csv")
def export_requests() -> Any:
    wanted = history.read_filter(request.args)
    return csv_response(portal().run(history.export_csv, g.user.account_id, wanted), "history.csv")


@blueprint.get("/requests/<int:request_id>")
def get_request(request_id: int) -> Any:
    return jsonify(portal().run(history.request_status, g.user.account_id, request_id))


@blueprint.get("/requests/<int:request_id>/events")
def request_events(request_id: int) -> Any:
    account_id = g.user.account_id
    portal().run(history.owned_request, account_id, request_id)
    return sse.stream(sse.status_events(portal(), account_id, request_id))


@blueprint.post("/requests/<int:request_id>/cancel")
def cancel_request(request_id: int) -> Any:
    return jsonify(callbacks.cancel(portal(), g.user, request_id))


@blueprint.get("/cdrs/<int:leg_id>")
def get_cdr(leg_id: int) -> Any:
    return jsonify(portal().run(history.cdr, g.user.account_id, leg_id))


# -- phone book -----------------------------------------------------------------------------


@blueprint.get("/phonebook")
def list_entries() -> Any:
    found = portal().run(
        phonebook.search,
        g.user.account_id,
        request.args.get("q", ""),
        inputs.page_request(request.args, default_per_page=50),
    )
    return jsonify(found.as_json(phonebook.describe))


@blueprint.post("/phonebook")
def create_entry() -> Any:
    fields = phonebook.read_fields(inputs.json_object(), portal().settings.numbers)
    entry = portal().run(phonebook.create, g.user.account_id, fields)
    return jsonify(phonebook.describe(entry)), 201


@blueprint.get("/phonebook/<int:entry_id>")
def get_entry(entry_id: int) -> Any:
    return jsonify(phonebook.describe(portal().run(phonebook.get, g.user.account_id, entry_id)))


@blueprint.put("/phonebook/<int:entry_id>")
def update_entry(entry_id: int) -> Any:
    fields = phonebook.read_fields(inputs.json_object(), portal().settings.numbers)
    entry = portal().run(phonebook.update, g.user.account_id, entry_id, fields)
    return jsonify(phonebook.describe(entry))


@blueprint.delete("/phonebook/<int:entry_id>")
def delete_entry(entry_id: int) -> Any:
    portal().run(phonebook.delete, g.user.account_id, entry_id)
    return "", 204


@blueprint.post("/phonebook/import")
def import_entries() -> Any:
    """Import CSV sent as the body (text/csv) or as the `file` of a multipart form."""
    upload = request.files.get("file")
    raw = upload.read() if upload is not None else request.get_data()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise Invalid(
            "That file is not UTF-8 text: save it again as CSV (UTF-8).", field="file"
        ) from None
    rows, errors = phonebook.parse_csv(text, portal().settings.numbers)
    if not errors:
        errors = portal().run(phonebook.plan_import, g.user.account_id, rows).errors
    if errors:
        response = jsonify(
            {"error": {"code": "invalid", "message": "nothing imported", "lines": errors}}
        )
        return response, 422
    result = portal().run(phonebook.import_rows, g.user.account_id, rows)
    return jsonify(
        {"created": result.created, "updated": result.updated, "skipped": result.skipped}
    )


@blueprint.get("/phonebook.csv")
def export_entries() -> Any:
    return csv_response(portal().run(phonebook.export_csv, g.user.account_id), "phonebook.csv")


@blueprint.get("/openapi.yaml")
def openapi() -> Any:
    text = resources.files("esl_callback.web").joinpath("openapi.yaml").read_text("utf-8")
    return Response(text, mimetype="application/yaml")
