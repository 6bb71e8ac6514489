"""Price before calling: the call form's price as the number is typed (/call/quote), a call that
cannot be placed said in the form, what costs money, and the rates page.

Rates (`web_helpers.german_rates`): 0.60 EUR a minute to any German number, by the second; leg A
is charged, so a call costs 1.20 EUR a minute, and 10 EUR pay 489 s (see test_quotes).
"""

from __future__ import annotations

from collections.abc import Callable

from flask.testing import FlaskClient
from web_helpers import FRIEND, User, WebPlatform, form_token_from, login

from esl_callback.models import CallbackRequest


def quote_text(client: FlaskClient, **args: str) -> str:
    response = client.get("/call/quote", query_string=args)
    assert response.status_code == 200
    return " ".join(response.text.split())


def test_the_call_form_tells_the_price_and_the_longest_call_as_the_number_is_typed(
    client: FlaskClient, logged_in: str
) -> None:
    text = quote_text(client, destination="040 2222222")
    assert (
        "<strong>1.20 EUR a minute</strong> in all: 0.60 EUR for Germany and 0.60 EUR for your "
        "phone; billed per second." in text
    )
    assert "Your balance pays for a call of up to 8 min 09 s." in text
    assert "up to 8 min 00 s" in quote_text(client, destination=FRIEND, mode="simultaneous")
    assert "There is no price for calls to this number, so it cannot be called." in quote_text(
        client, destination="+33 1 23 45 67 89"
    )
    mistyped = quote_text(client, destination="040 22x2222")
    assert 'class="quote-refused" data-field="destination"' in mistyped


def test_what_costs_money_is_said_on_the_forms_before_the_click(
    client: FlaskClient, logged_in: str
) -> None:
    form = " ".join(client.get("/call").text.split())
    assert "The call to your own phone, from the moment you answer it:" in form
    assert "even if the other number is busy or does not answer" in form
    settings = " ".join(client.get("/settings").text.split())
    assert "The check is a call like any other: it is charged at" in settings


def test_a_call_that_cannot_be_placed_is_refused_in_the_form_and_nothing_is_dialled(
    platform_with: Callable[..., WebPlatform], make_user: Callable[..., User]
) -> None:
    running = platform_with(billing={"deny_prefixes": ["4940"]})
    client = running.client()
    token = login(client, make_user("alice"))
    denied = quote_text(client, destination=FRIEND)
    assert 'data-field="destination">Calls to this number are not allowed.</p>' in denied
    for destination, message in (
        (FRIEND, "Calls to this number are not allowed."),
        ("+33 1 23 45 67 89", "There is no price for calls to this number"),
    ):
        page = client.get("/call").text
        refused = client.post(
            "/call",
            data={
                "destination": destination,
                "csrf_token": token,
                "form_token": form_token_from(page),
            },
        )
        assert refused.status_code == 403
        assert f'<p class="field-error" id="destination-error">{message}' in refused.text
        assert 'aria-invalid="true"' in refused.text
    assert CallbackRequest.select().count() == 0
    assert running.switch.channels() == []


def test_the_rates_page_finds_a_rate_by_number_or_by_country(
    client: FlaskClient, logged_in: str
) -> None:
    by_number = " ".join(client.get("/rates", query_string={"q": "+49 40 2222222"}).text.split())
    assert (
        "Calls to +49 40 2222222 cost <strong>0.60 EUR a minute</strong> (Germany); billed per "
        "second." in by_number
    )
    by_country = client.get("/rates", query_string={"q": "germ"}).text
    assert '<td data-label="Numbers starting" class="number">+49</td>' in by_country
    unknown = client.get("/rates", query_string={"q": "+33 1 23 45 67 89"}).text
    assert "There is no price for calls to +33 1 23 45 67 89" in unknown
    assert "No rates match your search." in client.get("/rates?q=atlantis").text
    for first_digits in ("+49", "0049", "49"):  # too short for a number: the rates starting so
        found = client.get("/rates", query_string={"q": first_digits}).text
        assert '<td data-label="Numbers starting" class="number">+49</td>' in found
    assert "No rates match" in client.get("/rates", query_string={"q": "+33"}).text


def test_the_rates_page_says_a_denied_number_cannot_be_called(
    platform_with: Callable[..., WebPlatform], make_user: Callable[..., User]
) -> None:
    client = platform_with(billing={"deny_prefixes": ["4940"]}).client()
    login(client, make_user("alice"))
    denied = " ".join(client.get("/rates", query_string={"q": FRIEND}).text.split())
    assert "Calls to +49 40 2222222 are not allowed." in denied
    assert "<table" not in denied
