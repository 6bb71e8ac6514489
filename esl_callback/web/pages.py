"""The portal's pages: Jinja2 templates, plain forms with CSRF tokens, a little JS for live status.

Each page calls the same domain functions as the JSON API. A form that cannot be carried out is
shown again with the message next to the field at fault (and the HTTP status of the error).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    flash,
    g,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)

from esl_callback.web import (
    account,
    auth,
    callbacks,
    history,
    inputs,
    phonebook,
    sign_in_links,
    spent_tokens,
    sse,
    verification,
)
from esl_callback.web import home as home_figures
from esl_callback.web.api import SAFE_METHODS, csv_response
from esl_callback.web.errors import Conflict, Invalid, Unavailable, WebError
from esl_callback.web.formats import amount
from esl_callback.web.portal import portal

PUBLIC = frozenset({"pages.login", "pages.logout", "pages.sign_in_link"})
FORM_TOKEN = "form_token"

blueprint = Blueprint("pages", __name__)


@blueprint.before_request
def require_login() -> Any:
    if request.method not in SAFE_METHODS:
        auth.check_csrf()
    if g.user is None and request.endpoint not in PUBLIC:
        return redirect(url_for("pages.login", next=request.full_path.rstrip("?")))
    return None


def show(template: str, error: WebError | None = None, **context: Any) -> Any:
    """Render a page; with an error, show it (on its field if it names one) with its status."""
    if error is None:
        return render_template(template, errors={}, **context)
    errors = {error.field or "form": error.message}
    return render_template(template, errors=errors, **context), error.status


def safe_next(target: str | None) -> str:
    """Where to go after login: a path on this site only (never `//host` or a full URL)."""
    if not target:
        return url_for("pages.home")
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return url_for("pages.home")
    return target


# -- login ----------------------------------------------------------------------------------


@blueprint.route("/login", methods=["GET", "POST"])
def login() -> Any:
    next_page = request.values.get("next")
    if request.method == "GET":
        if g.user is not None:
            return redirect(safe_next(next_page))
        return show("login.html", next_page=next_page)
    username = request.form.get("username", "")
    try:
        user = auth.attempt_login(
            portal(), username, request.form.get("password", ""), request.remote_addr or ""
        )
    except WebError as exc:
        return show("login.html", exc, next_page=next_page, username=username)
    auth.start_session(user)
    return redirect(safe_next(next_page))


@blueprint.get("/sign-in/<token>")
def sign_in_link(token: str) -> Any:
    """A one-time link from an app (`sign_in_links`): sign in and open its page, once."""
    redeemed = portal().run(sign_in_links.redeem, token)
    if redeemed is None:
        flash(
            "That sign-in link has expired or was already used: sign in with your password, "
            "or open the page again from the app.",
            "error",
        )
        return redirect(url_for("pages.login"))
    user, page = redeemed
    auth.start_session(user)
    return redirect(url_for(sign_in_links.PAGES[page]))


@blueprint.post("/logout")
def logout() -> Any:
    auth.end_session(portal())
    flash("You have been logged out.")
    return redirect(url_for("pages.login"))


@blueprint.get("/")
def home() -> Any:
    figures = portal().run(home_figures.overview, g.user.account_id, portal().settings)
    return show("home.html", **figures)


# -- calls ----------------------------------------------------------------------------------


def call_choices(account_id: int) -> dict[str, Any]:
    return {
        "numbers": [c.number for c in account.own_numbers(account_id)],
        "entries": phonebook.all_entries(account_id),
    }


@blueprint.route("/call", methods=["GET", "POST"])
def call() -> Any:
    user = g.user
    choices = portal().run(call_choices, user.account_id)
    form = request.form if request.method == "POST" else request.args
    values = {
        "source": form.get("source") or user.default_callback_number or "",
        "destination": form.get("destination") or form.get("to") or "",
        "mode": form.get("mode") or "source_first",
    }
    if request.method == "GET":
        return show("call.html", form=values, **choices)
    try:
        if not first_submission():
            flash("That form had already been sent: the call it placed is listed here.")
            return redirect(url_for("pages.history_page"))
        started = callbacks.start(portal(), user, request.form)
    except WebError as exc:
        return show("call.html", exc, form=values, **choices)
    return redirect(url_for("pages.request_page", request_id=started["id"]))


def first_submission() -> bool:
    """False if the form's one-use token was spent by an earlier submission of the same form.

    The token is spent before the form is carried out, so of two concurrent submissions (a
    double click) one goes ahead. A form without one (a page from before it had them, a
    script: scripts have the JSON API) is refused.
    """
    token = request.form.get(FORM_TOKEN)
    if not token or len(token) > spent_tokens.MAX_LENGTH:
        raise Invalid("this form is out of date; reload the page and try again")
    lifetime = portal().settings.web.session_lifetime_seconds
    return portal().run(spent_tokens.spend, spent_tokens.FORM, token, lifetime)


@blueprint.get("/requests/<int:request_id>")
def request_page(request_id: int) -> Any:
    snap = portal().run(history.request_status, g.user.account_id, request_id)
    return show("request.html", snap=snap)


@blueprint.get("/requests/<int:request_id>/live")
def request_live(request_id: int) -> Any:
    """SSE for the status page: each snapshot with its HTML, rendered by the page's template."""
    account_id = g.user.account_id
    portal().run(history.owned_request, account_id, request_id)

    def render(snap: dict[str, Any]) -> dict[str, Any]:
        return {
            "status": snap,
            "html": render_template("_status.html", snap=snap),
            "balance": amount(snap["balance"], snap["currency"]) if snap["balance"] else None,
        }

    events = sse.status_events(portal(), account_id, request_id, render)
    return sse.stream(stream_with_context(events))


@blueprint.post("/requests/<int:request_id>/cancel")
def cancel(request_id: int) -> Any:
    try:
        callbacks.cancel(portal(), g.user, request_id)
        flash("Cancelling: both calls are being hung up.")
    except (Conflict, Unavailable) as exc:  # another account's request stays "not found"
        flash(exc.message, "error")
    return redirect(url_for("pages.request_page", request_id=request_id))


# -- phone book -----------------------------------------------------------------------------


def phonebook_page(error: WebError | None = None, form: Any = None) -> Any:
    query = request.args.get("q", "")
    found = portal().run(
        phonebook.search,
        g.user.account_id,
        query,
        inputs.page_request(request.args, default_per_page=50),
    )
    return show("phonebook.html", error, found=found, query=query, form=form or {})


@blueprint.get("/phonebook")
def phonebook_list() -> Any:
    return phonebook_page()


@blueprint.post("/phonebook")
def phonebook_add() -> Any:
    try:
        fields = phonebook.read_fields(request.form, portal().settings.numbers)
        entry = portal().run(phonebook.create, g.user.account_id, fields)
    except WebError as exc:
        return phonebook_page(exc, request.form)
    flash(f"Added {entry.name}.")
    return redirect(url_for("pages.phonebook_list"))


@blueprint.route("/phonebook/<int:entry_id>/edit", methods=["GET", "POST"])
def phonebook_edit(entry_id: int) -> Any:
    entry = portal().run(phonebook.get, g.user.account_id, entry_id)
    if request.method == "GET":
        return show("phonebook_edit.html", entry=entry, form=phonebook.describe(entry))
    try:
        fields = phonebook.read_fields(request.form, portal().settings.numbers)
        entry = portal().run(phonebook.update, g.user.account_id, entry_id, fields)
    except WebError as exc:
        return show("phonebook_edit.html", exc, entry=entry, form=request.form)
    flash(f"Saved {entry.name}.")
    return redirect(url_for("pages.phonebook_list"))


@blueprint.post("/phonebook/<int:entry_id>/favourite")
def phonebook_favourite(entry_id: int) -> Any:
    wanted = request.form.get("favourite") == "1"
    entry = portal().run(phonebook.set_favourite, g.user.account_id, entry_id, wanted)
    if wanted:
        flash(f"{entry.name} is now a favourite, on your home page.")
    else:
        flash(f"{entry.name} is no longer a favourite.")
    return redirect(safe_next(request.form.get("next") or url_for("pages.phonebook_list")))


@blueprint.post("/phonebook/<int:entry_id>/delete")
def phonebook_delete(entry_id: int) -> Any:
    entry = portal().run(phonebook.delete, g.user.account_id, entry_id)
    flash(f"Deleted {entry.name}.")
    return redirect(url_for("pages.phonebook_list"))


@blueprint.post("/phonebook/import")
def phonebook_import() -> Any:
    upload = request.files.get("file")
    try:
        if upload is None or not upload.filename:
            raise Invalid("choose a CSV file to import", field="file")
        try:
            text = upload.read().decode("utf-8")
        except UnicodeDecodeError:
            raise Invalid("the CSV file must be UTF-8 text", field="file") from None
        rows, errors = phonebook.parse_csv(text, portal().settings.numbers)
        if errors:
            raise Invalid("nothing imported: " + "; ".join(errors[:10]), field="file")
    except WebError as exc:
        return phonebook_page(exc)
    result = portal().run(phonebook.import_rows, g.user.account_id, rows)
    flash(f"Imported: {result.created} added, {result.updated} updated.")
    return redirect(url_for("pages.phonebook_list"))


@blueprint.get("/phonebook/export.csv")
def phonebook_export() -> Any:
    return csv_response(portal().run(phonebook.export_csv, g.user.account_id), "phonebook.csv")


# -- history and payments -------------------------------------------------------------------


@blueprint.get("/history")
def history_page() -> Any:
    try:
        wanted = history.read_filter(request.args)
        page_request = inputs.page_request(request.args)
    except WebError as exc:
        wanted, page_request, error = history.HistoryFilter(), inputs.PageRequest(), exc
    else:
        error = None
    found = portal().run(history.page, g.user.account_id, wanted, page_request)
    return show("history.html", error, found=found, wanted=wanted)


@blueprint.get("/history/export.csv")
def history_export() -> Any:
    wanted = history.read_filter(request.args)
    return csv_response(portal().run(history.export_csv, g.user.account_id, wanted), "history.csv")


def payments_page(error: WebError | None = None) -> Any:
    return show("payments.html", error, payments=portal().run(account.payments, g.user.account_id))


@blueprint.get("/payments")
def payments() -> Any:
    return payments_page()


@blueprint.post("/payments/voucher")
def redeem_voucher() -> Any:
    settings, client = portal().settings.billing, request.remote_addr or ""
    try:
        done = portal().run(
            account.redeem_voucher, g.user.account_id, request.form.get("code"), client, settings
        )
    except WebError as exc:
        return payments_page(exc)
    flash(
        f"{done['amount']} {done['currency']} added: your balance is {done['balance']} "
        f"{done['currency']}."
    )
    return redirect(url_for("pages.payments"))


# -- settings -------------------------------------------------------------------------------


def settings_context(account_id: int, user_id: int) -> dict[str, Any]:
    return {
        "overview": account.overview(account_id),
        "verifications": [
            verification.describe(v) for v in verification.open_verifications(account_id)
        ],
        "has_token": auth.has_token(user_id),
    }


def settings_page(error: WebError | None = None, **extra: Any) -> Any:
    context = portal().run(settings_context, g.user.account_id, g.user.id)
    return show("settings.html", error, **context, **extra)


@blueprint.get("/settings")
def settings() -> Any:
    return settings_page()


@blueprint.post("/settings/default-number")
def settings_default_number() -> Any:
    try:
        digits = inputs.number(
            request.form.get("number"), "number", "number", portal().settings.numbers
        )
        portal().run(account.set_default_number, g.user.account_id, digits)
    except WebError as exc:
        return settings_page(exc)
    flash(f"Calls will now ring {digits} by default.")
    return redirect(url_for("pages.settings"))


@blueprint.post("/settings/numbers")
def settings_add_number() -> Any:
    try:
        digits = inputs.number(
            request.form.get("new_number"), "new_number", "number", portal().settings.numbers
        )
        started = verification.begin(portal(), g.user.account_id, digits)
    except WebError as exc:
        if exc.field == "number":
            exc.field = "new_number"
        return settings_page(exc)
    return redirect(url_for("pages.settings_verification", verification_id=started.id))


@blueprint.get("/settings/numbers/<int:verification_id>")
def settings_verification(verification_id: int) -> Any:
    found = portal().run(verification.settle, g.user.account_id, verification_id)
    return show("verification.html", check=verification.describe(found))


@blueprint.post("/settings/numbers/<number>/remove")
def settings_remove_number(number: str) -> Any:
    try:
        digits = inputs.number(number, "number", "number", portal().settings.numbers)
        portal().run(account.remove_number, g.user.account_id, digits)
    except WebError as exc:
        return settings_page(exc)
    flash(f"Removed {digits}.")
    return redirect(url_for("pages.settings"))


@blueprint.post("/settings/token")
def settings_token() -> Any:
    token = portal().run(auth.issue_token, g.user.id)
    return settings_page(new_token=token)


@blueprint.post("/settings/token/revoke")
def settings_token_revoke() -> Any:
    portal().run(auth.revoke_token, g.user.id)
    flash("The API token has been revoked.")
    return redirect(url_for("pages.settings"))
