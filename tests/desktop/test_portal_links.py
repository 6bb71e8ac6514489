"""The header's buttons open the portal's history and payments in the browser already signed in,
with a one-time link from the API: the browser (here urllib with a cookie jar, handed the URL
the way Qt hands it to the default browser) lands on the page signed in; the link then is spent
and the API token is never in it."""

from __future__ import annotations

import http.cookiejar
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest
from desktop_helpers import WAIT_MS
from PySide6.QtCore import QObject, QUrl, Slot
from PySide6.QtGui import QDesktopServices

from esl_callback.desktop.main_window import MainWindow
from esl_callback.desktop.token_store import FileTokenStore

pytestmark = pytest.mark.desktop


class Browser(QObject):
    """Receives the URLs the app asks the desktop to open (Qt's own hook for http links)."""

    def __init__(self) -> None:
        super().__init__()
        self.opened: list[str] = []

    @Slot(QUrl)
    def open(self, url: QUrl) -> None:
        self.opened.append(url.toString())


@pytest.fixture
def browser() -> Any:
    receiver = Browser()
    QDesktopServices.setUrlHandler("http", receiver, "open")
    yield receiver
    QDesktopServices.unsetUrlHandler("http")


def visit(url: str) -> tuple[str, str]:
    """A fresh browser opens `url`: the address it ends at and the page."""
    opener = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
    )
    with opener.open(url, timeout=10) as response:
        return response.geturl(), response.read().decode()


def test_history_and_payments_open_in_the_browser_signed_in_once(
    qtbot: Any, signed_in: Callable[[str], MainWindow], browser: Browser
) -> None:
    window = signed_in("links")
    token = FileTokenStore(window.folder).load(window.config.server, "links")
    assert token
    window.header.history.click()
    qtbot.waitUntil(lambda: len(browser.opened) == 1, timeout=WAIT_MS)
    window.header.payments.click()
    qtbot.waitUntil(lambda: len(browser.opened) == 2, timeout=WAIT_MS)
    history_link, payments_link = browser.opened
    for link in browser.opened:
        assert link.startswith(window.config.server + "/sign-in/")
        assert token not in link
    landed, page = visit(history_link)
    assert landed == window.config.server + "/history"
    assert "Log out links" in page
    landed, page = visit(payments_link)
    assert landed == window.config.server + "/payments"
    assert "voucher links" in page
    # Used once: the same link now opens the login page.
    landed, page = visit(history_link)
    assert landed.startswith(window.config.server + "/login")
    assert "expired or was already used" in page
