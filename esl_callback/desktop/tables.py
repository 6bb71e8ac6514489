"""A read-only table of rows, one selected at a time, that says which row's data is chosen."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableWidget, QTableWidgetItem


class RowTable(QTableWidget):
    """Rows of `data` dicts; `activated_row(dict)` on double-click or Enter."""

    activated_row = Signal(object)
    delete_pressed = Signal(object)

    def __init__(self, headers: list[str], stretch: int = 0) -> None:
        super().__init__(0, len(headers))
        self.setHorizontalHeaderLabels(headers)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setAlternatingRowColors(True)
        self.setShowGrid(False)
        self.verticalHeader().hide()
        header = self.horizontalHeader()
        header.setDefaultAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(stretch, QHeaderView.ResizeMode.Stretch)
        self.rows: list[dict[str, Any]] = []
        self.cellDoubleClicked.connect(lambda row, _: self.activated_row.emit(self.rows[row]))

    def set_rows(self, rows: list[dict[str, Any]], cells: list[list[str]]) -> None:
        chosen = self.chosen()
        self.rows = rows
        self.setRowCount(len(rows))
        for index, values in enumerate(cells):
            for column, value in enumerate(values):
                self.setItem(index, column, QTableWidgetItem(value))
        keep = next(
            (i for i, row in enumerate(rows) if chosen and row.get("id") == chosen.get("id")), None
        )
        if keep is not None:
            self.selectRow(keep)

    def chosen(self) -> dict[str, Any] | None:
        selected = self.selectionModel().selectedRows() if self.selectionModel() else []
        return (
            self.rows[selected[0].row()]
            if selected and selected[0].row() < len(self.rows)
            else None
        )

    def keyPressEvent(self, event: QKeyEvent) -> None:
        row = self.chosen()
        if row is not None and event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            self.activated_row.emit(row)
        elif row is not None and event.key() == Qt.Key.Key_Delete:
            self.delete_pressed.emit(row)
        else:
            super().keyPressEvent(event)
