"""Self-service, the phone book's several numbers and import preview, and errors as sentences at
their fields, in Debian's chromium at a desktop's size (1280x800) and a phone's (390x844), against
running portals (see test_browser). Screenshots land in test-artifacts/."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import test_browser
from playwright.sync_api import Browser, Page, expect
from test_browser import (
    ANSWERS,
    CALL_SECONDS,
    PASSWORD,
    SIZES,
    SOURCE,
    check_page_is_usable,
    screenshot,
    signed_in,
)

# The running portals and the browser of test_browser, started again for this module.
browser = test_browser.browser
portal = test_browser.portal
switched_portal = test_browser.switched_portal

pytestmark = pytest.mark.browser

NEW_PASSWORD = "a brand new passphrase"


def focused_id(page: Page) -> str:
    return page.evaluate("document.activeElement && document.activeElement.id")


def in_first_screen(page: Page, selector: str) -> bool:
    """True when the element's top is within the window as the page opens."""
    box = page.locator(selector).first.bounding_box()
    return box is not None and box["y"] < (page.viewport_size or {"height": 0})["height"]


def change_password(page: Page, current: str, new: str) -> None:
    page.get_by_label("Current password").fill(current)
    page.get_by_label("New password", exact=True).fill(new)
    page.get_by_label("New password again").fill(new)
    page.get_by_role("button", name="Change the password").click()


@pytest.mark.parametrize("size", SIZES)
def test_settings_change_the_password_make_a_pin_end_other_sessions_and_list_tokens(
    browser: Browser, portal: str, size: str
) -> None:
    with signed_in(browser, portal, "bob", SIZES[size]) as page:
        with signed_in(browser, portal, "bob", SIZES[size]) as elsewhere:
            page.goto(f"{portal}/settings")
            change_password(page, "not my password", NEW_PASSWORD)
            error = page.locator("#current_password-error")
            expect(error).to_have_text("That is not your current password.")
            assert focused_id(page) == "current_password"
            assert in_first_screen(page, ".error-summary")
            check_page_is_usable(page)
            screenshot(page, f"settings-password-error-{size}")

            change_password(page, PASSWORD, NEW_PASSWORD)
            expect(page.get_by_text("Your password has been changed.")).to_be_visible()
            elsewhere.goto(f"{portal}/settings")
            expect(elsewhere).to_have_url(re.compile(r"/login\?next=/settings"))
            change_password(page, NEW_PASSWORD, PASSWORD)  # back, for the other tests

        page.get_by_label("Your password", exact=True).fill(PASSWORD)
        page.get_by_role("button", name=re.compile(r"Make a (new )?PIN")).click()
        pin = page.locator("#new-pin")
        expect(pin).to_have_text(re.compile(r"^\d{8}$"))
        expect(page.get_by_text("Your account has a PIN.")).to_be_visible()
        check_page_is_usable(page)
        screenshot(page, f"settings-new-pin-{size}")

        page.get_by_label("Name of the new token").fill(f"Laptop {size}")
        page.get_by_role("button", name="Create a token").click()
        expect(page.locator("#new-token")).to_be_visible()
        row = page.get_by_role("row", name=re.compile(f"Laptop {size}"))
        expect(row).to_contain_text("never")
        check_page_is_usable(page)
        screenshot(page, f"settings-tokens-{size}")
        row.get_by_role("button", name=f"Revoke Laptop {size}").click()
        expect(page.get_by_text(f"The token Laptop {size} has been revoked")).to_be_visible()

        with signed_in(browser, portal, "bob", SIZES[size]) as other:
            page.get_by_role("button", name="Log out other sessions").click()
            expect(page.get_by_text("logged out everywhere else")).to_be_visible()
            other.goto(f"{portal}/settings")
            expect(other).to_have_url(re.compile(r"/login"))
        page.goto(f"{portal}/settings")
        expect(page).to_have_url(f"{portal}/settings")  # this one goes on


@pytest.fixture
def csv_file(tmp_path) -> Iterator:
    def write(name: str, text: str):
        path = tmp_path / name
        path.write_text(text)
        return str(path)

    yield write


@pytest.mark.parametrize("size", SIZES)
def test_phone_book_numbers_and_an_import_previewed_with_errors_at_the_top(
    browser: Browser, portal: str, size: str, csv_file
) -> None:
    user = "alice" if size == "desktop" else "carol"
    with signed_in(browser, portal, user, SIZES[size]) as page:
        page.goto(f"{portal}/phonebook")
        page.get_by_label("Name", exact=True).fill(f"Nina {size}")
        page.get_by_label("Number", exact=True).fill("+1 555 000 3001")
        page.get_by_label("What number 2 is").select_option("home")
        page.get_by_label("Number 2 (optional)").fill("+1 555 000 30x2")
        page.get_by_role("button", name="Add", exact=True).click()
        expect(page.locator("#more_number_1-error")).to_contain_text(
            "That number has letters in it"
        )
        assert focused_id(page) == "more_number_1"
        assert in_first_screen(page, ".error-summary")
        screenshot(page, f"phonebook-number-error-{size}")
        page.get_by_label("Number 2 (optional)").fill("+1 555 000 3002")
        page.get_by_role("button", name="Add", exact=True).click()
        entry = page.locator(".entry", has_text=f"Nina {size}")
        expect(entry.locator(".entry-numbers li")).to_have_count(2)
        expect(entry).to_contain_text("home")
        check_page_is_usable(page)
        screenshot(page, f"phonebook-numbers-{size}")

        bad = "name,number\nGood,15550003003\n" + "".join(
            f"Person {n},1555000{n:04d}\n" for n in range(4000, 4030)
        )
        bad += "Wrong,call me\n"
        page.locator("#file").set_input_files(csv_file("bad.csv", bad))
        page.get_by_role("button", name="Preview the import").click()
        summary = page.locator(".error-summary")
        expect(summary).to_contain_text("Line 33: That number has letters in it")
        assert in_first_screen(page, ".error-summary")
        expect(page.get_by_role("button", name="Import")).to_have_count(0)
        check_page_is_usable(page)
        screenshot(page, f"phonebook-import-errors-{size}")

        good = f"name,number,notes\nNina {size} Smith,15550003001,moved\nOscar,15550003009,\n"
        page.goto(f"{portal}/phonebook")
        page.locator("#file").set_input_files(csv_file("good.csv", good))
        page.get_by_role("button", name="Preview the import").click()
        expect(page.locator("#import-summary")).to_have_text("1 to add, 1 to update.")
        check_page_is_usable(page)
        screenshot(page, f"phonebook-import-preview-{size}")
        page.get_by_label(f"Overwrite Nina {size}").check()
        page.get_by_role("button", name="Import").click()
        done = "Imported: 1 added, 1 updated, 0 left as they were."
        expect(page.get_by_text(done)).to_be_visible()
        expect(page.locator(".entry .name", has_text=f"Nina {size} Smith")).to_be_visible()


@pytest.mark.parametrize("size", SIZES)
def test_one_click_calls_an_entrys_second_number(
    browser: Browser, switched_portal: str, size: str
) -> None:
    # alice's phone answers carol's call on the phone-sized run: each user adds Mary once.
    user, second = ("alice", ANSWERS) if size == "desktop" else ("carol", SOURCE)
    with signed_in(browser, switched_portal, user, SIZES[size]) as page:
        page.goto(f"{switched_portal}/phonebook")
        page.get_by_label("Name", exact=True).fill("Mary")
        page.get_by_label("Number", exact=True).fill("15550002999")
        page.get_by_label("What number 2 is").select_option("work")
        page.get_by_label("Number 2 (optional)").fill(second)
        page.get_by_role("button", name="Add", exact=True).click()
        expect(page.get_by_text("Added Mary.")).to_be_visible()

        page.get_by_role("button", name=f"Call Mary work {second}").click()

        expect(page).to_have_url(re.compile(r"/requests/\d+$"))
        expect(page.locator("#live .summary")).to_contain_text("Connected", timeout=CALL_SECONDS)
        screenshot(page, f"phonebook-one-click-call-{size}")
