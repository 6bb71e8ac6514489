"""A callback in progress and how it ended: the request's state and each leg's, in the words the
portal's status page uses (the API's `state_words`, `status_words`, `failure_words`,
`cause_words`), the time connected, the cost, and Cancel."""

from __future__ import annotations

import time
from typing import Any

from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import (
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from esl_callback.desktop.theme import restyle
from esl_callback.desktop.wording import NOTHING, amount, clock

ENDED_BADLY = ("failed", "cancelled", "rejected")


def leg_facts(leg: dict[str, Any]) -> str:
    """What the portal writes after a leg's badge: its cause and who hung up."""
    facts = []
    if leg.get("cause_words") and leg["cause_words"] != leg["status_words"]:
        facts.append(leg["cause_words"])
    if leg.get("hangup_by"):
        facts.append(f"hung up by {leg['hangup_by']}")
    return " · ".join(facts)


class LegRow:
    """One leg: role, number, status badge and facts, in a grid row."""

    def __init__(self, grid: QGridLayout, row: int) -> None:
        self.role = QLabel(objectName="role")
        self.number = QLabel()
        self.badge = QLabel(objectName="badge")
        self.facts = QLabel(objectName="facts", wordWrap=True)
        grid.addWidget(self.role, row * 2, 0)
        grid.addWidget(self.number, row * 2, 1)
        grid.addWidget(self.badge, row * 2, 2)
        grid.addWidget(self.facts, row * 2 + 1, 1, 1, 2)

    def show(self, leg: dict[str, Any]) -> None:
        self.role.setText(leg["role"].capitalize())
        self.number.setText(leg["number"] or NOTHING)
        self.badge.setText(leg["status_words"])
        self.badge.setAccessibleName(f"{leg['role']} {leg['status_words']}")
        restyle(self.badge, status=leg["status"])
        facts = leg_facts(leg)
        self.facts.setText(facts)
        self.facts.setVisible(bool(facts))


class LiveCallView(QFrame):
    """Shows one request at a time; emits `cancel_wanted(request_id)`."""

    cancel_wanted = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent, objectName="card")
        self.title = QLabel("Your call", objectName="cardTitle")
        self.state = QLabel(objectName="state", wordWrap=True)
        self.state.setAccessibleName("Call status")
        legs = QGridLayout()
        legs.setColumnStretch(1, 1)
        legs.setHorizontalSpacing(12)
        self.legs = {"a": LegRow(legs, 0), "b": LegRow(legs, 1)}
        self.timer_label = QLabel("0:00", objectName="timer")
        self.timer_label.setAccessibleName("Time connected")
        self.cost = QLabel(objectName="hint")
        self.cancel = QPushButton("Ca&ncel the call", objectName="danger")
        bottom = QHBoxLayout()
        self.timer_caption = QLabel("Connected for", objectName="hint")
        bottom.addWidget(self.timer_caption)
        bottom.addWidget(self.timer_label)
        bottom.addStretch(1)
        bottom.addWidget(self.cost)
        bottom.addWidget(self.cancel)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(16, 12, 16, 12)
        layout.setSpacing(8)
        layout.addWidget(self.title)
        layout.addWidget(self.state)
        layout.addLayout(legs)
        layout.addLayout(bottom)
        self.request_id: int | None = None
        self._cancelling = False
        self.snap: dict[str, Any] | None = None
        self._connected_base = 0
        self._connected_since: float | None = None
        self.ticker = QTimer(self, interval=250)
        self.ticker.timeout.connect(self._show_time)
        self.cancel.clicked.connect(self._cancel)
        self.hide()

    def show_status(self, snap: dict[str, Any]) -> None:
        """Show a snapshot of the request (the first one starts the view)."""
        if snap["id"] != self.request_id:
            self._cancelling = False
            self.cancel.setText("Ca&ncel the call")
        self.request_id, self.snap = snap["id"], snap
        self.show()
        words = snap["state_words"][:1].upper() + snap["state_words"][1:]
        if snap.get("failure_words"):
            words += f": {snap['failure_words']}"
        self.state.setText(words)
        kind = "failed" if snap["state"] in ENDED_BADLY else "ok" if snap["state"] in (
            "bridged", "completed") else ""  # fmt: skip
        restyle(self.state, kind=kind)
        for leg in snap["legs"]:
            if leg["leg"] in self.legs:
                self.legs[leg["leg"]].show(leg)
        running = snap["live"] and snap["state"] == "bridged"
        self._connected_base = int(snap.get("duration_seconds") or 0)
        self._connected_since = time.monotonic() if running else None
        if running:
            self.ticker.start()
        else:
            self.ticker.stop()
        self._show_time()
        connected = bool(snap.get("bridged_at")) or running
        self.timer_caption.setVisible(connected)
        self.timer_label.setVisible(connected)
        self.cost.setText(
            f"Cost {amount(snap['cost'], snap['currency'])}" if snap.get("cost") else ""
        )
        self.cancel.setVisible(bool(snap["live"]))
        if not self._cancelling:
            self.cancel.setEnabled(bool(snap["live"]))

    def cancelling(self, busy: bool = True) -> None:
        """Cancel was pressed (busy) or could not be done (not busy)."""
        self._cancelling = busy
        self.cancel.setEnabled(not busy)
        self.cancel.setText("Cancelling…" if busy else "Ca&ncel the call")

    def _cancel(self) -> None:
        if self.request_id is not None:
            self.cancelling()
            self.cancel_wanted.emit(self.request_id)

    def _show_time(self) -> None:
        seconds = self._connected_base
        if self._connected_since is not None:
            seconds += int(time.monotonic() - self._connected_since)
        self.timer_label.setText(clock(seconds))
