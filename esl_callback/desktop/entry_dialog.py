"""Adding or editing a phone-book entry: name, number and notes. The dialog stays open until the
server has stored the entry, and shows why not if it refuses (e.g. a number already there)."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QVBoxLayout,
    QWidget,
)


class EntryDialog(QDialog):
    """Emits `save_wanted(fields)`; the window calls `accept()` once saved, or `show_error`."""

    save_wanted = Signal(object)

    def __init__(self, parent: QWidget | None, entry: dict[str, Any] | None = None) -> None:
        super().__init__(parent)
        self.entry = entry
        self.setWindowTitle("Edit entry" if entry else "New entry")
        self.setModal(True)
        self.setMinimumWidth(380)
        self.name = QLineEdit(entry["name"] if entry else "")
        self.number = QLineEdit(entry["number"] if entry else "", placeholderText="+49 30 1234567")
        self.notes = QPlainTextEdit(entry["notes"] if entry else "")
        self.notes.setTabChangesFocus(True)
        self.notes.setFixedHeight(70)
        self.error = QLabel(objectName="error", wordWrap=True)
        self.error.hide()
        form = QFormLayout()
        for text, field in (("&Name", self.name), ("N&umber", self.number), ("No&tes", self.notes)):
            label = QLabel(text)
            label.setBuddy(field)
            form.addRow(label, field)
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel
        )
        self.buttons.button(QDialogButtonBox.StandardButton.Save).setObjectName("primary")
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.error)
        layout.addWidget(self.buttons)
        self.buttons.accepted.connect(self.save)
        self.buttons.rejected.connect(self.reject)

    def fields(self) -> dict[str, str]:
        return {
            "name": self.name.text().strip(),
            "number": self.number.text().strip(),
            "notes": self.notes.toPlainText().strip(),
        }

    def save(self) -> None:
        fields = self.fields()
        if not fields["name"] or not fields["number"]:
            self.show_error("Enter a name and a number.")
            return
        self.set_busy(True)
        self.save_wanted.emit(fields)

    def set_busy(self, busy: bool) -> None:
        self.buttons.setEnabled(not busy)
        if busy:
            self.error.hide()

    def show_error(self, message: str, field: str | None = None) -> None:
        self.set_busy(False)
        self.error.setText(message)
        self.error.show()
        focus = {"name": self.name, "number": self.number, "notes": self.notes}.get(field or "")
        (focus or self.name).setFocus()
