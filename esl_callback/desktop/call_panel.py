"""Placing a callback: my number, the number to call, how to connect, and before calling, the
price and the longest call the balance pays (the API's quote, asked again as they change)."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QStringListModel, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QButtonGroup,
    QComboBox,
    QCompleter,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QRadioButton,
    QVBoxLayout,
    QWidget,
)

from esl_callback.desktop.theme import restyle
from esl_callback.desktop.wording import quote_line

QUOTE_DELAY_MS = 400
SOURCE_FIRST, SIMULTANEOUS = "source_first", "simultaneous"
NAME_SEPARATOR = " · "


class CallPanel(QFrame):
    """Emits `quote_wanted(order)` as the order changes and `call_wanted(order)`; an order is
    (source, destination, mode)."""

    quote_wanted = Signal(object)
    call_wanted = Signal(object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent, objectName="card")
        title = QLabel("Place a call", objectName="cardTitle")
        title.setToolTip("We call you on your number and connect you to the number you call.")
        self.source = QComboBox()
        self.source.setAccessibleName("Call me on")
        self.destination = QLineEdit(placeholderText="A number, or a name")
        self.destination.setToolTip("Type a number, or a name from your phone book")
        self.destination.setAccessibleName("Number to call")
        self.names = QStringListModel(self)
        completer = QCompleter(self.names, self)
        completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        completer.setFilterMode(Qt.MatchFlag.MatchContains)
        completer.activated.connect(self._picked)
        self.destination.setCompleter(completer)
        self.source_first = QRadioButton("Call &me first")
        self.source_first.setToolTip("Call me first, then the other number")
        self.simultaneous = QRadioButton("Call &both at once")
        self.simultaneous.setToolTip("Call both numbers at once; the first to answer hears ringing")
        self.source_first.setChecked(True)
        self.modes = QButtonGroup(self)
        self.modes.addButton(self.source_first)
        self.modes.addButton(self.simultaneous)
        self.quote = QLabel(objectName="quote", wordWrap=True)
        self.quote.setAccessibleName("Price")
        self.error = QLabel(objectName="error", wordWrap=True)
        self.error.hide()
        self.call = QPushButton("&Call", objectName="primary")
        self.call.setToolTip("Place the call (Enter in the number field)")
        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        for text, field in (("Call me &on", self.source), ("&Number to call", self.destination)):
            label = QLabel(text)
            label.setBuddy(field)
            form.addRow(label, field)
        modes = QHBoxLayout()
        modes.addWidget(self.source_first)
        modes.addWidget(self.simultaneous)
        modes.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(16, 12, 16, 14)
        layout.setSpacing(8)
        layout.addWidget(title)
        layout.addLayout(form)
        layout.addLayout(modes)
        layout.addWidget(self.quote)
        layout.addWidget(self.error)
        layout.addWidget(self.call)
        self._debounce = QTimer(self, singleShot=True, interval=QUOTE_DELAY_MS)
        self._debounce.timeout.connect(self._want_quote)
        self.destination.textChanged.connect(self._changed)
        self.source.currentTextChanged.connect(self._changed)
        self.modes.buttonToggled.connect(lambda *_: self._changed())
        self.destination.returnPressed.connect(self.submit)
        self.call.clicked.connect(self.submit)
        self._calling = False
        self._changed()

    # -- what the window sets -------------------------------------------------------------

    def set_numbers(self, account: dict[str, Any]) -> None:
        """The account's numbers to be called on; editable when it may call from any number."""
        current = self.source.currentText()
        numbers = [n["number"] for n in account["numbers"]]
        default = account.get("default_callback_number")
        self.source.blockSignals(True)
        self.source.clear()
        self.source.addItems(numbers)
        self.source.setEditable(bool(account.get("allow_any_source")))
        chosen = current if current in numbers else default
        if chosen:
            self.source.setCurrentText(chosen)
        self.source.blockSignals(False)

    def set_phone_book(self, entries: list[dict[str, Any]]) -> None:
        self.names.setStringList([f"{e['name']}{NAME_SEPARATOR}{e['number']}" for e in entries])

    def fill(self, destination: str, source: str | None = None, mode: str | None = None) -> None:
        if source and self.source.findText(source) >= 0:
            self.source.setCurrentText(source)
        if mode:
            (self.simultaneous if mode == SIMULTANEOUS else self.source_first).setChecked(True)
        self.destination.setText(destination)

    def order(self) -> tuple[str, str, str]:
        mode = SIMULTANEOUS if self.simultaneous.isChecked() else SOURCE_FIRST
        return self.source.currentText().strip(), self.destination.text().strip(), mode

    def set_calling(self, calling: bool) -> None:
        """A call is being placed or is live: no second one from here."""
        self._calling = calling
        self.call.setEnabled(not calling and bool(self.destination.text().strip()))
        self.call.setText("Calling…" if calling else "&Call")

    def show_quote(self, quote: dict[str, Any] | None, refusal: str | None = None) -> None:
        self.quote.setVisible(quote is not None)
        if quote is None:
            self.quote.setText("")
        elif refusal:
            restyle(self.quote, kind="refused")
            self.quote.setText(refusal)
        else:
            restyle(self.quote, kind="")
            self.quote.setText(quote_line(quote))

    def show_error(self, message: str) -> None:
        self.error.setText(message)
        self.error.setVisible(bool(message))

    # -- inside ---------------------------------------------------------------------------

    def _picked(self, text: str) -> None:
        if NAME_SEPARATOR in text:
            number = text.rsplit(NAME_SEPARATOR, 1)[1]
            QTimer.singleShot(0, lambda: self.destination.setText(number))

    def _changed(self) -> None:
        self.show_error("")
        self.show_quote(None)
        self.set_calling(self._calling)
        self._debounce.start()

    def _want_quote(self) -> None:
        order = self.order()
        if order[1]:
            self.quote_wanted.emit(order)

    def submit(self) -> None:
        order = self.order()
        if self._calling:
            return
        if not order[1]:
            self.show_error("Enter the number to call.")
            self.destination.setFocus()
            return
        self._debounce.stop()
        self.call_wanted.emit(order)
