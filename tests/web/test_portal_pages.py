"""Every portal page in chromium, at a desktop's size (1280x800) and a phone's (390x844): axe-core
finds no serious or critical violation, every target is at least 24x24 px, the keyboard's focus
ring has 3:1 contrast, nothing scrolls sideways; a screenshot of each lands in
test-artifacts/pages/. Also the phone-sized header and its menu, and the installable app: its
manifest in chromium's own eyes, the service worker, the offline page with the server down.

One portal with the FreeSWITCH simulator serves the walks (one browser session per size, as carol:
a low balance, favourites, past calls), so the live status of a connected call is checked too.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import test_browser
from page_checks import ARTIFACTS, problems_of
from playwright.sync_api import (
    Browser,
    BrowserContext,
    CDPSession,
    Page,
    expect,
)

from esl_callback import accounts
from esl_callback.callback import billing
from esl_callback.db import Database

pytestmark = pytest.mark.browser

PORTAL = Path(__file__).with_name("portal_process.py")
PASSWORD = "portal password"
CAROL_CALLS = "15550001001"  # a phone that answers after 1 s and stays on the line
SILENT = "15550002003"  # rings and never answers
browser = test_browser.browser  # one chromium per module, as the other browser tests
SIZES = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 390, "height": 844}}
CALL_SECONDS = 45_000  # ms: a callback's legs at real speed, with room to spare
PHONE_HEADER_PX = 64  # the whole header at 390x844 (it took 191 px before its menu)


def start_portal(directory: Path, *options: str) -> tuple[subprocess.Popen, str]:
    """tests/web/portal_process.py in a process of its own; it and the URL it serves."""
    log = (directory / "portal.stderr").open("w")
    process = subprocess.Popen(
        [sys.executable, str(PORTAL), str(directory), *options],
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    url = process.stdout.readline().strip()
    if not url.startswith("http://"):
        process.kill()
        pytest.fail(f"the portal did not start: {(directory / 'portal.stderr').read_text()}")
    return process, url


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    process.wait(timeout=20)


def pay_in(directory: Path, username: str, amount: str) -> None:
    """A payment into an account of the running portal's database (SQLite, beside it)."""
    database = Database(f"sqlite:///{directory / 'portal.db'}")
    try:
        billing.add_payment(accounts.find_account(username), amount, "top-up for the page walk")
    finally:
        database.close()


@pytest.fixture(scope="module")
def portal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The switched portal; carol (favourites, past calls) gets enough money for two calls."""
    directory = tmp_path_factory.mktemp("pages")
    process, url = start_portal(directory, "--switch")
    pay_in(directory, "carol", "20")
    yield url
    stop(process)


@pytest.fixture
def context_at(browser: Browser) -> Iterator[Callable[[str], BrowserContext]]:
    """A fresh browser session at a size; axe-core is injected, so the page's CSP is bypassed."""
    opened: list[BrowserContext] = []

    def open_at(size: str) -> BrowserContext:
        context = browser.new_context(viewport=SIZES[size], device_scale_factor=1, bypass_csp=True)
        opened.append(context)
        return context

    yield open_at
    for context in opened:
        context.close()


def log_in(page: Page, url: str) -> None:
    page.get_by_label("Username").fill("carol")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(f"{url}/")


def open_menu(page: Page) -> None:
    button = page.get_by_role("button", name="Menu")
    if button.is_visible():
        button.click()


@pytest.mark.parametrize("size", SIZES)
def test_every_page_passes_axe_has_24px_targets_and_a_visible_focus_ring(
    context_at: Callable[[str], BrowserContext], portal: str, size: str
) -> None:
    page = context_at(size).new_page()
    page.on("dialog", lambda dialog: dialog.accept())
    problems: list[str] = []

    def check(name: str) -> None:
        page.wait_for_load_state()
        problems.extend(problems_of(page, name, size))

    page.goto(f"{portal}/login")
    expect(page.get_by_label("Username")).to_be_focused()  # autofocus
    check("login")
    page.get_by_label("Username").fill("carol")
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_label("Password")).to_be_focused()  # autofocus, the username kept
    check("login-error")
    log_in(page, portal)
    check("home")
    if size == "phone":
        page.get_by_role("button", name="Menu").click()
        check("menu")

    page.goto(f"{portal}/call")
    check("call")
    page.get_by_label("Number to call").fill(CAROL_CALLS)
    page.get_by_label("Call me first, then the other number").check()
    page.get_by_role("button", name="Call now").click()
    expect(page).to_have_url(re.compile(r"/requests/\d+$"))
    request_path = page.url.removeprefix(portal)
    expect(page.locator("#live .summary")).to_contain_text("Connected", timeout=CALL_SECONDS)
    check("live-call")
    page.get_by_role("button", name="Hang up").click()
    expect(page.locator("#live")).to_have_attribute("data-ended", "true", timeout=CALL_SECONDS)
    page.goto(f"{portal}{request_path}")
    check("request")

    for name, path in (("history", "/history"), ("phonebook", "/phonebook")):
        page.goto(f"{portal}{path}")
        check(name)
    page.get_by_role("link", name=re.compile("^Edit")).first.click()
    check("phonebook-edit")
    for name, path in (
        ("payments", "/payments"),
        ("rates", "/rates?q=49"),
        ("settings", "/settings"),
    ):
        page.goto(f"{portal}{path}")
        check(name)
    page.get_by_label("Number to add").fill(SILENT if size == "desktop" else "15550002004")
    page.get_by_role("button", name="Call me with a code").click()
    expect(page).to_have_url(re.compile(r"/settings/numbers/\d+$"))
    check("verification")
    page.goto(f"{portal}/requests/999999999")
    expect(page.get_by_role("heading", name="Not found")).to_be_visible()
    check("error-404")
    page.goto(f"{portal}/logout")  # a form's address opened as a page: 405
    expect(page.get_by_role("heading", name="Something went wrong")).to_be_visible()
    check("error-405")
    page.goto(f"{portal}/offline")
    check("offline")

    assert problems == []


def test_on_a_phone_the_header_is_one_row_and_its_menu_a_disclosure_for_keyboard_and_mouse(
    context_at: Callable[[str], BrowserContext], portal: str
) -> None:
    page = context_at("phone").new_page()
    page.goto(f"{portal}/login")
    log_in(page, portal)
    header = page.locator("header.top").bounding_box()
    assert header is not None and header["height"] <= PHONE_HEADER_PX
    button = page.get_by_role("button", name="Menu")
    navigation = page.get_by_role("navigation", name="Main")
    expect(button).to_have_attribute("aria-expanded", "false")
    expect(button).to_have_attribute("aria-controls", "menu")
    expect(navigation).to_be_hidden()

    button.focus()
    page.keyboard.press("Enter")
    expect(button).to_have_attribute("aria-expanded", "true")
    expect(navigation.get_by_role("link", name="Home")).to_have_attribute("aria-current", "page")
    page.keyboard.press("Tab")
    expect(navigation.get_by_role("link", name="Home")).to_be_focused()
    page.keyboard.press("Escape")
    expect(button).to_have_attribute("aria-expanded", "false")
    expect(button).to_be_focused()
    expect(navigation).to_be_hidden()

    page.keyboard.press("Space")
    navigation.get_by_role("link", name="History").click()
    expect(page).to_have_url(f"{portal}/history")
    expect(page.get_by_role("button", name="Menu")).to_have_attribute("aria-expanded", "false")


def test_without_javascript_the_phone_menu_is_always_shown_and_has_no_button(
    browser: Browser, portal: str
) -> None:
    context = browser.new_context(viewport=SIZES["phone"], java_script_enabled=False)
    page = context.new_page()
    page.goto(f"{portal}/login")
    log_in(page, portal)
    expect(page.get_by_role("button", name="Menu")).to_be_hidden()
    expect(
        page.get_by_role("navigation", name="Main").get_by_role("link", name="Call")
    ).to_be_visible()
    expect(page.get_by_role("button", name="Log out carol")).to_be_visible()
    context.close()


def test_on_a_desktop_the_menu_is_always_shown_and_there_is_no_menu_button(
    context_at: Callable[[str], BrowserContext], portal: str
) -> None:
    page = context_at("desktop").new_page()
    page.goto(f"{portal}/login")
    log_in(page, portal)
    expect(page.get_by_role("button", name="Menu")).to_be_hidden()
    expect(page.get_by_role("navigation", name="Main").get_by_role("link")).to_have_count(7)
    expect(page.get_by_role("button", name="Log out carol")).to_be_visible()
    header = page.locator("header.top").bounding_box()
    assert header is not None and header["height"] <= PHONE_HEADER_PX


# -- the installable app -------------------------------------------------------------------


# Playwright's browser contexts are incognito profiles, where chromium installs no app.
TEST_BROWSER_ONLY = {"in-incognito"}


def installability_errors(cdp: CDPSession) -> list[str]:
    """Why chromium would not install the app from this page (none: it would)."""
    errors = cdp.send("Page.getInstallabilityErrors")["installabilityErrors"]
    return [e["errorId"] for e in errors if e["errorId"] not in TEST_BROWSER_ONLY]


def cached_paths(page: Page) -> list[str]:
    return page.evaluate(
        """async () => {
          const paths = [];
          for (const name of await caches.keys()) {
            const cache = await caches.open(name);
            for (const request of await cache.keys()) paths.push(new URL(request.url).pathname);
          }
          return paths.sort();
        }"""
    )


def test_the_app_installs_keeps_only_its_shell_and_shows_the_offline_page_when_the_server_is_down(
    browser: Browser, tmp_path: Path
) -> None:
    process, url = start_portal(tmp_path)
    try:
        context = browser.new_context(viewport=SIZES["phone"])
        page = context.new_page()
        page.goto(f"{url}/login")
        cdp = context.new_cdp_session(page)
        manifest = cdp.send("Page.getAppManifest")
        assert manifest["url"] == f"{url}/manifest.webmanifest"
        assert manifest["errors"] == []
        deadline = time.monotonic() + 30
        while (errors := installability_errors(cdp)) and time.monotonic() < deadline:
            page.wait_for_timeout(250)  # installable once the worker controls the page
        assert errors == []
        scope = page.evaluate("navigator.serviceWorker.ready.then((r) => r.scope)")
        assert scope == f"{url}/"

        page.get_by_label("Username").fill("alice")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        expect(page).to_have_url(f"{url}/")
        assert page.evaluate("navigator.serviceWorker.controller !== null")
        for path in ("/history", "/payments", "/settings"):
            page.goto(f"{url}{path}")
        assert page.evaluate("fetch('/api/v1/account').then((r) => r.status)") in (200, 401)
        shell = cached_paths(page)
        assert "/offline" in shell and "/static/app.css" in shell
        assert not [path for path in shell if re.match(r"/(api|requests|history|payments)", path)]
        worker = page.evaluate("fetch('/sw.js').then((r) => r.text())")
        assert shell == sorted(json.loads(re.search(r"^const SHELL = (.*);$", worker, re.M)[1]))
    finally:
        stop(process)

    page.goto(f"{url}/history")
    expect(page.get_by_role("heading", name="You are offline")).to_be_visible()
    expect(page.locator("#balance")).to_have_count(0)  # nobody's data: the page is the shell's
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "offline-server-down-phone.png"), full_page=True)
    styled = page.evaluate(
        "getComputedStyle(document.querySelector('header.top')).borderBottomStyle"
    )
    assert styled == "solid"  # app.css came from the worker's cache
    api = page.evaluate("fetch('/api/v1/account').then(() => 'answered', () => 'failed')")
    assert api == "failed"  # never answered from a cache
    post = "fetch('/api/v1/requests', {method: 'POST', body: '{}'})"
    call = page.evaluate(f"{post}.then(() => 'answered', () => 'failed')")
    assert call == "failed"  # no call is answered for, to be sent later
    context.close()


# -- branding ------------------------------------------------------------------------------

BRAND = {"product_name": "Acme Calls", "primary_colour": "#1d5e20", "accent_colour": "#6a1b9a"}
LOGO = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 8 8"><circle cx="4" cy="4" r="4"/></svg>'
)


def test_the_configured_name_logo_and_colours_are_the_portals_and_the_apps(
    browser: Browser, tmp_path: Path
) -> None:
    logo = tmp_path / "acme.svg"
    logo.write_text(LOGO)
    branding = json.dumps({**BRAND, "logo": str(logo)})
    process, url = start_portal(tmp_path, "--branding", branding)
    try:
        context = browser.new_context(viewport=SIZES["desktop"])
        page = context.new_page()
        page.goto(f"{url}/login")
        expect(page).to_have_title("Log in · Acme Calls")
        brand = page.locator("header.top .brand")
        expect(brand).to_have_text("Acme Calls")
        expect(brand.locator("img.logo")).to_have_js_property("complete", True)
        assert brand.locator("img.logo").evaluate("(img) => img.naturalWidth") > 0  # it loaded
        button = page.get_by_role("button", name="Log in")
        expect(button).to_have_css("background-color", "rgb(29, 94, 32)")
        expect(page.locator("header.top")).to_have_css("border-bottom-color", "rgb(106, 27, 154)")
        expect(page.locator('meta[name="theme-color"]')).to_have_attribute("content", "#1d5e20")
        manifest = context.new_cdp_session(page).send("Page.getAppManifest")
        assert manifest["errors"] == []
        parsed = json.loads(manifest["data"])
        assert (parsed["name"], parsed["theme_color"]) == ("Acme Calls", "#1d5e20")
        assert parsed["icons"][0]["src"] == "/brand/logo"
        page.get_by_label("Username").fill("alice")
        page.get_by_label("Password").fill(PASSWORD)
        button.click()
        current = page.get_by_role("navigation", name="Main").get_by_role("link", name="Home")
        expect(current).to_have_css("border-bottom-color", "rgb(106, 27, 154)")
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "branded-home-desktop.png"))
        context.close()
    finally:
        stop(process)
