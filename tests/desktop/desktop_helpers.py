"""What the desktop client's tests share (import as `desktop_helpers`): waiting, signing in and
screenshots in test-artifacts/desktop/."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from desktop_platform import PASSWORD
from PySide6.QtWidgets import QApplication

from esl_callback.desktop.main_window import MainWindow

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "test-artifacts" / "desktop"
WAIT_MS = 30_000  # the longest any one condition is waited for


def sign_in(qtbot: Any, window: MainWindow, username: str, password: str = PASSWORD) -> None:
    """Type the username and password on the sign-in page and press Enter; wait until signed in."""
    page = window.sign_in
    page.username.setText(username)
    page.password.setText(password)
    with qtbot.waitSignal(window.signed_in, timeout=WAIT_MS):
        page.password.returnPressed.emit()
    qtbot.waitUntil(lambda: not window.tasks.busy, timeout=WAIT_MS)


def screenshot(window: Any, name: str) -> Path:
    """Save what the window shows as test-artifacts/desktop/NAME.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    QApplication.sendPostedEvents()  # layouts settle before the picture
    QApplication.processEvents()
    assert window.grab().save(str(path)), f"could not save {path}"
    return path
