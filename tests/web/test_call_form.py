"""The call page's form places one call however often it is sent (a double click, a resend)."""

from __future__ import annotations

import gevent
from flask import Flask
from flask.testing import FlaskClient
from web_helpers import ALICE_PHONE, SILENT, csrf_from, form_token_from

from esl_callback.models import CallbackRequest


def call_form(client: FlaskClient) -> dict[str, str]:
    """The call page's form as the browser would send it."""
    page = client.get("/call").text
    return {
        "source": ALICE_PHONE,
        "destination": SILENT,
        "csrf_token": csrf_from(page),
        "form_token": form_token_from(page),
    }


def test_the_same_call_form_sent_twice_at_once_places_one_call(
    app: Flask, client: FlaskClient, logged_in: str
) -> None:
    form = call_form(client)
    cookie = client.get_cookie("esl_callback_session")
    assert cookie is not None
    clients = [client, app.test_client()]
    clients[1].set_cookie("esl_callback_session", cookie.value)
    sent = [gevent.spawn(c.post, "/call", data=form) for c in clients]
    gevent.joinall(sent, raise_error=True)
    places = [g.value.headers["Location"] for g in sent]
    assert CallbackRequest.select().count() == 1
    assert sorted(places) == ["/history", f"/requests/{CallbackRequest.get().id}"]
    second = clients[places.index("/history")]  # the one the browser shows
    assert "That form had already been sent" in second.get("/history").text


def test_each_call_form_is_sent_once_and_a_new_one_places_another_call(
    client: FlaskClient, logged_in: str
) -> None:
    form = call_form(client)
    assert client.post("/call", data=form).headers["Location"].startswith("/requests/")
    assert client.post("/call", data=form).headers["Location"] == "/history"
    again = call_form(client)
    assert again["form_token"] != form["form_token"]
    assert client.post("/call", data=again).headers["Location"].startswith("/requests/")
    assert CallbackRequest.select().count() == 2


def test_a_call_form_refused_for_a_mistake_comes_back_ready_to_send_again(
    client: FlaskClient, logged_in: str
) -> None:
    form = call_form(client)
    refused = client.post("/call", data={**form, "destination": "12x"})
    assert refused.status_code == 422
    fresh = form_token_from(refused.text)
    assert fresh != form["form_token"]
    fixed = {**form, "form_token": fresh}
    assert client.post("/call", data=fixed).headers["Location"].startswith("/requests/")


def test_a_call_form_without_its_one_use_token_places_no_call(
    client: FlaskClient, logged_in: str
) -> None:
    form = call_form(client)
    del form["form_token"]
    refused = client.post("/call", data=form)
    assert refused.status_code == 422
    assert "this form is out of date; reload the page and try again" in refused.text
    assert CallbackRequest.select().count() == 0
