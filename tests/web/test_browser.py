"""The portal in a real browser: Playwright driving Debian's chromium against running portals.

One portal runs without a switch (pages, phone book, logout); another runs with the FreeSWITCH
simulator and the controller, so that callbacks placed in the browser really ring its virtual
phones and the status page goes live; a third is the real `esl-callback web`, the portal run
alone, placing and cancelling calls through the second one's serve. Pages are used at a phone's
size (390x844). Screenshots of the main pages land in test-artifacts/.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Locator, Page, expect, sync_playwright

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
PORTAL = Path(__file__).with_name("portal_process.py")
PASSWORD = "portal password"
SOURCE, ANSWERS, BUSY, SILENT = "15550001001", "15550002001", "15550002004", "15550002003"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}
SIZES = {"desktop": DESKTOP, "phone": PHONE}
CALL_SECONDS = 45_000  # ms: a whole callback at real speed, with room to spare

# Computed in the page: text whose contrast with its background is below WCAG AA.
LOW_CONTRAST = """() => {
  const rgba = (text) => {
    const p = text.match(/rgba?\\(([^)]+)\\)/)[1].split(",").map(Number);
    return {r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1};
  };
  const luminance = (c) => {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(c.r) + 0.7152 * f(c.g) + 0.0722 * f(c.b);
  };
  const background = (el) => {
    for (; el; el = el.parentElement) {
      const c = rgba(getComputedStyle(el).backgroundColor);
      if (c.a > 0.5) return c;
    }
    return {r: 255, g: 255, b: 255, a: 1};
  };
  const low = [];
  for (const el of document.querySelectorAll("body *")) {
    const ownText = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
    const box = el.getBoundingClientRect();
    const style = getComputedStyle(el);
    if (!ownText || box.width <= 1 || box.height <= 1 || style.visibility === "hidden") continue;
    const a = luminance(rgba(style.color)), b = luminance(background(el));
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    const size = parseFloat(style.fontSize), bold = Number(style.fontWeight) >= 700;
    const needed = size >= 24 || (size >= 18.66 && bold) ? 3 : 4.5;
    const text = el.textContent.trim().slice(0, 40);
    if (ratio < needed) low.push(`${el.tagName} "${text}" ${ratio.toFixed(2)}`);
  }
  return low;
}"""

UNLABELLED = """() => [...document.querySelectorAll("input:not([type=hidden]), select, textarea")]
  .filter((e) => !(e.labels && e.labels.length) && !e.getAttribute("aria-label"))
  .map((e) => e.name)"""

# Records every status the live box shows: "<summary>|a:<status>,b:<status>".
RECORD_STATUS = """() => {
  window.seenStatus = [];
  const box = document.getElementById("live");
  const record = () => {
    const legs = [...box.querySelectorAll(".leg")]
      .map((leg) => `${leg.dataset.leg}:${leg.dataset.status}`);
    const line = `${box.querySelector(".summary").textContent.trim()}|${legs.join(",")}`;
    if (window.seenStatus[window.seenStatus.length - 1] !== line) window.seenStatus.push(line);
  };
  record();
  new MutationObserver(record).observe(box, {childList: true, subtree: true});
}"""


@contextmanager
def running(command: list[str], log: Path, piped: bool = True) -> Iterator[subprocess.Popen]:
    """A process started for a test, terminated afterwards: its stderr in `log`, its stdout
    piped to the test (or in `log` too)."""
    with log.open("w") as sink:
        stdout = subprocess.PIPE if piped else sink
        process = subprocess.Popen(command, stdout=stdout, stderr=sink, text=True)
    try:
        yield process
    finally:
        process.terminate()
        process.wait(timeout=10)


def read_url(process: subprocess.Popen, log: Path, what: str) -> str:
    """The next URL the process prints, or the test fails with its log."""
    url = process.stdout.readline().strip()
    if not url.startswith("http://"):
        pytest.fail(f"{what} did not start: {url!r}\n{log.read_text()[-3000:]}")
    return url


def start_portal(directory: Path, *options: str) -> Iterator[str]:
    log = directory / "portal.stderr"
    with running([sys.executable, str(PORTAL), str(directory), *options], log) as process:
        yield read_url(process, log, "the portal")


def wait_serving(url: str, process: subprocess.Popen, log: Path) -> None:
    """Wait until `url` answers (its process may still be starting up)."""
    deadline = time.monotonic() + 20
    while True:
        if process.poll() is not None:
            pytest.fail(f"{url} exited: {log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/login", timeout=2):
                return
        except OSError:
            if time.monotonic() > deadline:
                pytest.fail(f"{url} did not answer: {log.read_text()[-3000:]}")
            time.sleep(0.1)


@pytest.fixture(scope="module")
def portal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A portal without a switch."""
    yield from start_portal(tmp_path_factory.mktemp("portal"))


@pytest.fixture(scope="module")
def switched_portal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A portal with the simulator and the controller: callbacks really ring."""
    yield from start_portal(tmp_path_factory.mktemp("switched-portal"), "--switch")


@pytest.fixture(scope="module")
def alone_portal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The real `esl-callback web` (the portal run alone), beside a switched portal's serve:
    its calls are placed, followed and cancelled through serve (`web.controller_url`)."""
    directory = tmp_path_factory.mktemp("alone-portal")
    config = directory / "alone.yaml"
    serve_log = directory / "portal.stderr"
    options = [str(directory), "--switch", "--alone-config", str(config)]
    with running([sys.executable, str(PORTAL), *options], serve_log) as serve:
        read_url(serve, serve_log, "serve")
        url = read_url(serve, serve_log, "serve")
        log = directory / "web.log"
        command = [sys.executable, "-m", "esl_callback", "web", "-c", str(config)]
        with running(command, log, piped=False) as alone:
            wait_serving(url, alone, log)
            yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport=PHONE, device_scale_factor=1)
    page = context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())
    yield page
    context.close()


def screenshot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def log_in(page: Page, url: str, username: str = "alice", next_path: str = "") -> None:
    page.goto(f"{url}{next_path or '/login'}")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()


@contextmanager
def signed_in(
    browser: Browser, url: str, username: str, size: dict, zone: str | None = None
) -> Iterator[Page]:
    """A page of a fresh browser session of `username`, at `size` (in time zone `zone`, else
    the machine's), on the home page."""
    context = browser.new_context(viewport=size, device_scale_factor=1, timezone_id=zone)
    page = context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())
    try:
        log_in(page, url, username)
        expect(page).to_have_url(f"{url}/")
        yield page
    finally:
        context.close()


def open_menu(page: Page) -> Locator:
    """The main navigation, its menu opened first where a narrow window hides it."""
    button = page.get_by_role("button", name="Menu")
    if button.is_visible():
        button.click()
        expect(button).to_have_attribute("aria-expanded", "true")
    return page.get_by_role("navigation", name="Main")


def check_page_is_usable(page: Page) -> None:
    """Fits the window's width, every control has a label, all text has enough contrast."""
    width = page.evaluate("document.documentElement.scrollWidth")
    viewport = page.viewport_size or PHONE
    assert width <= viewport["width"], f"{page.url} scrolls sideways ({width}px)"
    assert page.evaluate(UNLABELLED) == []
    assert page.evaluate(LOW_CONTRAST) == []


def test_login_refuses_a_wrong_password_then_lets_the_user_in(page: Page, portal: str) -> None:
    page.goto(f"{portal}/history")
    expect(page).to_have_url(re.compile(r"/login\?next=/history"))
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_text("The username or password is wrong")).to_be_visible()
    check_page_is_usable(page)
    screenshot(page, "login-error")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(f"{portal}/history")
    expect(page.locator("#balance")).to_have_text("10.00 EUR")


def test_phone_book_add_edit_search_delete_and_call_from_an_entry(page: Page, portal: str) -> None:
    log_in(page, portal, next_path="/phonebook")
    expect(page.get_by_text("Your phone book is empty.")).to_be_visible()
    page.get_by_label("Name", exact=True).fill("Bob Builder")
    page.get_by_label("Number", exact=True).fill("+1 555 000-2001")
    page.get_by_role("button", name="Add", exact=True).click()
    expect(page.get_by_text("Added Bob Builder.")).to_be_visible()
    page.get_by_label("Name", exact=True).fill("Carol")
    page.get_by_label("Number", exact=True).fill("call me")
    page.get_by_role("button", name="Add", exact=True).click()
    expect(page.locator("#number-error")).to_contain_text("That number has letters in it")
    expect(page.locator("#number")).to_be_focused()
    page.get_by_label("Number", exact=True).fill("15550002004")
    page.get_by_role("button", name="Add", exact=True).click()
    check_page_is_usable(page)
    screenshot(page, "phonebook")

    page.get_by_role("link", name="Edit Bob Builder").click()
    page.get_by_label("Name", exact=True).fill("Robert Builder")
    check_page_is_usable(page)
    screenshot(page, "phonebook-edit")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Saved Robert Builder.")).to_be_visible()

    page.get_by_label("Search by name or number").fill("robert")
    page.get_by_role("button", name="Search").click()
    expect(page.locator(".entry .name")).to_have_text(["Robert Builder"])

    expect(
        page.get_by_role("button", name="Call Robert Builder mobile 15550002001")
    ).to_be_visible()
    page.goto(f"{portal}/call?to=15550002001")
    expect(page.get_by_label("Number to call")).to_have_value("15550002001")
    check_page_is_usable(page)
    screenshot(page, "call")

    page.goto(f"{portal}/phonebook")
    page.get_by_role("button", name="Delete Carol").click()
    expect(page.get_by_text("Deleted Carol.")).to_be_visible()
    expect(page.locator(".entry .name")).to_have_text(["Robert Builder"])


def test_payments_settings_and_logout(page: Page, portal: str) -> None:
    log_in(page, portal, username="bob", next_path="/payments")
    expect(page.get_by_role("cell", name="voucher BOB-2025")).to_be_visible()
    expect(page.locator("#balance")).to_have_text("5.00 EUR")
    check_page_is_usable(page)
    screenshot(page, "payments")

    open_menu(page).get_by_role("link", name="Settings").click()
    expect(page.get_by_label("Default callback number")).to_have_value("15550001002")
    check_page_is_usable(page)
    screenshot(page, "settings")

    open_menu(page)
    page.get_by_role("button", name="Log out bob").click()
    expect(page.get_by_text("You have been logged out.")).to_be_visible()
    screenshot(page, "logged-out")
    page.goto(f"{portal}/payments")
    expect(page).to_have_url(re.compile(r"/login\?next=/payments"))


def test_history_page_is_usable_when_empty(page: Page, portal: str) -> None:
    log_in(page, portal, next_path="/history")
    expect(page.get_by_text("No calls.")).to_be_visible()
    check_page_is_usable(page)


# -- with the switch ------------------------------------------------------------------------


@pytest.mark.parametrize("size", SIZES)
def test_the_home_page_has_the_balance_calls_favourites_and_numbers_to_dial(
    browser: Browser, switched_portal: str, size: str
) -> None:
    with signed_in(browser, switched_portal, "carol", SIZES[size]) as page:
        expect(page.locator(".big-balance")).to_have_text("0.69 EUR")
        expect(page.get_by_role("status")).to_contain_text("Your balance is low")
        expect(page.get_by_role("link", name="Top up")).to_have_attribute("href", "/payments")
        recent = page.get_by_role("region", name="Recent calls")
        expect(recent.locator(".entry")).to_have_count(2)
        expect(recent.locator(".entry").first).to_contain_text("Busy")
        expect(recent.locator(".entry").nth(1)).to_contain_text("Mary Jones")
        expect(recent.locator(".entry").nth(1)).to_contain_text("Connected · 01:23")
        favourites = page.get_by_role("region", name="Favourites")
        expect(favourites.locator(".name")).to_have_text(["Grandpa Joe", "Mary Jones"])
        dial = page.get_by_role("region", name="Get a callback from your phone")
        expect(dial.get_by_role("link", name="+1 555-000-9001")).to_have_attribute(
            "href", "tel:+15550009001"
        )
        expect(dial).to_contain_text("ask for your PIN")
        expect(dial.get_by_role("link", name="+1 555-000-9999")).to_have_attribute(
            "href", "sms:+15550009999"
        )
        expect(dial.get_by_role("cell", name="BAL", exact=True)).to_be_visible()
        check_page_is_usable(page)
        screenshot(page, f"home-{size}")
        if size == "phone":  # one click on a favourite places the call
            favourites.get_by_role("button", name="Call Mary Jones").click()
            expect(page).to_have_url(re.compile(r"/requests/\d+$"))
            expect(page.locator("#live .summary")).to_contain_text(
                "Connected", timeout=CALL_SECONDS
            )
            expect(page.locator("#live .summary")).to_have_text(
                "Your call with Mary Jones ended", timeout=CALL_SECONDS
            )


def place_call(page: Page, url: str, destination: str, mode: str) -> None:
    page.goto(f"{url}/call")
    page.get_by_label("Number to call").fill(destination)
    page.get_by_label(mode).check()
    page.get_by_role("button", name="Call now").click()
    expect(page).to_have_url(re.compile(r"/requests/\d+$"))
    page.evaluate(RECORD_STATUS)


def seen_in_order(page: Page, *patterns: str) -> list[str]:
    """The statuses the page showed; fails unless `patterns` matched them in this order."""
    seen = page.evaluate("window.seenStatus")
    position = 0
    for pattern in patterns:
        while position < len(seen) and not re.search(pattern, seen[position]):
            position += 1
        assert position < len(seen), f"never saw {pattern!r} (in order) in {seen}"
    return seen


def test_a_source_first_callback_goes_live_from_ringing_to_completed(
    browser: Browser, page: Page, switched_portal: str
) -> None:
    log_in(page, switched_portal, next_path="/call")  # login alone lands on the home page
    expect(page.get_by_label("Call me on")).to_have_value(SOURCE)
    place_call(page, switched_portal, ANSWERS, "Call me first, then the other number")
    second_tab = page.context.new_page()
    second_tab.goto(page.url)

    live = page.locator("#live")
    expect(live.locator('[data-leg="a"]')).to_have_attribute(
        "data-status", re.compile("ringing|answered"), timeout=CALL_SECONDS
    )
    expect(live.locator(".summary")).to_contain_text("Connected", timeout=CALL_SECONDS)
    check_page_is_usable(page)
    screenshot(page, "status-connected")
    expect(live.locator(".summary")).to_contain_text("ended", timeout=CALL_SECONDS)
    expect(live.locator(".cost")).to_contain_text("EUR", timeout=CALL_SECONDS)
    screenshot(page, "status-completed")
    seen_in_order(
        page,
        r"^(We're calling you|Your phone is ringing)\|a:(calling|ringing)",
        r"^(Calling|.* is ringing).*\|a:answered,b:(calling|ringing)",
        r"^Connected \W \d\d:\d\d\|a:bridged,b:bridged",
        r"^Your call with \+1 555-000-2001 ended\|a:hung_up,b:hung_up",
    )
    cost = live.locator(".cost").inner_text()
    expect(second_tab.locator("#live .summary")).to_contain_text("ended", timeout=5000)
    expect(second_tab.locator("#live .cost")).to_have_text(cost)
    assert second_tab.locator("#live .legs").inner_text() == live.locator(".legs").inner_text()
    balance = page.locator("#balance").inner_text()
    assert balance != "10.00 EUR" and balance.endswith(" EUR")

    open_menu(page).get_by_role("link", name="History").click()
    record = page.locator("table.calls tbody tr").first
    expect(record.locator('[data-label="Call"]')).to_have_text("+1 555-000-2001")
    expect(record.locator('[data-label="Outcome"]')).to_have_text("Connected")
    expect(record.locator('[data-label="Cost"]')).to_have_text(cost)
    check_page_is_usable(page)
    screenshot(page, "history")


def test_a_simultaneous_callback_calls_both_and_connects_them(
    page: Page, switched_portal: str
) -> None:
    log_in(page, switched_portal)
    place_call(page, switched_portal, ANSWERS, "Call both at once")
    live = page.locator("#live")
    expect(live.locator(".summary")).to_contain_text("ended", timeout=CALL_SECONDS)
    seen = seen_in_order(
        page, r"a:(calling|ringing).*b:(calling|ringing)", r"^Connected", r"^Your call .* ended"
    )
    assert not any("b:queued" in line for line in seen[1:]), "leg B was called at once"
    assert not any("source" in line.lower() for line in seen), seen
    expect(live.locator(".cost")).to_contain_text("EUR")


def test_a_busy_destination_shows_busy(page: Page, switched_portal: str) -> None:
    log_in(page, switched_portal)
    place_call(page, switched_portal, BUSY, "Call me first, then the other number")
    live = page.locator("#live")
    expect(live.locator('[data-leg="b"] .badge')).to_have_text("busy", timeout=CALL_SECONDS)
    expect(live.locator(".summary")).to_have_text(
        "The line of +1 555-000-2004 was busy", timeout=CALL_SECONDS
    )
    expect(live.get_by_role("link", name="Call +1 555-000-2004 again")).to_be_visible()
    screenshot(page, "status-busy")


@pytest.mark.parametrize("portal_kind", ["switched_portal", "alone_portal"])
def test_the_cancel_button_hangs_up_both_legs(
    page: Page, portal_kind: str, request: pytest.FixtureRequest
) -> None:
    """On serve's own portal, and on the portal run alone (which cancels through serve)."""
    url = request.getfixturevalue(portal_kind)
    log_in(page, url)
    place_call(page, url, SILENT, "Call both at once")
    live = page.locator("#live")
    expect(live.locator('[data-leg="b"]')).to_have_attribute(
        "data-status", re.compile("calling|ringing"), timeout=CALL_SECONDS
    )
    page.get_by_role("button", name="Cancel the call").click()
    expect(live.locator(".summary")).to_have_text("You cancelled the call", timeout=CALL_SECONDS)
    expect(live.get_by_role("button", name="Cancel the call")).to_have_count(0)
    expect(live.locator('[data-leg="a"]')).to_have_attribute(
        "data-status", re.compile("hung_up|cancelled")
    )
    expect(live.locator('[data-leg="b"]')).to_have_attribute("data-status", "cancelled")
    expect(live.locator('[data-leg="b"] .badge')).to_have_text("cancelled")


# -- the portal run alone (`esl-callback web`), calls placed through serve ------------------


def test_a_callback_placed_on_the_portal_run_alone_goes_live_to_completed(
    page: Page, alone_portal: str
) -> None:
    log_in(page, alone_portal)
    place_call(page, alone_portal, ANSWERS, "Call me first, then the other number")
    live = page.locator("#live")
    expect(live.locator(".summary")).to_contain_text("ended", timeout=CALL_SECONDS)
    expect(live.locator(".cost")).to_contain_text("EUR", timeout=CALL_SECONDS)
    seen_in_order(
        page,
        r"a:(calling|ringing)",
        r"a:answered.*b:(calling|ringing)",
        r"^Connected.*a:bridged,b:bridged",  # relayed from serve as it happened
        r"ended\|a:hung_up,b:hung_up",
    )
    check_page_is_usable(page)
    screenshot(page, "alone-status-completed")
    balance = page.locator("#balance").inner_text()
    assert balance != "10.00 EUR" and balance.endswith(" EUR")
    open_menu(page).get_by_role("link", name="History").click()
    expect(page.locator("table.calls tbody tr").first).to_contain_text("+1 555-000-2001")
