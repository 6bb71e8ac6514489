"""The phone book kept on the server, from the desktop client: add, edit, search, delete, and
what the server refuses (a number already there, one that is no number) said in the dialog."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import shiboken6
from desktop_helpers import WAIT_MS, screenshot
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QDialogButtonBox, QMessageBox

from esl_callback.desktop.entry_dialog import EntryDialog
from esl_callback.desktop.main_window import MainWindow

pytestmark = pytest.mark.desktop


def open_dialog(qtbot: Any) -> EntryDialog:
    qtbot.waitUntil(
        lambda: isinstance(QApplication.activeModalWidget(), EntryDialog), timeout=WAIT_MS
    )
    return QApplication.activeModalWidget()


def back_to(qtbot: Any, window: MainWindow) -> None:
    """The window is active again after a dialog (its shortcuts work only then)."""
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=WAIT_MS)


def fill_and_save(qtbot: Any, dialog: EntryDialog, name: str, number: str, notes: str = "") -> None:
    """Type the name and number, set the notes, press Save."""
    for field, text in ((dialog.name, name), (dialog.number, number)):
        field.setFocus()
        field.selectAll()
        qtbot.keyClicks(field, text)
    dialog.notes.setPlainText(notes)
    dialog.buttons.button(QDialogButtonBox.StandardButton.Save).click()


def book(window: MainWindow) -> list[tuple[str, str, str]]:
    """The phone book as the server keeps it."""
    return [(e["name"], e["number"], e["notes"]) for e in window.api().phone_book()]


def shown(window: MainWindow) -> list[str]:
    table = window.phone_book.table
    return [table.item(row, 0).text() for row in range(table.rowCount())]


def test_adding_editing_searching_and_deleting_entries(
    qtbot: Any, signed_in: Callable[[str], MainWindow]
) -> None:
    window = signed_in("keys")
    view = window.phone_book
    # Add two entries (the second opened with Alt+A, the Add… button's key).
    view.add.click()
    dialog = open_dialog(qtbot)
    fill_and_save(qtbot, dialog, "Zoe Example", "+49 40 2222 222", "sister")
    qtbot.waitUntil(lambda: shown(window) == ["Zoe Example"], timeout=WAIT_MS)
    assert not shiboken6.isValid(dialog)  # closed and gone
    back_to(qtbot, window)
    qtbot.keyClick(window, Qt.Key.Key_A, Qt.KeyboardModifier.AltModifier)  # Add… by its key
    dialog = open_dialog(qtbot)
    fill_and_save(qtbot, dialog, "Adam Office", "030 9999 999")
    qtbot.waitUntil(lambda: shown(window) == ["Adam Office", "Zoe Example"], timeout=WAIT_MS)
    assert book(window) == [
        ("Adam Office", "49309999999", ""),
        ("Zoe Example", "49402222222", "sister"),
    ]
    screenshot(window, "06-phone-book")

    # What the server refuses is said in the dialog, which stays open.
    view.add.click()
    dialog = open_dialog(qtbot)
    fill_and_save(qtbot, dialog, "Zoe again", "040 2222222")
    qtbot.waitUntil(lambda: dialog.error.isVisible(), timeout=WAIT_MS)
    assert dialog.error.text() == (
        '49402222222 is already in your phone book as "Zoe Example": edit that entry instead.'
    )
    screenshot(dialog, "07-phone-book-refused")
    fill_and_save(qtbot, dialog, "Zoe again", "040 22x")
    qtbot.waitUntil(lambda: "has letters in it" in dialog.error.text(), timeout=WAIT_MS)
    dialog.reject()

    # Edit: the chosen entry, renamed.
    view.table.selectRow(1)
    view.edit.click()
    dialog = open_dialog(qtbot)
    assert dialog.number.text() == "49402222222"
    fill_and_save(qtbot, dialog, "Zoe Smith", "49402222222", "sister")
    qtbot.waitUntil(lambda: shown(window) == ["Adam Office", "Zoe Smith"], timeout=WAIT_MS)

    # Search (Ctrl+F), by name and by number.
    back_to(qtbot, window)
    qtbot.keyClick(window, Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier)
    assert view.search.hasFocus()
    qtbot.keyClicks(view.search, "zoe")
    qtbot.waitUntil(lambda: shown(window) == ["Zoe Smith"], timeout=WAIT_MS)
    view.search.setText("99999")
    qtbot.waitUntil(lambda: shown(window) == ["Adam Office"], timeout=WAIT_MS)
    view.search.setText("nobody")
    qtbot.waitUntil(lambda: shown(window) == [] and view.empty.isVisible(), timeout=WAIT_MS)
    assert view.empty.text() == "No entry matches your search."
    view.search.clear()
    qtbot.waitUntil(lambda: len(shown(window)) == 2, timeout=WAIT_MS)

    # Delete, after saying yes.
    view.table.selectRow(0)
    view.table.setFocus()
    qtbot.keyClick(view.table, Qt.Key.Key_Delete)
    qtbot.waitUntil(
        lambda: isinstance(QApplication.activeModalWidget(), QMessageBox), timeout=WAIT_MS
    )
    question = QApplication.activeModalWidget()
    assert "Delete Adam Office (49309999999)" in question.text()
    question.button(QMessageBox.StandardButton.Yes).click()
    qtbot.waitUntil(lambda: shown(window) == ["Zoe Smith"], timeout=WAIT_MS)
    assert book(window) == [("Zoe Smith", "49402222222", "sister")]
    # The call panel completes names from the book.
    assert window.call_panel.names.stringList() == ["Zoe Smith · 49402222222"]
