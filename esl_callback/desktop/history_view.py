"""Recent calls (the account's latest callback requests), with redial."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from esl_callback.desktop.tables import RowTable
from esl_callback.desktop.wording import NOTHING, amount, duration, local_time, number_with_name

MODES = {"source_first": "me first", "simultaneous": "both at once", "two_stage": "by phone"}


def result_words(call: dict[str, Any]) -> str:
    """How the call ended, as the portal says it."""
    words = call["state_words"]
    return f"{words}: {call['failure_words']}" if call.get("failure_words") else words


class HistoryView(QWidget):
    """Emits `redial_wanted(call)` (double-click, Enter or Redial) and `refresh_wanted`."""

    redial_wanted = Signal(object)
    refresh_wanted = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.table = RowTable(["When", "Called", "Result", "Length", "Cost"], 1)
        self.table.setAccessibleName("Recent calls")
        self.empty = QLabel("No calls yet.", objectName="hint")
        self.redial = QPushButton("&Redial", objectName="primary")
        self.refresh = QPushButton("Re&fresh")
        buttons = QHBoxLayout()
        buttons.addWidget(self.refresh)
        buttons.addStretch(1)
        buttons.addWidget(self.redial)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 8, 0, 0)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.empty)
        layout.addLayout(buttons)
        self.table.activated_row.connect(self._redial)
        self.redial.clicked.connect(lambda: self._redial(self.table.chosen()))
        self.refresh.clicked.connect(self.refresh_wanted)
        self.table.itemSelectionChanged.connect(self._enable)
        self._enable()

    def _redial(self, call: dict[str, Any] | None) -> None:
        if call is not None and call.get("destination"):
            self.redial_wanted.emit(call)

    def _enable(self) -> None:
        call = self.table.chosen()
        self.redial.setEnabled(bool(call and call.get("destination")))

    def set_calls(self, calls: list[dict[str, Any]], names: dict[str, str]) -> None:
        shown = [c for c in calls if c["mode"] in MODES]  # not the checks of new numbers
        self.table.set_rows(
            shown,
            [
                [
                    local_time(c["created_at"]),
                    number_with_name(c["destination"], names),
                    result_words(c),
                    duration(c["duration_seconds"]) if c["duration_seconds"] else NOTHING,
                    amount(c["cost"], c["currency"]) if c["cost"] else NOTHING,
                ]
                for c in shown
            ],
        )
        for row, call in enumerate(shown):
            self.table.item(row, 1).setToolTip(f"From {call['source']}, {MODES[call['mode']]}")
        self.empty.setVisible(not shown)
        self._enable()
