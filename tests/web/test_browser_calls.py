"""The portal before and after a call, in a real browser at a desktop's and a phone's size:
the price as the number is typed, what costs money, the rates page, the low-balance alert, the
call history and a call's detail page, in the account's time zone.

The portals are those of test_browser (portal_process.py seeds them); screenshots land in
test-artifacts/.
"""

from __future__ import annotations

import re

import pytest
import test_browser
from playwright.sync_api import Browser, Page, expect
from test_browser import SIZES, check_page_is_usable, screenshot, signed_in

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
        page.get_by_role("navigation", name="Main").get_by_role("link", name="Rates").click()
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
