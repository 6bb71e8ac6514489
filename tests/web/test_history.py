"""Call history with legs, times, causes and costs; CDRs; CSV export; payments; the balance."""

from __future__ import annotations

import csv
import io
import re
from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest
from flask.testing import FlaskClient
from web_helpers import User

from esl_callback.callback import billing, requests
from esl_callback.callback.requests import State
from esl_callback.models import Account, CallbackRequest, Leg, PhoneBookEntry
from esl_callback.web.history import days_words, period_days

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


def number_check(user: User, number: str, at: datetime, *, checked: bool = True) -> None:
    """A number check (verification call) of `number`, answered and keyed, or unanswered."""
    request = requests.create(
        trigger="web", method="web", account=user.account, mode="verify", source=number
    )
    CallbackRequest.update(created_at=at).where(CallbackRequest.id == request.id).execute()
    Leg.create(
        request=request.id,
        leg="a",
        uuid=f"{request.id}-a",
        number=number,
        created_at=at,
        answered_at=at + timedelta(seconds=3) if checked else None,
        ended_at=at + timedelta(seconds=20),
        billsec=17 if checked else 0,
        billed=True,
        cost=Decimal("0.02" if checked else 0),
        hangup_cause="NORMAL_CLEARING" if checked else "NO_ANSWER",
        state="hung_up",
    )
    requests.advance(request.id, State.CALLING_SOURCE)
    if checked:
        requests.advance(request.id, State.IN_IVR)
        requests.advance(request.id, State.COMPLETED)
    else:
        requests.advance(request.id, State.FAILED, failure_cause="NO_ANSWER")


def rows_of(html: str) -> list[str]:
    """The history table's rows as text, one line each."""
    rows = re.findall(r'<tr class="call[^"]*"[^>]*>(.*?)</tr>', html, re.S)
    return [" ".join(re.sub(r"<[^>]+>", " ", row).split()) for row in rows]


def test_the_history_page_is_a_table_in_the_users_time_zone_with_names_and_outcomes(
    client: FlaskClient, logged_in: str, alice: User
) -> None:
    PhoneBookEntry.create(account=alice.account, name="Mary Jones", number="4940222222")
    finished_call(alice, "4940222222", DAY)  # 09:30 UTC: 10:30 in Berlin
    finished_call(alice, "4989333333", DAY + timedelta(hours=1), busy=True)
    number_check(alice, "4930999999", DAY + timedelta(hours=2))
    client.set_cookie("tz", "Europe/Berlin")  # the browser's zone, as app.js writes it
    page = client.get("/history")
    assert page.status_code == 200
    assert rows_of(page.text) == [
        "14 Mar 2025, 12:30 Number check of +49 30 999999 Number checked \N{EN DASH} 0.02 EUR "
        "Details of the number check, 14 Mar 2025, 12:30",
        "14 Mar 2025, 11:30 +49 89 333333 Busy \N{EN DASH} 0.10 EUR Details of the call to "
        "+49 89 333333, 14 Mar 2025, 11:30 Call again +49 89 333333",
        "14 Mar 2025, 10:30 Mary Jones +49 40 222222 Connected 01:00 0.40 EUR Details of the "
        "call to Mary Jones, 14 Mar 2025, 10:30 Call again Mary Jones",
    ]
    assert "→ ?" not in page.text
    assert "Days and times in Europe/Berlin, your browser's time zone" in page.text
    text = " ".join(re.sub(r"<[^>]+>", " ", page.text).split())
    assert "2 calls, 1 connected, 1 min 00 s talked; 1 number check: 0.52 EUR in all." in text


def test_the_history_page_filters_by_period_and_outcome_with_totals_per_day(
    client: FlaskClient, logged_in: str, alice: User
) -> None:
    finished_call(alice, "4940222222", DAY)
    finished_call(alice, "4989333333", DAY + timedelta(hours=1), busy=True)
    finished_call(alice, "4989444444", DAY + timedelta(days=1))
    finished_call(alice, "4989555555", DAY + timedelta(days=40))
    number_check(alice, "4930999999", DAY + timedelta(days=1), checked=False)

    def shown(**args: str) -> list[str]:
        html = client.get("/history", query_string=args).text
        return [row.split(" ")[4] for row in rows_of(html)]

    days = {"period": "custom", "from": "2025-03-14", "to": "2025-03-15"}
    assert shown(**days) == ["Number", "+49", "+49", "+49"]
    assert shown(**days, outcome="connected") == ["+49", "+49"]
    assert shown(**days, outcome="busy") == ["+49"]
    assert shown(**days, outcome="checks") == ["Number"]
    assert shown(**{"from": "2025-04-01"}) == ["+49"]  # dates alone: those days
    page = client.get("/history", query_string={**days, "outcome": "calls"}).text
    text = " ".join(re.sub(r"<[^>]+>", " ", page).split())
    assert "The chosen days: 14 \N{EN DASH} 15 Mar 2025" in text
    assert "3 calls, 2 connected, 2 min 00 s talked: 0.90 EUR in all." in text
    assert "Per day" in text
    assert "Sat 15 Mar 2025 1 1 1 min 00 s 0.40 EUR" in text
    assert "Fri 14 Mar 2025 2 1 1 min 00 s 0.50 EUR" in text
    everything = " ".join(re.sub(r"<[^>]+>", " ", client.get("/history").text).split())
    assert "April 2025 1 1 1 min 00 s 0.40 EUR" in everything  # all time: per month
    assert "March 2025 3 + 1 check 2 2 min 00 s 0.90 EUR" in everything
    assert shown(period="today") == []
    assert "No calls match the filter." in client.get("/history?period=today").text


def test_the_named_periods_end_today_in_the_users_time_zone() -> None:
    today = date(2026, 3, 10)
    assert period_days("today", today, None, None) == (today, today)
    assert period_days("7d", today, None, None) == (date(2026, 3, 4), today)
    assert period_days("month", today, None, None) == (date(2026, 3, 1), today)
    assert period_days("last_month", today, None, None) == (date(2026, 2, 1), date(2026, 2, 28))
    assert period_days("year", today, None, None) == (date(2026, 1, 1), today)
    assert period_days("all", today, date(2026, 1, 5), None) == (None, None)
    assert days_words(date(2026, 3, 1), date(2026, 3, 10)) == "1 \N{EN DASH} 10 Mar 2026"
    assert days_words(date(2025, 12, 30), date(2026, 1, 2)) == "30 Dec 2025 \N{EN DASH} 2 Jan 2026"


def test_the_history_csv_has_one_line_per_call_in_the_users_time_zone(
    client: FlaskClient, logged_in: str, alice: User
) -> None:
    PhoneBookEntry.create(account=alice.account, name="Mary Jones", number="4940222222")
    finished_call(alice, "4940222222", DAY)
    finished_call(alice, "4989333333", DAY + timedelta(hours=1), busy=True)
    number_check(alice, "4930999999", DAY + timedelta(hours=2))
    client.post(
        "/settings/time-zone", data={"time_zone": "America/New_York", "csrf_token": logged_in}
    )
    page = client.get("/history?number=4989").text
    assert 'href="/history/export.csv?number=4989"' in page
    assert "Days and times in America/New_York, as set in" in page
    exported = client.get("/history/export.csv")
    assert exported.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert [
        (r["date"], r["time"], r["time_zone"], r["kind"], r["contact"], r["number"]) for r in rows
    ] == [
        ("2025-03-14", "07:30:00", "America/New_York", "number check", "", "+4930999999"),
        ("2025-03-14", "06:30:00", "America/New_York", "call", "", "+4989333333"),
        ("2025-03-14", "05:30:00", "America/New_York", "call", "Mary Jones", "+4940222222"),
    ]
    assert [(r["outcome"], r["talk_seconds"], r["cost"], r["currency"]) for r in rows] == [
        ("Number checked", "0", "0.02", "EUR"),
        ("Busy", "0", "0.10", "EUR"),
        ("Connected", "60", "0.40", "EUR"),
    ]
    busy = client.get("/history/export.csv?outcome=busy").text
    assert len(busy.splitlines()) == 2 and "+4989333333" in busy


def test_a_calls_detail_page_shows_both_legs_to_the_second(
    client: FlaskClient, logged_in: str, alice: User
) -> None:
    request = finished_call(alice, "4940222222", DAY)
    client.set_cookie("tz", "Europe/Berlin")
    page = " ".join(re.sub(r"<[^>]+>", " ", client.get(f"/requests/{request.id}").text).split())
    assert "Call to +49 40 222222" in page
    assert "Your phone first, then the other · placed here · 14 Mar 2025, 10:30" in page
    assert (
        "Your phone +49 30 111111 hung up called at 10:30:00 · answered at 10:30:05 · ended at "
        "10:31:15 · 01:10 on the line · 0.10 EUR charged" in page
    )
    assert (
        "Number called +49 40 222222 hung up called at 10:30:05 · answered at 10:30:15 · ended "
        "at 10:31:15 · 01:00 on the line · 0.30 EUR charged" in page
    )


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


def test_the_time_zone_is_chosen_in_settings_else_the_browsers_else_utc(
    client: FlaskClient, logged_in: str, alice: User
) -> None:
    finished_call(alice, "4940222222", DAY)

    def first_time() -> str:
        return rows_of(client.get("/history").text)[0][:18]

    assert first_time() == "14 Mar 2025, 09:30"  # UTC: the browser did not say
    client.set_cookie("tz", "Not/AZone")
    assert first_time() == "14 Mar 2025, 09:30"
    client.set_cookie("tz", "Asia/Tokyo")
    assert first_time() == "14 Mar 2025, 18:30"
    settings = client.get("/settings").text
    assert '<option value="" selected>Your browser\'s time zone (Asia/Tokyo)</option>' in settings
    refused = client.post(
        "/settings/time-zone", data={"time_zone": "Mars/Olympus", "csrf_token": logged_in}
    )
    assert refused.status_code == 422
    assert 'id="time_zone-error">Choose a time zone from the list.' in refused.text
    chosen = client.post(
        "/settings/time-zone", data={"time_zone": "America/Sao_Paulo", "csrf_token": logged_in}
    )
    assert chosen.headers["Location"].endswith("/settings#time-zone")
    assert first_time() == "14 Mar 2025, 06:30"
    assert (
        '<option value="America/Sao_Paulo" selected>America/Sao Paulo</option>'
        in client.get("/settings").text
    )
    client.post("/settings/time-zone", data={"time_zone": "", "csrf_token": logged_in})
    assert first_time() == "14 Mar 2025, 18:30"  # the browser's again
