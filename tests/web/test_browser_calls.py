"""The portal before and after a call, in a real browser at a desktop's and a phone's size:
the price as the number is typed, what costs money, the rates page, the low-balance alert, the
call history and a call's detail page, in the account's time zone.

The portals are those of test_browser (portal_process.py seeds them); screenshots land in
test-artifacts/.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import test_browser
from playwright.sync_api import Browser, Page, expect
from test_browser import (
    SIZES,
    check_page_is_usable,
    open_menu,
    screenshot,
    signed_in,
)

pytestmark = pytest.mark.browser

# test_browser's fixtures: its browser, and its portals (started again for this module).
browser = test_browser.browser
portal = test_browser.portal
switched_portal = test_browser.switched_portal


def type_number(page: Page, number: str) -> None:
    field = page.get_by_label("Number to call")
    field.fill("")
    field.press_sequentially(number, delay=20)


@pytest.mark.parametrize("size", SIZES)
def test_the_call_form_prices_the_number_as_it_is_typed_and_says_what_costs_money(
    browser: Browser, portal: str, size: str
) -> None:
    with signed_in(browser, portal, "alice", SIZES[size]) as page:
        page.goto(f"{portal}/call")
        costs = page.locator(".costs")
        expect(costs).to_contain_text(
            "The call to your own phone, from the moment you answer it: even if the other "
            "number is busy or does not answer."
        )
        quote = page.locator("#quote")
        type_number(page, "+1 555 000 2001")
        expect(quote).to_contain_text(
            "0.24 EUR a minute in all: 0.12 EUR for North America and 0.12 EUR for your phone; "
            "billed per second."
        )
        expect(quote).to_contain_text(re.compile(r"Your balance pays for a call of up to \d+ min"))
        expect(page.get_by_label("Number to call")).to_have_attribute(
            "aria-describedby", re.compile(r"\bquote\b")
        )
        check_page_is_usable(page)
        screenshot(page, f"call-price-{size}")

        type_number(page, "+44 20 7946 0000")
        expect(quote).to_contain_text(
            "0.17 EUR a minute in all: 0.05 EUR for United Kingdom and 0.12 EUR for your phone, "
            "plus 0.10 EUR to connect; billed per started minute (your phone's call per second)."
        )
        type_number(page, "+33 1 23 45 67 89")
        expect(quote).to_have_text(
            "There is no price for calls to this number, so it cannot be called."
        )
        type_number(page, "+1 900 555 0100")
        expect(quote).to_have_text("Calls to this number are not allowed.")
        check_page_is_usable(page)
        screenshot(page, f"call-refused-{size}")
        page.get_by_role("button", name="Call now").click()  # refused again by the server
        expect(page.locator("#destination-error")).to_have_text(
            "Calls to this number are not allowed."
        )
        expect(page.get_by_label("Number to call")).to_have_value("+1 900 555 0100")

        page.goto(f"{portal}/settings")  # adding a number: its check is a call, charged
        expect(page.get_by_text("The check is a call like any other")).to_be_visible()
        expect(page.get_by_label("Number to add")).to_have_attribute(
            "aria-describedby", re.compile(r"\bcheck-cost\b")
        )


@pytest.mark.parametrize("size", SIZES)
def test_the_rates_page_finds_a_rate_by_number_first_digits_or_country(
    browser: Browser, portal: str, size: str
) -> None:
    with signed_in(browser, portal, "alice", SIZES[size]) as page:
        open_menu(page).get_by_role("link", name="Rates").click()
        expect(page.get_by_role("heading", name="Rates", exact=True)).to_be_visible()
        rows = page.locator("table.rates tbody tr")
        expect(rows).to_have_count(2)
        search = page.get_by_label("Number or country")
        search.fill("+1 555 000 2001")
        page.get_by_role("button", name="Search").click()
        expect(page.get_by_role("status")).to_have_text(
            "Calls to +1 555-000-2001 cost 0.12 EUR a minute (North America); billed per second."
        )
        search = page.get_by_label("Number or country")
        search.fill("kingdom")
        page.get_by_role("button", name="Search").click()
        expect(rows).to_have_count(1)
        expect(rows.first).to_contain_text("United Kingdom")
        expect(rows.first).to_contain_text("+44")
        expect(rows.first).to_contain_text("0.10 EUR")
        expect(rows.first).to_contain_text("per started minute")
        check_page_is_usable(page)
        screenshot(page, f"rates-{size}")
        page.get_by_label("Number or country").fill("+1 900 555 0100")
        page.get_by_role("button", name="Search").click()
        expect(page.get_by_role("status")).to_have_text("Calls to +1 900-555-0100 are not allowed.")


def history_rows(page: Page) -> list[str]:
    return [
        " ".join(text.split()) for text in page.locator("table.calls tbody tr").all_inner_texts()
    ]


@pytest.mark.parametrize("size", SIZES)
def test_the_history_is_a_table_in_the_browsers_time_zone_with_filters_totals_and_csv(
    browser: Browser, portal: str, size: str
) -> None:
    with signed_in(browser, portal, "dave", SIZES[size], "Asia/Tokyo") as page:
        open_menu(page).get_by_role("link", name="History").click()
        expect(
            page.get_by_text("Days and times in Asia/Tokyo, your browser's time zone")
        ).to_be_visible()
        calls = page.locator("table.calls tbody tr")
        expect(calls).to_have_count(4)
        first = calls.first  # 2 Apr 22:30 UTC is 3 Apr 07:30 in Tokyo
        expect(first.locator('[data-label="Date and time"]')).to_have_text("3 Apr 2025, 07:30")
        expect(first.locator('[data-label="Call"]')).to_have_text("Mary Jones +1 555-000-2001")
        expect(first.locator('[data-label="Outcome"]')).to_have_text("Connected")
        expect(first.locator('[data-label="Talked"]')).to_have_text("00:30")
        expect(calls.nth(1).locator('[data-label="Call"]')).to_have_text(
            "Number check of +1 555-000-1099"
        )
        expect(calls.nth(2).locator('[data-label="Outcome"]')).to_have_text("Busy")
        totals = page.locator("section.totals")
        expect(totals.locator(".totals-line")).to_have_text(
            "3 calls, 2 connected, 1 min 53 s talked; 1 number check: 0.50 EUR in all."
        )
        expect(totals.locator("table.per-period tbody tr")).to_have_count(2)
        check_page_is_usable(page)
        screenshot(page, f"history-{size}")

        page.get_by_label("From", exact=True).fill("2025-03-14")  # the picker: the period follows
        expect(page.get_by_label("Period")).to_have_value("custom")
        page.get_by_label("To", exact=True).fill("2025-03-15")
        page.get_by_label("Outcome").select_option(label="Connected")
        page.get_by_role("button", name="Show").click()
        expect(calls).to_have_count(1)
        expect(calls.first.locator('[data-label="Date and time"]')).to_have_text(
            "14 Mar 2025, 18:30"
        )
        expect(
            page.get_by_role("heading", name="The chosen days: 14 \N{EN DASH} 15 Mar 2025")
        ).to_be_visible()
        expect(page.get_by_label("From", exact=True)).to_have_value("2025-03-14")
        check_page_is_usable(page)
        screenshot(page, f"history-filtered-{size}")
        with page.expect_download() as download:
            page.get_by_role("link", name="Download these calls as CSV").click()
        exported = Path(download.value.path()).read_text().splitlines()
        assert exported[0].startswith("date,time,time_zone,kind,contact,number")
        assert exported[1:] == [
            "2025-03-14,18:30:00,Asia/Tokyo,call,Mary Jones,+15550002001,+15550001004,"
            f"Connected,83,0.34,EUR,{exported[1].rsplit(',', 1)[1]}"
        ]

        page.get_by_label("Period").select_option(label="All time")  # clears the days
        expect(page.get_by_label("From", exact=True)).to_have_value("")
        page.get_by_label("Outcome").select_option(label="Number checks")
        page.get_by_role("button", name="Show").click()
        expect(calls).to_have_count(1)
        expect(page.get_by_text("→ ?")).to_have_count(0)


@pytest.mark.parametrize("size", SIZES)
def test_a_calls_detail_page_shows_both_legs_in_the_chosen_time_zone(
    browser: Browser, portal: str, size: str
) -> None:
    with signed_in(browser, portal, "dave", SIZES[size], "Asia/Tokyo") as page:
        page.goto(f"{portal}/settings")
        page.get_by_label("Show times in").select_option("Europe/Berlin")
        page.get_by_role("button", name="Save the time zone").click()
        expect(page.get_by_text("Times are now shown in Europe/Berlin.")).to_be_visible()
        page.goto(f"{portal}/history")
        expect(
            page.get_by_text("Days and times in Europe/Berlin, as set in Settings")
        ).to_be_visible()
        busy = page.locator("table.calls tbody tr").nth(2)
        expect(busy.locator('[data-label="Date and time"]')).to_have_text("14 Mar 2025, 11:45")
        busy.get_by_role("link", name=re.compile("^Details")).click()
        expect(page.get_by_role("heading", name="Call to +1 555-000-2004")).to_be_visible()
        legs = page.locator("#live .leg")
        expect(legs).to_have_count(2)
        expect(legs.first).to_contain_text("Your phone")
        expect(legs.first).to_contain_text(
            "called at 11:45:00 · answered at 11:45:02 · ended at 11:45:08 · 00:06 on the line · "
            "0.01 EUR charged"
        )
        expect(legs.nth(1)).to_contain_text("busy")
        expect(legs.nth(1)).to_contain_text(
            "called at 11:45:04 · ended at 11:45:06 · nothing charged"
        )
        expect(page.locator("#live .summary")).to_have_text("The line of +1 555-000-2004 was busy")
        check_page_is_usable(page)
        screenshot(page, f"call-detail-{size}")
        page.goto(f"{portal}/settings")  # back to the browser's, for the other size
        page.get_by_label("Show times in").select_option("")
        page.get_by_role("button", name="Save the time zone").click()
        expect(
            page.get_by_text("Times are now shown in your browser's time zone (Asia/Tokyo).")
        ).to_be_visible()


@pytest.mark.parametrize("size", SIZES)
def test_a_low_balance_alert_is_set_in_settings_and_said_on_the_home_page(
    browser: Browser, portal: str, size: str
) -> None:
    with signed_in(browser, portal, "bob", SIZES[size]) as page:
        expect(page.get_by_role("link", name="Get an e-mail or an SMS")).to_be_visible()
        page.get_by_role("link", name="Get an e-mail or an SMS").click()
        expect(page).to_have_url(f"{portal}/settings#alert")
        amount = page.get_by_label("Alert me when my balance drops below (EUR)")
        amount.fill("two euros")
        page.get_by_label("By e-mail").check()
        page.get_by_label("E-mail address").fill("bob@example.org")
        page.get_by_role("button", name="Save the alert").click()
        expect(page.locator("#alert_below-error")).to_have_text(
            "Write the amount as a number, such as 5 or 2.50."
        )
        expect(page.get_by_label("E-mail address")).to_have_value("bob@example.org")
        page.get_by_label("Alert me when my balance drops below (EUR)").fill("2,5")
        page.get_by_role("button", name="Save the alert").click()
        expect(page.get_by_role("status")).to_have_text(
            "We will e-mail bob@example.org when a call takes your balance below 2.50 EUR."
        )
        expect(page.get_by_label("Alert me when my balance drops below (EUR)")).to_have_value(
            "2.50"
        )
        expect(page.get_by_label("By SMS to +1 555-000-1002")).to_be_visible()
        check_page_is_usable(page)
        page.locator("#alert").scroll_into_view_if_needed()
        screenshot(page, f"settings-alert-{size}")
        open_menu(page).get_by_role("link", name="Home", exact=True).click()
        expect(page.locator(".balance-card")).to_contain_text(
            "We e-mail you when a call takes it below 2.50 EUR (change)."
        )
        page.goto(f"{portal}/settings#alert")  # off again, for the other size
        page.get_by_label("Alert me when my balance drops below (EUR)").fill("")
        page.get_by_role("button", name="Save the alert").click()
        expect(page.get_by_role("status")).to_have_text("Low-balance alerts are off.")
