"""Callbacks from the desktop client against a real serve and simulator: the price before the
call, the live status of both legs in the portal's words (the same status stream), the timer,
Cancel, notifications, the balance and recent calls afterwards; refusals said in sentences.

Phones (`desktop_platform`): each customer's own answers after 1 s and stays on the line; FRIEND
answers after 1 s and talks 3 s; BUSY is busy; SILENT never answers. 0.60 EUR a minute per leg.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from desktop_helpers import WAIT_MS, screenshot
from desktop_platform import BUSY, DENIED, FRIEND, NO_RATE, SILENT, Platform
from PySide6.QtCore import Qt

from esl_callback.callback.status import LEG_WORDS, REQUEST_WORDS
from esl_callback.desktop.api_errors import ApiError
from esl_callback.desktop.main_window import MainWindow

pytestmark = pytest.mark.desktop
CALL_MS = 60_000  # a whole call, from placing it to its final status


class Watcher:
    """What the window showed of a call: each status as "state | source:x destination:y", the
    words it showed, the timer's readings, and the notifications."""

    def __init__(self, qtbot: Any, window: MainWindow) -> None:
        self.qtbot, self.window = qtbot, window
        self.lines: list[str] = []
        self.words: set[str] = set()
        self.timer: set[str] = set()
        self.notices: list[tuple[str, str]] = []
        self.ended: list[dict[str, Any]] = []
        window.calls.status.connect(self.seen)
        window.calls.ended.connect(self.ended.append)
        window.notifier.shown.connect(lambda title, text, _: self.notices.append((title, text)))
        ticker = window.live_call.ticker
        ticker.timeout.connect(lambda: self.timer.add(window.live_call.timer_label.text()))

    def seen(self, snap: dict[str, Any]) -> None:
        legs = " ".join(f"{leg['role']}:{leg['status']}" for leg in snap["legs"])
        line = f"{snap['state']} | {legs}"
        if not self.lines or self.lines[-1] != line:
            self.lines.append(line)
        view = self.window.live_call
        self.words.add(view.state.text())
        for row in view.legs.values():
            self.words.add(row.badge.text())

    def wait_for(self, pattern: str, name: str | None = None) -> None:
        """Until a status matching `pattern` ("state | legs" substrings) has been shown."""
        self.qtbot.waitUntil(lambda: any(pattern in line for line in self.lines), timeout=CALL_MS)
        if name:
            screenshot(self.window, name)

    def wait_until_ended(self) -> dict[str, Any]:
        self.qtbot.waitUntil(lambda: bool(self.ended), timeout=CALL_MS)
        return self.ended[-1]

    def in_order(self, *patterns: str) -> None:
        position = 0
        for pattern in patterns:
            while position < len(self.lines) and pattern not in self.lines[position]:
                position += 1
            assert position < len(self.lines), f"never saw {pattern!r} in order in {self.lines}"


def portal_words_only(watcher: Watcher) -> None:
    """Every word shown for the request and its legs is the portal's."""
    portal = set(LEG_WORDS.values())
    states = {words[:1].upper() + words[1:] for words in REQUEST_WORDS.values()}
    for shown in watcher.words:
        assert shown in portal or shown.split(":")[0] in states, shown


def type_number(qtbot: Any, window: MainWindow, number: str) -> None:
    """Keyboard only: Ctrl+L to the number field, type the number."""
    qtbot.keyClick(window, Qt.Key.Key_L, Qt.KeyboardModifier.ControlModifier)
    field = window.call_panel.destination
    assert field.hasFocus()
    field.clear()
    qtbot.keyClicks(field, number)


def test_a_source_first_call_typed_at_the_keyboard_rings_connects_and_completes(
    qtbot: Any, signed_in: Callable[[str], MainWindow], platform: Platform
) -> None:
    window = signed_in("alice")
    watcher = Watcher(qtbot, window)
    panel = window.call_panel
    type_number(qtbot, window, "040 2222 222")
    # The price and the longest call the balance pays, before calling: both legs are charged
    # (1.20 a minute), leg A may ring 20 s: (10 - 0.21) / 0.02 = 489 s.
    qtbot.waitUntil(lambda: "up to" in panel.quote.text(), timeout=WAIT_MS)
    assert panel.quote.text() == (
        "1.20 EUR/min · billed per second · up to 8 min 09 s with your balance"
    )
    screenshot(window, "10-price-before-calling")
    qtbot.keyClick(panel.destination, Qt.Key.Key_Return)
    watcher.wait_for("calling_source | source:ringing", "11-calling-the-source")
    watcher.wait_for("bridged | source:bridged destination:bridged", "12-connected")
    qtbot.waitUntil(lambda: bool(watcher.timer - {"0:00"}), timeout=CALL_MS)  # it counts
    snap = watcher.wait_until_ended()
    screenshot(window, "13-completed")
    watcher.in_order(
        "calling_source | source:ringing destination:queued",
        "calling_destination | source:answered destination:ringing",
        "bridged | source:bridged destination:bridged",
        "completed | source:hung_up destination:hung_up",
    )
    assert (snap["state"], snap["destination"]) == ("completed", FRIEND)
    view = window.live_call
    assert view.state.text() == "Completed"
    assert [row.badge.text() for row in view.legs.values()] == ["hung up", "hung up"]
    assert view.legs["b"].facts.text() == "hung up by the destination phone"
    assert view.cost.text() == f"Cost {snap['cost'][:-2]} EUR"  # 0.0700 is written 0.07
    assert not view.cancel.isVisible()
    portal_words_only(watcher)
    assert watcher.notices == [("Call connected", f"You are connected to {FRIEND}.")]
    # The balance is what the server says after billing, and the call is in Recent calls.
    qtbot.waitUntil(
        lambda: window.header.balance.text() == f"{snap['balance'][:-2]} EUR", timeout=WAIT_MS
    )
    assert window.header.balance.text() != "10.00 EUR"
    qtbot.waitUntil(lambda: window.history.table.rowCount() == 1, timeout=WAIT_MS)
    assert window.history.table.item(0, 2).text() == "completed"
    assert panel.call.isEnabled()


def test_a_simultaneous_call_from_the_phone_book_rings_both_at_once(
    qtbot: Any, signed_in: Callable[[str], MainWindow], platform: Platform
) -> None:
    window = signed_in("bob")
    window.api().add_entry("Friend", FRIEND, "")
    window.load_phone_book()
    qtbot.waitUntil(lambda: window.phone_book.table.rowCount() == 1, timeout=WAIT_MS)
    watcher = Watcher(qtbot, window)
    window.call_panel.simultaneous.setChecked(True)
    table = window.phone_book.table
    where = table.visualItemRect(table.item(0, 0)).center()
    qtbot.mouseClick(table.viewport(), Qt.MouseButton.LeftButton, pos=where)
    qtbot.mouseDClick(table.viewport(), Qt.MouseButton.LeftButton, pos=where)
    watcher.wait_for("destination:ringing")
    watcher.wait_for("bridged | source:bridged destination:bridged", "20-both-at-once-connected")
    assert watcher.notices == [("Call connected", f"You are connected to Friend ({FRIEND}).")]
    snap = watcher.wait_until_ended()
    watcher.in_order(
        "calling_source | source:ringing destination:ringing",
        "bridged | source:bridged destination:bridged",
        "completed | source:hung_up destination:hung_up",
    )
    assert (snap["mode"], snap["state"]) == ("simultaneous", "completed")
    portal_words_only(watcher)


def test_cancel_hangs_up_a_call_whose_destination_is_still_ringing(
    qtbot: Any, signed_in: Callable[[str], MainWindow]
) -> None:
    window = signed_in("carol")
    watcher = Watcher(qtbot, window)
    window.call_number(SILENT)
    watcher.wait_for("destination:ringing", "14-destination-ringing")
    assert window.live_call.cancel.isVisible()
    qtbot.mouseClick(window.live_call.cancel, Qt.MouseButton.LeftButton)
    snap = watcher.wait_until_ended()
    screenshot(window, "15-cancelled")
    assert (snap["state"], snap["failure_words"]) == ("cancelled", "cancelled by you")
    assert window.live_call.state.text() == "Cancelled: cancelled by you"
    assert not window.live_call.cancel.isVisible()
    assert watcher.notices == []  # cancelling is no failure to be told of


def test_a_busy_destination_fails_and_says_so(
    qtbot: Any, signed_in: Callable[[str], MainWindow]
) -> None:
    window = signed_in("dave")
    watcher = Watcher(qtbot, window)
    window.call_number(BUSY)
    snap = watcher.wait_until_ended()
    screenshot(window, "16-busy")
    assert snap["state"] == "failed"
    assert window.live_call.legs["b"].badge.text() == "busy"
    title, text = watcher.notices[-1]
    assert title == "Call failed"
    assert text == f"The call to {BUSY} failed: {snap['failure_words']}."
    portal_words_only(watcher)


def test_a_balance_too_low_is_said_before_calling_and_nothing_is_placed(
    qtbot: Any, signed_in: Callable[[str], MainWindow]
) -> None:
    window = signed_in("poor")
    panel = window.call_panel
    panel.fill(FRIEND)
    refusal = "Your balance is too low for this call. Available: 0.05 EUR."
    qtbot.waitUntil(lambda: panel.quote.text() == refusal, timeout=WAIT_MS)
    panel.call.click()  # placing it asks again, and places nothing
    qtbot.waitUntil(lambda: panel.call.text() == "&Call" and not window.tasks.busy, timeout=WAIT_MS)
    assert panel.quote.text() == refusal
    screenshot(window, "17-balance-too-low")
    assert window.api().recent_calls() == []
    assert panel.call.isEnabled() and not window.live_call.isVisible()


def test_numbers_refused_by_the_dial_policy_or_without_a_price_are_said_in_sentences(
    qtbot: Any, signed_in: Callable[[str], MainWindow]
) -> None:
    window = signed_in("erin")
    panel = window.call_panel
    panel.fill(DENIED)
    qtbot.waitUntil(
        lambda: panel.quote.text() == "Calls to this number are not allowed.", timeout=WAIT_MS
    )
    screenshot(window, "18-number-refused")
    panel.fill(NO_RATE)
    qtbot.waitUntil(
        lambda: (
            panel.quote.text() == "There is no price for this destination, so it cannot be called."
        ),
        timeout=WAIT_MS,
    )
    # Placed anyway (as another client might), the server refuses it with the policy's reason.
    with pytest.raises(ApiError) as refused:
        window.api().start_callback(None, DENIED, "source_first")
    assert (refused.value.status, refused.value.code) == (403, "destination_denied")
    assert refused.value.message == "Calls to this number are not allowed."
    panel.fill("040 12x")
    qtbot.waitUntil(lambda: panel.error.isVisible(), timeout=WAIT_MS)
    assert panel.error.text().startswith("That number has letters in it")


def test_redial_from_recent_calls(qtbot: Any, signed_in: Callable[[str], MainWindow]) -> None:
    window = signed_in("frank")
    watcher = Watcher(qtbot, window)
    window.call_number(BUSY)
    watcher.wait_until_ended()
    qtbot.waitUntil(lambda: window.history.table.rowCount() == 1, timeout=WAIT_MS)
    window.tabs.setCurrentWidget(window.history)
    window.history.table.selectRow(0)
    screenshot(window, "19-recent-calls")
    watcher.ended.clear()
    qtbot.keyClick(window.history.table, Qt.Key.Key_Return)
    snap = watcher.wait_until_ended()
    assert (snap["destination"], snap["id"]) != (None, None)
    assert snap["destination"] == BUSY
    qtbot.waitUntil(lambda: window.history.table.rowCount() == 2, timeout=WAIT_MS)
