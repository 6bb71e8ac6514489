"""Call history with legs, times, causes and costs; CDRs; CSV export; payments; the balance."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from flask.testing import FlaskClient
from web_helpers import User

from esl_callback.callback import billing, requests
from esl_callback.callback.requests import State
from esl_callback.models import Account, CallbackRequest, Leg

DAY = datetime(2025, 3, 14, 9, 30)


def finished_call(
    user: User,
    destination: str,
    at: datetime,
    *,
    busy: bool = False,
    cost_a: str = "0.10",
    cost_b: str = "0.30",
) -> CallbackRequest:
    """A source-first call as the dialer leaves it: both legs billed, the account debited."""
    request = requests.create(
        trigger="web",
        method="web",
        account=user.account,
        mode="source_first",
        source="4930111111",
        destination=destination,
    )
    CallbackRequest.update(created_at=at).where(CallbackRequest.id == request.id).execute()
    answered = at + timedelta(seconds=5)
    Leg.create(
        request=request.id,
        leg="a",
        uuid=f"{request.id}-a",
        number="4930111111",
        created_at=at,
        answered_at=answered,
        ended_at=answered + timedelta(seconds=70),
        billsec=70,
        billed=True,
        cost=Decimal(cost_a),
        hangup_cause="NORMAL_CLEARING",
        state="hung_up",
    )
    Leg.create(
        request=request.id,
        leg="b",
        uuid=f"{request.id}-b",
        number=destination,
        created_at=answered,
        answered_at=None if busy else answered + timedelta(seconds=10),
        ended_at=answered + timedelta(seconds=70),
        billsec=0 if busy else 60,
        billed=True,
        cost=Decimal(0 if busy else cost_b),
        hangup_cause="USER_BUSY" if busy else "NORMAL_CLEARING",
        state="hung_up",
    )
    spent = Decimal(cost_a) + (0 if busy else Decimal(cost_b))
    Account.update(balance=Account.balance - spent).where(Account.id == user.account.id).execute()
    requests.advance(request.id, State.CALLING_SOURCE)
    if busy:
        requests.advance(request.id, State.FAILED, failure_cause="USER_BUSY")
    else:
        requests.advance(request.id, State.CALLING_DESTINATION)
        requests.advance(request.id, State.BRIDGED)
        requests.advance(request.id, State.COMPLETED)
    return request


def history(client: FlaskClient, user: User, **args: str) -> dict:
    response = client.get("/api/v1/requests", query_string=args, headers=user.auth)
    assert response.status_code == 200, response.json
    return response.json


def test_history_lists_requests_newest_first_with_legs_times_causes_and_costs(
    client: FlaskClient, alice: User
) -> None:
    finished_call(alice, "4940222222", DAY)
    finished_call(alice, "4989333333", DAY + timedelta(hours=1), busy=True)
    page = history(client, alice)
    assert page["total"] == 2
    busy, done = page["items"]
    assert (busy["destination"], busy["state"], busy["failure_words"]) == (
        "4989333333",
        "failed",
        "busy",
    )
    assert [(leg["role"], leg["status"]) for leg in busy["legs"]] == [
        ("source", "hung_up"),
        ("destination", "busy"),
    ]
    assert busy["cost"] == "0.1000"
    assert (done["state"], done["duration_seconds"], done["cost"]) == ("completed", 60, "0.4000")
    leg_b = done["legs"][1]
    assert (leg_b["answered_at"], leg_b["ended_at"], leg_b["billsec"], leg_b["cost"]) == (
        "2025-03-14T09:30:15Z",
        "2025-03-14T09:31:15Z",
        60,
        "0.3000",
    )


def test_history_filters_by_day_and_by_number(client: FlaskClient, alice: User) -> None:
    finished_call(alice, "4940222222", DAY)
    finished_call(alice, "4989333333", DAY + timedelta(days=1))
    finished_call(alice, "4989444444", DAY + timedelta(days=2))

    def destinations(**args: str) -> list[str]:
        return [item["destination"] for item in history(client, alice, **args)["items"]]

    assert destinations(**{"from": "2025-03-15"}) == ["4989444444", "4989333333"]
    assert destinations(to="2025-03-15") == ["4989333333", "4940222222"]
    assert destinations(**{"from": "2025-03-15", "to": "2025-03-15"}) == ["4989333333"]
    assert destinations(number="+49 89") == ["4989444444", "4989333333"]
    assert destinations(number="4930111111") == ["4989444444", "4989333333", "4940222222"]


def test_a_filter_up_to_the_last_day_there_is_keeps_every_call_and_the_page_shows_it(
    client: FlaskClient, alice: User, logged_in: str
) -> None:
    finished_call(alice, "4940222222", DAY)
    last, first = {"to": "9999-12-31"}, {"from": "0001-01-01"}
    assert history(client, alice, **last)["total"] == 1
    assert history(client, alice, **first, **last)["total"] == 1
    assert history(client, alice, **{"from": "9999-12-31"})["total"] == 0
    csv_export = client.get("/api/v1/requests.csv", query_string=last, headers=alice.auth)
    assert len(csv_export.text.splitlines()) == 3  # the header and one line per leg
    assert "4940222222" in client.get("/history", query_string=last).text
    assert "4940222222" in client.get("/history/export.csv", query_string=last).text


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ({"from": "14/03/2025"}, "from"),
        ({"from": "2025-03-16", "to": "2025-03-15"}, "from"),
        ({"number": "49x"}, "number"),
        ({"page": "0"}, "page"),
    ],
)
def test_bad_history_filters_are_refused(
    client: FlaskClient, alice: User, args: dict, field: str
) -> None:
    response = client.get("/api/v1/requests", query_string=args, headers=alice.auth)
    assert response.status_code == 422
    assert response.json["error"]["field"] == field


def test_history_is_paginated(client: FlaskClient, alice: User) -> None:
    for minute in range(5):
        finished_call(alice, "4940222222", DAY + timedelta(minutes=minute))
    page = history(client, alice, per_page="2", page="2")
    assert (page["total"], page["pages"], len(page["items"])) == (5, 3, 2)


def test_history_shows_only_the_users_own_calls(
    client: FlaskClient, alice: User, bob: User
) -> None:
    finished_call(bob, "4940222222", DAY)
    assert history(client, alice)["total"] == 0
    assert history(client, bob)["total"] == 1


def test_a_cdr_is_shown_to_its_account_only(client: FlaskClient, alice: User, bob: User) -> None:
    request = finished_call(alice, "4940222222", DAY)
    leg_b = Leg.get(Leg.request == request.id, Leg.leg == "b")
    mine = client.get(f"/api/v1/cdrs/{leg_b.id}", headers=alice.auth)
    assert mine.status_code == 200
    assert (mine.json["request_id"], mine.json["number"], mine.json["cost"]) == (
        request.id,
        "4940222222",
        "0.3000",
    )
    theirs = client.get(f"/api/v1/cdrs/{leg_b.id}", headers=bob.auth)
    assert theirs.status_code == 404
    assert theirs.json["error"]["message"] == f"no call record {leg_b.id}"
    assert client.get("/api/v1/cdrs/999999", headers=alice.auth).status_code == 404


def test_history_csv_has_one_line_per_leg(client: FlaskClient, alice: User) -> None:
    finished_call(alice, "4940222222", DAY)
    finished_call(alice, "4989333333", DAY + timedelta(days=1), busy=True)
    exported = client.get("/api/v1/requests.csv?to=2025-03-14", headers=alice.auth)
    assert exported.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert [(r["leg"], r["leg_number"], r["leg_billsec"], r["leg_cost"]) for r in rows] == [
        ("a", "4930111111", "70", "0.1000"),
        ("b", "4940222222", "60", "0.3000"),
    ]
    assert rows[0]["request_cost"] == "0.4000" and rows[0]["duration_seconds"] == "60"


def test_the_history_page_shows_calls_and_links_to_filtered_csv(
    client: FlaskClient, logged_in: str, alice: User
) -> None:
    finished_call(alice, "4989333333", DAY, busy=True)
    page = client.get("/history?number=4989")
    assert page.status_code == 200
    assert "4930111111 → 4989333333" in page.text
    assert "busy" in page.text and "0.10 EUR" in page.text
    assert 'href="/history/export.csv?number=4989"' in page.text
    csv_text = client.get("/history/export.csv?number=4989").text
    assert "4989333333" in csv_text
    assert "No calls match the filter." in client.get("/history?number=4940").text


def test_the_history_page_explains_a_bad_filter(client: FlaskClient, logged_in: str) -> None:
    page = client.get("/history?from=yesterday")
    assert page.status_code == 422
    assert "That is not a date: write it as year-month-day, e.g. 2025-01-31" in page.text


def test_payments_are_listed_newest_first_with_references(
    client: FlaskClient, alice: User, bob: User
) -> None:
    billing.add_payment(alice.account, "25.50", "invoice 2025-007", at=DAY)
    billing.add_payment(alice.account, "-1.25", "correction", at=DAY + timedelta(days=1))
    items = client.get("/api/v1/payments", headers=alice.auth).json["items"]
    assert [(p["amount"], p["reference"]) for p in items] == [
        ("10.0000", "opening balance of alice"),
        ("-1.2500", "correction"),
        ("25.5000", "invoice 2025-007"),
    ]
    assert all("bob" not in p["reference"] for p in items)


def test_the_payments_page_lists_references(
    client: FlaskClient, logged_in: str, alice: User
) -> None:
    billing.add_payment(alice.account, "25.50", "invoice 2025-007", at=DAY)
    page = client.get("/payments")
    assert "invoice 2025-007" in page.text and "25.50 EUR" in page.text


@pytest.mark.parametrize("path", ["/call", "/history", "/payments", "/phonebook", "/settings"])
def test_every_page_shows_the_current_balance(
    client: FlaskClient, logged_in: str, alice: User, path: str
) -> None:
    finished_call(alice, "4940222222", DAY)  # 10 - 0.40
    assert '<strong id="balance">9.60 EUR</strong>' in client.get(path).text


def test_the_account_endpoint_reports_balance_and_numbers(client: FlaskClient, alice: User) -> None:
    finished_call(alice, "4940222222", DAY)
    account = client.get("/api/v1/account", headers=alice.auth).json
    assert (account["balance"], account["available"], account["currency"]) == (
        "9.6000",
        "9.6000",
        "EUR",
    )
    assert account["numbers"] == [{"number": "4930111111", "verified_at": None, "default": True}]
