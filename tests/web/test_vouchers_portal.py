"""Topping up in the portal and through the API with a voucher's code; on SQLite and
PostgreSQL, against the portal the controller serves."""

from __future__ import annotations

from decimal import Decimal

from flask.testing import FlaskClient
from web_helpers import User

from esl_callback import vouchers
from esl_callback.models import Account


def test_a_voucher_typed_in_the_portal_tops_up_and_says_the_new_balance(
    client: FlaskClient, alice: User, logged_in: str
) -> None:
    _, (code,) = vouchers.create_batch(1, "12.50", "EUR")

    page = client.post(
        "/payments/voucher",
        data={"code": f" {code[:4]}-{code[4:8]} {code[8:]} ", "csrf_token": logged_in},
        follow_redirects=True,
    )

    assert page.status_code == 200
    assert "12.50 EUR added: your balance is 22.50 EUR." in page.text  # the currency's decimals
    assert Account.get_by_id(alice.account.id).balance == Decimal("22.5")
    assert "voucher " in page.text  # the payment shows in the list, named after the voucher


def test_a_refused_code_is_said_next_to_the_field_and_credits_nothing(
    client: FlaskClient, alice: User, logged_in: str
) -> None:
    page = client.post("/payments/voucher", data={"code": "1234", "csrf_token": logged_in})

    assert page.status_code == 422
    assert 'id="code-error"' in page.text and "A voucher code has 14 digits." in page.text
    assert Account.get_by_id(alice.account.id).balance == Decimal("10")


def test_the_api_redeems_once_and_locks_out_after_wrong_codes(
    client: FlaskClient, alice: User
) -> None:
    _, (code,) = vouchers.create_batch(1, "5", "EUR")

    def redeem(text: str):
        return client.post("/api/v1/vouchers/redeem", json={"code": text}, headers=alice.auth)

    first = redeem(code)
    assert (first.status_code, first.json["amount"], first.json["balance"]) == (
        200,
        "5.0000",
        "15.0000",
    )
    again = redeem(code)
    assert (again.status_code, again.json["error"]["field"]) == (422, "code")
    for wrong in ["1" * 14, "2" * 14, "3" * 14, "4" * 14]:
        assert redeem(wrong).status_code == 422
    locked = redeem("5" * 14)
    assert locked.status_code == 429 and "Retry-After" in locked.headers
