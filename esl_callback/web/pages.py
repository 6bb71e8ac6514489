"""The portal's pages: Jinja2 templates, plain forms with CSRF tokens, a little JS for live status.

Each page calls the same domain functions as the JSON API. A form that cannot be carried out is
shown again with the message next to the field at fault (and the HTTP status of the error).
"""

from __future__ import annotations

import logging
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

from esl_callback.callback import billing
from esl_callback.models import Account
from esl_callback.web import (
    account,
    auth,
    balance_alerts,
    callbacks,
    formats,
    history,
    inputs,
    phonebook,
    prices,
    quotes,
    sign_in_links,
    spent_tokens,
    sse,
    time_zones,
    verification,
)
from esl_callback.web import home as home_figures
from esl_callback.web.api import SAFE_METHODS, csv_response
from esl_callback.web.errors import Conflict, Forbidden, Invalid, Unavailable, WebError
from esl_callback.web.formats import amount
from esl_callback.web.portal import portal

log = logging.getLogger(__name__)
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


def call_choices(account_id: int, settings: Any) -> dict[str, Any]:
    return {
        "numbers": [c.number for c in account.own_numbers(account_id)],
        "entries": phonebook.choices(account_id),
        "charges_source": charges_leg_a(account_id, settings),
        "min_digits": settings.numbers.min_length,
    }


def priced(data: Any) -> dict[str, Any]:
    """The quote of the call the form describes (`quotes.quote`); WebError if it cannot be."""
    user = g.user
    order = callbacks.read_order(data, user.default_callback_number, portal().settings.numbers)
    return portal().run(quotes.quote, user.account_id, order, portal().settings)


def refuse_unpriced(quote: dict[str, Any]) -> None:
    """Forbidden, next to its field, for a call the quote says cannot be placed."""
    if not quote["allowed"]:
        reason = quote["refusal"]
        raise Forbidden(prices.refusal_sentence(reason), field=prices.refusal_field(reason))


@blueprint.get("/call/quote")
def call_quote() -> Any:
    """The price of the call being typed, as a fragment of the call form (app.js fetches it)."""
    try:
        quote = priced(request.args)
    except WebError as exc:
        return render_template("_quote.html", quote=None, error=exc)
    refusal = None if quote["allowed"] else prices.refusal_sentence(quote["refusal"])
    field = None if quote["allowed"] else prices.refusal_field(quote["refusal"])
    return render_template(
        "_quote.html",
        quote=quote,
        error=None,
        refusal=refusal,
        field=field,
        steps=prices.billing_steps,
        longest=portal().settings.billing.max_call_seconds,
    )


@blueprint.route("/call", methods=["GET", "POST"])
def call() -> Any:
    user = g.user
    choices = portal().run(call_choices, user.account_id, portal().settings)
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
        refuse_unpriced(priced(request.form))
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


@blueprint.get("/rates")
def rates() -> Any:
    query = request.args.get("q", "")
    try:
        wanted = inputs.page_request(request.args, default_per_page=50)
    except WebError as exc:
        wanted, error = inputs.PageRequest(1, 50), exc
    else:
        error = None
    settings = portal().settings
    found = portal().run(prices.search, query, wanted, settings)
    charges_source = portal().run(charges_leg_a, g.user.account_id, settings)
    return show(
        "rates.html",
        error,
        result=found,
        currency=g.user.currency,
        charges_source=charges_source,
        steps=prices.billing_steps,
    )


def charges_leg_a(account_id: int, settings: Any) -> bool:
    """Whether the account pays for the call to its own phone (`billing.charges_leg_a`)."""
    return billing.charges_leg_a(Account.get_by_id(account_id), settings.billing)


# -- phone book -----------------------------------------------------------------------------


def phonebook_page(error: WebError | None = None, form: Any = None) -> Any:
    query = request.args.get("q", "")
    found = portal().run(
        phonebook.search,
        g.user.account_id,
        query,
        inputs.page_request(request.args, default_per_page=50),
    )
    return show(
        "phonebook.html",
        error,
        found=found,
        query=query,
        form=phonebook.form_values(form or {}),
        labels=phonebook.LABELS,
    )


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
    context = {"entry": entry, "labels": phonebook.LABELS}
    if request.method == "GET":
        described = portal().run(phonebook.describe, entry)
        return show("phonebook_edit.html", form=phonebook.form_values(described), **context)
    try:
        fields = phonebook.read_fields(request.form, portal().settings.numbers)
        entry = portal().run(phonebook.update, g.user.account_id, entry_id, fields)
    except WebError as exc:
        form = phonebook.form_values(request.form)
        return show("phonebook_edit.html", exc, form=form, **context)
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


def uploaded_csv() -> str:
    """The text of the CSV file chosen on the phone-book page, or Invalid on its field."""
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        raise Invalid("Choose a CSV file to import.", field="file")
    try:
        return upload.read().decode("utf-8")
    except UnicodeDecodeError:
        raise Invalid(
            "That file is not UTF-8 text: save it again as CSV (UTF-8).", field="file"
        ) from None


def import_preview(text: str) -> Any:
    """What importing `text` would do (adds, updates to confirm, errors), nothing written yet."""
    rows, errors = phonebook.parse_csv(text, portal().settings.numbers)
    plan = portal().run(phonebook.plan_import, g.user.account_id, rows)
    plan.errors[:0] = errors
    page = render_template("phonebook_import.html", plan=plan, csv_text=text, errors={})
    return page, 422 if plan.errors else 200


@blueprint.post("/phonebook/import")
def phonebook_import() -> Any:
    try:
        text = uploaded_csv()
    except WebError as exc:
        return phonebook_page(exc)
    return import_preview(text)


@blueprint.post("/phonebook/import/confirm")
def phonebook_import_confirm() -> Any:
    """Carry out a previewed import: adds, and the updates the user ticked."""
    text = request.form.get("csv", "")
    rows, errors = phonebook.parse_csv(text, portal().settings.numbers)
    if errors:
        return import_preview(text)
    overwrite = [int(i) for i in request.form.getlist("overwrite") if i.isascii() and i.isdigit()]
    result = portal().run(phonebook.import_rows, g.user.account_id, rows, overwrite)
    flash(
        f"Imported: {result.created} added, {result.updated} updated, "
        f"{result.skipped} left as they were."
    )
    return redirect(url_for("pages.phonebook_list"))


@blueprint.get("/phonebook/export.csv")
def phonebook_export() -> Any:
    return csv_response(portal().run(phonebook.export_csv, g.user.account_id), "phonebook.csv")


# -- history and payments -------------------------------------------------------------------


def history_filter() -> history.HistoryFilter:
    """The history page's filter from the query, days in the user's time zone."""
    zone = time_zones.current_name()
    return history.read_page_filter(request.args, zone, time_zones.today(zone))


@blueprint.get("/history")
def history_page() -> Any:
    try:
        wanted = history_filter()
        page_request = inputs.page_request(request.args)
    except WebError as exc:
        zone = time_zones.current_name()
        wanted = history.HistoryFilter(period="all", zone=zone)
        page_request, error = inputs.PageRequest(), exc
    else:
        error = None
    found = portal().run(history.view, g.user.account_id, wanted, page_request)
    return show(
        "history.html",
        error,
        view=found,
        found=found.found,
        wanted=wanted,
        periods=history.PERIODS,
        outcomes=history.OUTCOMES,
        days=history.days_words,
        zone_chosen=time_zones.chosen_zone() is not None,
    )


@blueprint.get("/history/export.csv")
def history_export() -> Any:
    wanted = history_filter()
    exported = portal().run(history.export_calls_csv, g.user.account_id, wanted)
    return csv_response(exported, "calls.csv")


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
    currency = done["currency"]
    flash(
        f"{amount(done['amount'], currency)} added: your balance is "
        f"{amount(done['balance'], currency)}."
    )
    return redirect(url_for("pages.payments"))


# -- settings -------------------------------------------------------------------------------


def settings_context(account_id: int, user_id: int) -> dict[str, Any]:
    settings = portal().settings
    return {
        "check_is_charged": charges_leg_a(account_id, settings),
        "overview": account.overview(account_id),
        "verifications": [
            verification.describe(v) for v in verification.open_verifications(account_id)
        ],
        "tokens": auth.tokens(user_id),
        "alert": balance_alerts.describe(account_id, settings),
    }


def preferences_context() -> dict[str, Any]:
    """What Settings' time zone and low-balance alert forms show (_preferences.html)."""
    return {
        "zones": time_zones.all_zones(),
        "chosen_zone": time_zones.chosen_zone(),
        "browser_zone": time_zones.browser_zone(),
    }


def settings_page(error: WebError | None = None, **extra: Any) -> Any:
    context = portal().run(settings_context, g.user.account_id, g.user.id)
    return show("settings.html", error, **context, **preferences_context(), **extra)


@blueprint.get("/settings")
def settings() -> Any:
    return settings_page()


@blueprint.post("/settings/default-number")
def settings_default_number() -> Any:
    try:
        digits = inputs.number(request.form.get("number"), "number", portal().settings.numbers)
        portal().run(account.set_default_number, g.user.account_id, digits)
    except WebError as exc:
        return settings_page(exc)
    flash(f"Calls will now ring {digits} by default.")
    return redirect(url_for("pages.settings"))


@blueprint.post("/settings/numbers")
def settings_add_number() -> Any:
    try:
        digits = inputs.number(
            request.form.get("new_number"), "new_number", portal().settings.numbers
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
        digits = inputs.number(number, "number", portal().settings.numbers)
        portal().run(account.remove_number, g.user.account_id, digits)
    except WebError as exc:
        return settings_page(exc)
    flash(f"Removed {digits}.")
    return redirect(url_for("pages.settings"))


@blueprint.post("/settings/password")
def settings_password() -> Any:
    """A new password, with the current one; the user's other sessions end, this one goes on."""
    try:
        new_password = auth.read_new_password(request.form)
        auth.confirm_password(
            portal(), g.user, request.form.get("current_password", ""), request.remote_addr or ""
        )
    except WebError as exc:
        return settings_page(exc)
    auth.start_session(auth.change_password(portal(), g.user, new_password))
    flash("Your password has been changed. Your other sessions have been logged out.")
    return redirect(url_for("pages.settings"))


@blueprint.post("/settings/pin")
def settings_pin() -> Any:
    """A new PIN, with the password; shown on this page once (only its digest is kept)."""
    try:
        auth.confirm_password(
            portal(), g.user, request.form.get("pin_password", ""), request.remote_addr or ""
        )
    except WebError as exc:
        if exc.field == "current_password":
            exc.field = "pin_password"
        return settings_page(exc)
    pin = portal().run(account.new_pin, g.user.account_id)
    log.info("web user %s made a new PIN for their account", g.user.username)
    return settings_page(new_pin=pin)


@blueprint.post("/settings/sessions/end-others")
def settings_end_other_sessions() -> Any:
    auth.start_session(portal().run(auth.end_other_sessions, g.user.id))
    flash("You have been logged out everywhere else: only this browser is still logged in.")
    return redirect(url_for("pages.settings"))


@blueprint.post("/settings/time-zone")
def settings_time_zone() -> Any:
    raw = request.form.get("time_zone") or ""
    if raw and time_zones.valid(raw) is None:
        return settings_page(Invalid("Choose a time zone from the list.", field="time_zone"))
    portal().run(time_zones.store, g.user.id, raw or None)
    g.pop("chosen_time_zone", None)
    if raw:
        flash(f"Times are now shown in {raw}.")
    else:
        flash(f"Times are now shown in your browser's time zone ({time_zones.current_name()}).")
    return redirect(url_for("pages.settings", _anchor="time-zone"))


@blueprint.post("/settings/alert")
def settings_alert() -> Any:
    account_id = g.user.account_id
    current = portal().run(balance_alerts.describe, account_id, portal().settings)
    try:
        choice = balance_alerts.read(
            request.form, current["currency"], current["offered"], bool(current["number"])
        )
    except WebError as exc:
        return settings_page(exc, alert_form=request.form)
    portal().run(balance_alerts.store, account_id, choice)
    if choice.threshold is None:
        flash("Low-balance alerts are off.")
    else:
        below = amount(choice.threshold, current["currency"])
        to = choice.email if choice.email else f"your number {formats.phone(current['number'])}"
        way = "e-mail" if choice.email else "text"
        flash(
            f"We will {way} {to} when a call takes your balance below {below}."
            + (
                " It is below that now: the alert goes the next time it drops below, after a "
                "top-up."
                if current["balance"] < choice.threshold
                else ""
            )
        )
    return redirect(url_for("pages.settings", _anchor="alert"))


@blueprint.post("/settings/token")
def settings_token() -> Any:
    try:
        label = inputs.text(
            request.form.get("label"),
            "label",
            "the token's name",
            max_length=auth.TOKEN_LABEL_LENGTH,
        )
    except WebError as exc:
        return settings_page(exc)
    token = portal().run(auth.issue_token, g.user.id, label)
    return settings_page(new_token=token, new_token_label=label)


@blueprint.post("/settings/token/<int:token_id>/revoke")
def settings_token_revoke(token_id: int) -> Any:
    label = portal().run(auth.revoke_token, g.user.id, token_id)
    flash(f"The token {label} has been revoked: the app using it must sign in again.")
    return redirect(url_for("pages.settings"))
