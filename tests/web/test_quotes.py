"""Price quotes (GET /api/v1/quote): the rates, and the longest call the balance pays, before a
callback is placed, computed as the dialer's first hold computes them; nothing held.

Rates (`web_helpers.german_rates`): 0.60 EUR a minute to any German number, billed by the
second, so each leg costs 0.01 EUR a second. The platform lets a leg ring 20 s
(`callback.originate_timeout_seconds`) and charges leg A.
"""

from __future__ import annotations

from collections.abc import Callable

from flask.testing import FlaskClient
from web_helpers import ALICE_PHONE, BOB_PHONE, FRIEND, User, WebPlatform

from esl_callback.callback import billing, requests
from esl_callback.callback.allowance import head_starts
from esl_callback.models import CallbackRequest, Reservation

RING = 20


def quote(client: FlaskClient, user: User, **args: str):
    return client.get("/api/v1/quote", query_string=args, headers=user.auth)


def first_hold_seconds(user: User, mode: str, destination: str, platform: WebPlatform) -> int:
    """The longest call `billing.authorise` allows a new request of `user` (the dialer's first
    hold), the request removed afterwards."""
    settings = platform.service.settings
    request = requests.create(
        trigger="web", method="web", account=user.account, mode=mode, source=ALICE_PHONE,
        destination=destination,
    )  # fmt: skip
    head_a, head_b = head_starts(mode, settings.callback.originate_timeout_seconds)
    held = billing.authorise(
        user.account, request, ALICE_PHONE, destination, settings.billing,
        leg_a_head_start=head_a, leg_b_head_start=head_b,
        max_seconds=settings.billing.max_call_seconds,
        default_call_limit=settings.callback.max_concurrent_calls,
    )  # fmt: skip
    billing.release_reservations(request)
    Reservation.delete().execute()
    request.delete_instance()
    return held.max_duration


def test_a_quote_gives_the_rates_and_the_longest_call_as_the_first_hold_would(
    client: FlaskClient, alice: User, platform: WebPlatform
) -> None:
    response = quote(client, alice, destination="040 2222 222")
    assert response.status_code == 200
    body = response.json
    rate = {
        "prefix": "49",
        "description": "Germany",
        "price_per_minute": "0.6000",
        "connect_fee": "0.0000",
        "minimum": 1,
        "increment": 1,
    }
    assert body == {
        "source": ALICE_PHONE,  # the account's callback number when none is given
        "destination": FRIEND,
        "mode": "source_first",
        "allowed": True,
        "refusal": None,
        "refusal_words": None,
        "currency": "EUR",
        "available": "10.0000",
        "price_per_minute": "1.2000",  # both legs are charged
        "connect_fee": "0.0000",
        "destination_rate": rate,
        "source_rate": rate,
        # leg A rings up to 20 s and leg B is counted 1 s ahead: 0.21 + 0.02 a second <= 10
        "max_seconds": 489,
    }
    assert body["max_seconds"] == first_hold_seconds(alice, "source_first", FRIEND, platform)
    # Both legs may ring 20 s in a simultaneous call: 0.40 + 0.02 a second <= 10
    both = quote(client, alice, destination=FRIEND, mode="simultaneous").json
    assert both["max_seconds"] == 480
    assert both["max_seconds"] == first_hold_seconds(alice, "simultaneous", FRIEND, platform)
    # Nothing was held or stored by the quotes.
    assert Reservation.select().count() == 0
    assert CallbackRequest.select().count() == 0


def test_a_balance_too_low_for_the_first_second_is_refused_in_the_portals_words(
    client: FlaskClient, make_user: Callable[..., User], platform: WebPlatform
) -> None:
    poor = make_user("poor", balance="0.10")
    body = quote(client, poor, destination=FRIEND).json
    assert (body["allowed"], body["refusal"], body["refusal_words"]) == (
        False,
        "balance_too_low",
        "balance too low",
    )
    assert (body["available"], body["max_seconds"]) == ("0.1000", 0)
    assert body["price_per_minute"] == "1.2000"  # the price is still told


def test_numbers_the_dial_policy_refuses_and_destinations_without_a_rate_are_refused(
    platform_with: Callable[..., WebPlatform], make_user: Callable[..., User]
) -> None:
    platform = platform_with(billing={"deny_prefixes": ["4940", "4930222"]})
    client = platform.client()
    alice = make_user("alice")
    bob = make_user("bob", number=BOB_PHONE)
    denied = quote(client, alice, destination=FRIEND).json
    assert (denied["allowed"], denied["refusal"], denied["refusal_words"]) == (
        False,
        "destination_denied",
        "calls to this destination are not allowed",
    )
    assert denied["max_seconds"] == 0
    never_called_back = quote(client, bob, destination="4989111222").json
    assert (never_called_back["refusal"], never_called_back["refusal_words"]) == (
        "callback_number_denied",
        "calls to this number are not allowed",
    )
    no_rate = quote(client, alice, destination="+33 1 23 45 67 89").json
    assert (no_rate["refusal"], no_rate["refusal_words"], no_rate["destination_rate"]) == (
        "no_rate_destination",
        "no price for this destination",
        None,
    )


def test_a_quote_makes_the_checks_of_placing_the_call(
    client: FlaskClient, alice: User, bob: User
) -> None:
    not_hers = quote(client, alice, destination=FRIEND, source=BOB_PHONE)
    assert (not_hers.status_code, not_hers.json["error"]["field"]) == (403, "source")
    bad = quote(client, alice, destination="040 12x")
    assert (bad.status_code, bad.json["error"]["field"]) == (422, "destination")
    itself = quote(client, alice, destination=ALICE_PHONE)
    assert itself.status_code == 422
    assert client.get("/api/v1/quote", query_string={"destination": FRIEND}).status_code == 401
