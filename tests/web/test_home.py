"""The home page: balance, the low-balance notice, recent calls with redial, favourites and the
numbers to call or text for a callback from a phone."""

from __future__ import annotations

import re
from collections.abc import Callable

from flask.testing import FlaskClient
from web_helpers import FRIEND, User, WebPlatform, form_token_from, login, wait_until_ended

from esl_callback import accounts
from esl_callback.callback import requests
from esl_callback.models import Account, CallbackRequest, PhoneBookEntry


def test_after_login_the_home_page_shows_the_balance_and_where_to_top_up(
    client: FlaskClient, alice: User
) -> None:
    token = login(client, alice)
    assert token
    response = client.get("/")
    assert response.status_code == 200
    assert '<p class="big-balance">10.00 EUR</p>' in response.text
    assert 'href="/payments">Top up</a>' in response.text
    assert "Your balance is low" not in response.text
    assert "No calls yet." in response.text


def test_a_low_balance_is_said_on_the_home_page(
    client: FlaskClient, make_user: Callable[..., User]
) -> None:
    login(client, make_user("carol", balance="0.685"))
    page = client.get("/").text
    assert '<p class="big-balance">0.69 EUR</p>' in page  # the currency's decimals
    assert "Your balance is low, below 1.00 EUR: top up" in page


def test_recent_calls_have_one_click_redial_and_favourites_one_click_calls(
    client: FlaskClient, logged_in: str, alice: User, platform: WebPlatform
) -> None:
    mary = PhoneBookEntry.create(account=alice.account, name="Mary", number=FRIEND)
    requests.create(
        trigger="web",
        method="web",
        account=alice.account,
        mode="source_first",
        source=alice.account.default_callback_number,
        destination=FRIEND,
        state=requests.State.FAILED,
    )
    page = client.get("/").text
    assert re.search(r'class="name" href="/requests/\d+">Mary</a>', page)
    assert 'Call again<span class="visually-hidden"> Mary</span>' in page
    assert "Mark people in your" in page  # no favourites yet

    response = client.post(
        f"/phonebook/{mary.id}/favourite",
        data={"favourite": "1", "csrf_token": logged_in, "next": "/"},
    )
    assert response.headers["Location"] == "/"
    page = client.get("/").text
    assert '<span class="name">Mary</span> <span class="number">+49 40 2222222</span>' in page
    assert client.get(f"/api/v1/phonebook/{mary.id}", headers=alice.auth).json["favourite"]

    # One click: the redial form posts to /call and the call starts at once.
    redial = client.post(
        "/call",
        data={
            "destination": FRIEND,
            "mode": "source_first",
            "csrf_token": logged_in,
            "form_token": form_token_from(page),
        },
    )
    assert redial.status_code == 302
    started = CallbackRequest.select().order_by(CallbackRequest.id.desc()).first()
    assert redial.headers["Location"] == f"/requests/{started.id}"
    assert started.destination == FRIEND
    assert wait_until_ended(started.id)["outcome"] == "connected"


def test_the_numbers_to_call_or_text_for_a_callback_are_listed(
    platform_with: Callable[..., WebPlatform], make_user: Callable[..., User]
) -> None:
    running = platform_with(sms={"enabled": True, "numbers": ["+49 30 100300"]})
    alice = make_user("alice")
    accounts.add_access_number("4930100100", "pin")
    accounts.add_access_number("4930100200", "ani")
    accounts.add_did("4930555001", Account.get_by_id(alice.account.id))
    client = running.client()
    login(client, alice)
    page = client.get("/").text
    assert '<a class="number" href="tel:+4930555001">+49 30 555001</a>' in page
    assert "we call you back on +49 30 111111." in page
    assert "we call you back and ask for your PIN." in page
    assert "Your account has no PIN yet" in page
    assert '<a class="number" href="sms:+4930100300">+49 30 100300</a> (SMS)' in page
    assert "<code>TOPUP 1234 5678 9012 34</code>" in page
