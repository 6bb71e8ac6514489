"""The phone book kept on the server: search, add, edit, delete, call (double-click or Enter)."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QLineEdit, QPushButton, QVBoxLayout, QWidget

from esl_callback.desktop.tables import RowTable

SEARCH_DELAY_MS = 300


class PhoneBookView(QWidget):
    """Asks the window for what it cannot do alone, with signals carrying the entry (a dict)."""

    search_changed = Signal(str)
    add_wanted = Signal()
    edit_wanted = Signal(object)
    delete_wanted = Signal(object)
    call_wanted = Signal(object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.search = QLineEdit(placeholderText="Search a name or a number  (Ctrl+F)")
        self.search.setClearButtonEnabled(True)
        self.search.setAccessibleName("Search the phone book")
        self.table = RowTable(["Name", "Number", "Notes"], stretch=2)
        self.table.setAccessibleName("Phone book")
        self.empty = QLabel(objectName="hint", wordWrap=True)
        self.add = QPushButton("&Add…")
        self.edit = QPushButton("&Edit…")
        self.delete = QPushButton("&Delete")
        self.call = QPushButton("Ca&ll", objectName="primary")
        buttons = QHBoxLayout()
        for button in (self.add, self.edit, self.delete):
            buttons.addWidget(button)
        buttons.addStretch(1)
        buttons.addWidget(self.call)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 8, 0, 0)
        layout.addWidget(self.search)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.empty)
        layout.addLayout(buttons)
        self._debounce = QTimer(self, singleShot=True, interval=SEARCH_DELAY_MS)
        self._debounce.timeout.connect(lambda: self.search_changed.emit(self.search.text()))
        self.search.textChanged.connect(lambda _: self._debounce.start())
        self.search.returnPressed.connect(self.table.setFocus)
        self.add.clicked.connect(self.add_wanted)
        self.edit.clicked.connect(lambda: self._with_chosen(self.edit_wanted))
        self.delete.clicked.connect(lambda: self._with_chosen(self.delete_wanted))
        self.call.clicked.connect(lambda: self._with_chosen(self.call_wanted))
        self.table.activated_row.connect(self.call_wanted)
        self.table.delete_pressed.connect(self.delete_wanted)
        self.table.itemSelectionChanged.connect(self._enable)
        self._enable()

    def _with_chosen(self, signal: Any) -> None:
        entry = self.table.chosen()
        if entry is not None:
            signal.emit(entry)

    def _enable(self) -> None:
        chosen = self.table.chosen() is not None
        for button in (self.edit, self.delete, self.call):
            button.setEnabled(chosen)

    def set_entries(self, entries: list[dict[str, Any]]) -> None:
        self.table.set_rows(
            entries, [[e["name"], e["number"], e["notes"].replace("\n", " ")] for e in entries]
        )
        if entries:
            self.empty.hide()
        else:
            searching = bool(self.search.text().strip())
            self.empty.setText(
                "No entry matches your search."
                if searching
                else "Your phone book is empty: keep the people you call here with Add…"
            )
            self.empty.show()
        self._enable()
