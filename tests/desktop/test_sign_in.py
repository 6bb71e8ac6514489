"""Signing in and out of the desktop client against a real serve: the token kept for next time
(a file only the user can read here, where no keyring works), revoked on sign-out; a wrong
password, a lockout and a server that is down said in sentences."""

from __future__ import annotations

import sqlite3
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from desktop_helpers import WAIT_MS, screenshot, sign_in
from desktop_platform import Platform
from ports import free_port

from esl_callback.desktop.api_client import TOKEN_LABEL, ApiClient
from esl_callback.desktop.api_errors import ApiError
from esl_callback.desktop.main_window import MainWindow
from esl_callback.desktop.token_store import TOKEN_FILE, FileTokenStore

pytestmark = pytest.mark.desktop


def test_signing_in_shows_the_account_and_the_token_is_kept_until_signing_out(
    qtbot: Any, platform: Platform, open_window: Callable[..., MainWindow], tmp_path: Path
) -> None:
    folder = tmp_path / "settings"
    window = open_window(platform.url, folder)
    assert window.pages.currentWidget() is window.sign_in
    screenshot(window, "01-sign-in")
    sign_in(qtbot, window, "gina")
    assert window.header.balance.text() == "10.00 EUR"
    assert "gina" in window.header.who.text()
    assert window.call_panel.source.currentText() == platform.phone_of("gina")
    screenshot(window, "02-signed-in")

    token_file = folder / TOKEN_FILE
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    token = FileTokenStore(folder).load(platform.url, "gina")
    assert token and ApiClient(platform.url, token).account()["name"] == "gina"
    labels = sqlite3.connect(platform.database_url.removeprefix("sqlite:///")).execute(
        "SELECT label FROM api_token JOIN web_user ON web_user.id = api_token.web_user_id "
        "WHERE web_user.username = 'gina'"  # the platform serves every test of the session
    )
    assert [label for (label,) in labels] == [TOKEN_LABEL]  # how Settings lists it

    # The next start signs in with the kept token: no password asked.
    again = open_window(folder=folder)
    qtbot.waitUntil(lambda: again.pages.currentIndex() == 1, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: again.header.balance.text() == "10.00 EUR", timeout=WAIT_MS)

    with qtbot.waitSignal(again.signed_out, timeout=WAIT_MS):
        again.header.sign_out.click()
    assert again.pages.currentWidget() is again.sign_in
    assert FileTokenStore(folder).load(platform.url, "gina") is None
    with pytest.raises(ApiError) as revoked:
        ApiClient(platform.url, token).account()
    assert revoked.value.kind == "signed_out"
    # The window still open with the revoked token goes back to signing in, saying why.
    with qtbot.waitSignal(window.signed_out, timeout=WAIT_MS):
        window.refresh()
    assert "You have been signed out" in window.sign_in.error.text()


def test_the_balance_follows_a_payment_made_elsewhere_at_the_next_refresh(
    qtbot: Any, platform: Platform, open_window: Callable[..., MainWindow]
) -> None:
    window = open_window(platform.url, refresh_seconds=5)
    sign_in(qtbot, window, "hank")
    assert window.header.balance.text() == "10.00 EUR"
    platform.cli("payment", "add", "hank", "2.50", "--reference", "top-up 1")
    qtbot.waitUntil(lambda: window.header.balance.text() == "12.50 EUR", timeout=WAIT_MS)


def test_a_wrong_password_and_a_lockout_are_said_in_sentences(
    qtbot: Any, platform: Platform, open_window: Callable[..., MainWindow]
) -> None:
    window = open_window(platform.url)
    page = window.sign_in

    def attempt(password: str) -> str:
        page.error.setText("")
        page.username.setText("locked")
        page.password.setText(password)
        page.button.click()
        answered = lambda: bool(page.error.text()) and page.button.isEnabled()  # noqa: E731
        qtbot.waitUntil(answered, timeout=WAIT_MS)
        assert page.error.isVisible()
        return page.error.text()

    assert attempt("not the password") == "Wrong username or password."
    screenshot(window, "03-wrong-password")
    attempt("still wrong")
    attempt("wrong again")
    locked = attempt("desktop password")  # the right one, but the username is locked now
    assert locked == "Locked out after too many failed sign-ins: try again in about 10 minutes."
    assert page.password.text() == ""
    screenshot(window, "04-locked-out")


def test_a_server_that_is_down_is_said_in_a_sentence(
    qtbot: Any, open_window: Callable[..., MainWindow]
) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    window = open_window(down)
    page = window.sign_in
    page.username.setText("alice")
    page.password.setText("whatever")
    page.button.click()
    qtbot.waitUntil(page.error.isVisible, timeout=WAIT_MS)
    assert page.error.text() == (
        f"Cannot reach the server at {down} (nothing answers at that address). Check the "
        "address and your network connection."
    )
    assert window.pages.currentWidget() is page
    screenshot(window, "05-server-down")
    page.server.setText("ftp://portal.example.com")
    page.password.setText("whatever")
    page.button.click()
    assert "is not a web address" in page.error.text()
