"""The window: the sign-in page, then the account's page (header with the balance; phone book and
recent calls on the left; placing a call and the call in progress on the right).

Every request to the server runs on a worker (`tasks.TaskRunner`); what comes back is shown on
the UI thread. A token the server no longer accepts brings the sign-in page back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import shiboken6
from PySide6.QtCore import QSize, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import QCloseEvent, QDesktopServices, QIcon, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMessageBox,
    QScrollArea,
    QSplitter,
    QStackedWidget,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from esl_callback.desktop.api_client import ApiClient
from esl_callback.desktop.api_errors import ApiError
from esl_callback.desktop.call_controller import CallController
from esl_callback.desktop.call_panel import CallPanel
from esl_callback.desktop.config import DesktopConfig
from esl_callback.desktop.entry_dialog import EntryDialog
from esl_callback.desktop.header_bar import HeaderBar
from esl_callback.desktop.history_view import HistoryView
from esl_callback.desktop.live_call_view import LiveCallView
from esl_callback.desktop.notifier import Notifier
from esl_callback.desktop.phone_book_view import PhoneBookView
from esl_callback.desktop.sign_in_view import SignInView
from esl_callback.desktop.tasks import TaskRunner
from esl_callback.desktop.theme import restyle
from esl_callback.desktop.token_store import TokenStore

MINIMUM_SIZE = QSize(800, 600)
RECENT_CALLS = 25
NOTICE_SECONDS = 12


class Banner(QLabel):
    """A message across the page: an error (until the next), or a notice (for a while)."""

    def __init__(self) -> None:
        super().__init__(objectName="banner", wordWrap=True)
        self.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self._fade = QTimer(self, singleShot=True, interval=NOTICE_SECONDS * 1000)
        self._fade.timeout.connect(lambda: self.say(""))
        self.hide()

    def say(self, text: str, kind: str = "notice") -> None:
        restyle(self, kind=kind)
        self.setText(text)
        self.setVisible(bool(text))
        if text and kind == "notice":
            self._fade.start()
        else:
            self._fade.stop()


class MainWindow(QMainWindow):
    """`signed_in` / `signed_out` are emitted as the page changes (what waits for it listens)."""

    signed_in = Signal()
    signed_out = Signal()

    def __init__(self, config: DesktopConfig, folder: Path, store: TokenStore) -> None:
        super().__init__()
        self.config, self.folder, self.store = config, folder, store
        self.client: ApiClient | None = None
        self.account: dict[str, Any] | None = None
        self.entries: list[dict[str, Any]] = []
        self.setWindowTitle("Callback")
        self.setWindowIcon(QIcon.fromTheme("call-start"))
        self.setMinimumSize(MINIMUM_SIZE)
        self.tasks = TaskRunner(self)
        self.notifier = Notifier(self)
        self.sign_in = SignInView()
        self.header = HeaderBar()
        self.banner = Banner()
        self.phone_book = PhoneBookView()
        self.history = HistoryView()
        self.call_panel = CallPanel()
        self.live_call = LiveCallView()
        self.calls = CallController(
            self.api, self.tasks, self.call_panel, self.live_call, self.notifier
        )
        self.tabs = QTabWidget()
        self.tabs.addTab(self.phone_book, "Phone book")
        self.tabs.addTab(self.history, "Recent calls")
        self.pages = QStackedWidget()
        self.pages.addWidget(self.sign_in)
        self.pages.addWidget(self._account_page())
        self.setCentralWidget(self.pages)
        self.refresh_timer = QTimer(self, interval=max(config.refresh_seconds, 5) * 1000)
        self._connect()
        self.sign_in.prefill(config.server, config.username)
        self._resume()

    def _account_page(self) -> QWidget:
        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.addWidget(self.tabs)
        right = QWidget(objectName="page")
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(0, 0, 0, 0)
        right_layout.addWidget(self.call_panel)
        right_layout.addWidget(self.live_call)
        right_layout.addStretch(1)
        scroll = QScrollArea()  # only ever scrolls on a window smaller than it is made for
        scroll.setWidget(right)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setMinimumWidth(340)
        split = QSplitter()
        split.addWidget(left)
        split.addWidget(scroll)
        split.setStretchFactor(0, 5)
        split.setStretchFactor(1, 4)
        split.setChildrenCollapsible(False)
        body = QHBoxLayout()
        body.setContentsMargins(14, 8, 14, 14)
        body.addWidget(split)
        page = QWidget(objectName="page")
        layout = QVBoxLayout(page)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.header)
        banner_row = QHBoxLayout()
        banner_row.setContentsMargins(14, 8, 14, 0)
        banner_row.addWidget(self.banner)
        layout.addLayout(banner_row)
        layout.addLayout(body, 1)
        return page

    def _connect(self) -> None:
        self.sign_in.submitted.connect(self.sign_in_with)
        self.header.page_wanted.connect(self.open_portal_page)
        self.header.sign_out_wanted.connect(self.sign_out)
        self.phone_book.search_changed.connect(self.load_phone_book)
        self.phone_book.add_wanted.connect(lambda: self.edit_entry(None))
        self.phone_book.edit_wanted.connect(self.edit_entry)
        self.phone_book.delete_wanted.connect(self.delete_entry)
        self.phone_book.call_wanted.connect(lambda e: self.call_number(e["number"]))
        self.history.redial_wanted.connect(self.redial)
        self.history.refresh_wanted.connect(self.load_history)
        self.calls.ended.connect(self.call_ended)
        self.calls.problem.connect(self.show_problem)
        self.notifier.shown.connect(
            lambda title, text, failed: self.banner.say(
                f"{title}: {text}", "error" if failed else "notice"
            )
        )
        self.refresh_timer.timeout.connect(self.refresh)
        QShortcut(QKeySequence.StandardKey.Find, self, self._find)
        QShortcut(QKeySequence("Ctrl+L"), self, self.call_panel.destination.setFocus)

    def api(self) -> ApiClient:
        assert self.client is not None, "not signed in"
        return self.client

    def _new_client(self, server: str, token: str | None = None) -> ApiClient:
        return ApiClient(
            server, token, timeout=self.config.timeout_seconds, ca_file=self.config.ca_file
        )

    # -- signing in and out -----------------------------------------------------------------

    def _resume(self) -> None:
        """Sign in with the token kept from last time, if there is one."""
        config = self.config
        token = (
            config.server and config.username and self.store.load(config.server, config.username)
        )
        if not token:
            self.pages.setCurrentWidget(self.sign_in)
            return
        self.client = self._new_client(config.server, token)
        self.sign_in.set_busy(True)
        self.tasks.run(self.api().account, done=self._enter, failed=self._resume_failed)

    def _resume_failed(self, error: ApiError) -> None:
        if error.kind == "signed_out":
            self.store.forget(self.config.server, self.config.username)
        self.client = None
        self.sign_in.show_error(error.message)

    def sign_in_with(self, server: str, username: str, password: str) -> None:
        try:
            client = self._new_client(server)
        except ValueError as exc:
            self.sign_in.show_error(str(exc))
            return
        self.sign_in.set_busy(True)

        def signed_in(account: dict[str, Any]) -> None:
            self.client = client
            self.config.server, self.config.username = client.server, username
            self.config.save(self.folder)
            assert client.token is not None
            self.store.save(client.server, username, client.token)
            self._enter(account)

        def sign_in_and_read_account() -> dict[str, Any]:
            client.sign_in(username, password)
            return client.account()

        self.tasks.run(sign_in_and_read_account, done=signed_in, failed=self.sign_in.show_error_of)

    def _enter(self, account: dict[str, Any]) -> None:
        self.sign_in.set_busy(False)
        self.pages.setCurrentWidget(self.pages.widget(1))
        self.banner.say("")
        self.show_account(account)
        self.load_phone_book(self.phone_book.search.text())
        self.load_history()
        self.refresh_timer.start()
        self.call_panel.destination.setFocus()
        self.signed_in.emit()

    def sign_out(self) -> None:
        """Revoke the token on the server, forget it here, back to the sign-in page."""
        client = self.client
        self.calls.close()
        self.refresh_timer.stop()
        self.header.sign_out.setEnabled(False)

        def done(_: Any = None) -> None:
            self._back_to_sign_in("")

        def failed(error: ApiError) -> None:
            self._back_to_sign_in(
                "Signed out on this computer, but the server could not be told, so this "
                f"app's access stays valid there until you sign in again. ({error.message})"
            )

        if client is None:
            done()
        else:
            self.tasks.run(client.sign_out, done=done, failed=failed)

    def _back_to_sign_in(self, message: str) -> None:
        self.store.forget(self.config.server, self.config.username)
        self.client = None
        self.account = None
        self.calls.close()
        self.refresh_timer.stop()
        self.header.sign_out.setEnabled(True)
        self.live_call.hide()
        self.sign_in.prefill(self.config.server, self.config.username)
        if message:
            self.sign_in.show_error(message)
        self.pages.setCurrentWidget(self.sign_in)
        self.signed_out.emit()

    # -- the account, the phone book, recent calls ------------------------------------------

    def refresh(self) -> None:
        """The balance and recent calls again (periodically, and after each call)."""
        if self.client is None:
            return
        self.tasks.run(self.api().account, done=self.show_account, failed=self.show_problem)
        self.load_history()

    def show_account(self, account: dict[str, Any]) -> None:
        self.account = account
        self.header.set_account(self.config.username, account)
        self.call_panel.set_numbers(account)

    def load_phone_book(self, search: str = "") -> None:
        def shown(entries: list[dict[str, Any]]) -> None:
            self.phone_book.set_entries(entries)
            if not search:
                self.entries = entries
                self.call_panel.set_phone_book(entries)
                self.calls.names = {e["number"]: e["name"] for e in entries}

        if self.client is not None:
            self.tasks.run(self.api().phone_book, search, done=shown, failed=self.show_problem)

    def load_history(self) -> None:
        def shown(calls: list[dict[str, Any]]) -> None:
            self.history.set_calls(calls, {e["number"]: e["name"] for e in self.entries})

        if self.client is not None:
            self.tasks.run(
                self.api().recent_calls, RECENT_CALLS, done=shown, failed=self.show_problem
            )

    def edit_entry(self, entry: dict[str, Any] | None) -> None:
        dialog = EntryDialog(self, entry)

        def save(fields: dict[str, str]) -> None:
            def saved(_: Any) -> None:
                if shiboken6.isValid(dialog):
                    dialog.accept()
                self.load_phone_book(self.phone_book.search.text())
                if self.phone_book.search.text():
                    self.load_phone_book("")

            def refused(error: ApiError) -> None:
                if shiboken6.isValid(dialog):
                    dialog.show_error(error.message, error.field)
                self.show_problem(error, quiet=True)

            if entry is None:
                self.tasks.run(self.api().add_entry, *fields.values(), done=saved, failed=refused)
            else:
                self.tasks.run(
                    self.api().update_entry,
                    entry["id"],
                    *fields.values(),
                    done=saved,
                    failed=refused,
                )

        dialog.save_wanted.connect(save)
        dialog.finished.connect(dialog.deleteLater)
        dialog.open()

    def delete_entry(self, entry: dict[str, Any]) -> None:
        question = QMessageBox(
            QMessageBox.Icon.Question,
            "Delete entry",
            f"Delete {entry['name']} ({entry['number']}) from your phone book?",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            self,
        )
        question.setDefaultButton(QMessageBox.StandardButton.No)

        def answered(button: int) -> None:
            if button == QMessageBox.StandardButton.Yes:
                self.tasks.run(
                    self.api().delete_entry,
                    entry["id"],
                    done=lambda _: self.load_phone_book(self.phone_book.search.text()),
                    failed=self.show_problem,
                )

        question.finished.connect(answered)
        question.finished.connect(question.deleteLater)
        question.open()

    # -- calls ------------------------------------------------------------------------------

    def call_number(self, number: str, source: str | None = None, mode: str | None = None) -> None:
        """Fill the call panel and place the call (double-click, redial)."""
        self.call_panel.fill(number, source, mode)
        self.call_panel.submit()

    def redial(self, call: dict[str, Any]) -> None:
        mode = call["mode"] if call["mode"] in ("source_first", "simultaneous") else None
        self.call_number(call["destination"], call.get("source"), mode)

    def call_ended(self, snap: dict[str, Any]) -> None:
        self.header.set_balance(snap.get("balance"), snap.get("currency"))
        self.refresh()

    def open_portal_page(self, page: str) -> None:
        """The portal's page in the browser, signed in with a one-time link."""

        def opened(url: str) -> None:
            if not QDesktopServices.openUrl(QUrl(url)):
                self.banner.say("No web browser could be opened for the link.", "error")

        self.tasks.run(self.api().sign_in_link, page, done=opened, failed=self.show_problem)

    # -- problems ---------------------------------------------------------------------------

    def show_problem(self, error: ApiError, quiet: bool = False) -> None:
        """Say what went wrong; a token no longer accepted goes back to signing in."""
        if error.kind == "signed_out":
            self._back_to_sign_in(error.message)
        elif not quiet:
            self.banner.say(error.message, "error")

    def _find(self) -> None:
        self.tabs.setCurrentWidget(self.phone_book)
        self.phone_book.search.setFocus()
        self.phone_book.search.selectAll()

    def closeEvent(self, event: QCloseEvent) -> None:
        self.refresh_timer.stop()
        self.calls.close()
        self.tasks.close()
        super().closeEvent(event)
