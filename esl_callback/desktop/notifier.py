"""Desktop notifications: the system tray's message where the desktop has a tray, and in any case
the window's banner (and the taskbar entry asking for attention)."""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QApplication, QSystemTrayIcon, QWidget


class Notifier(QObject):
    """`notify(title, text)`; `shown` is emitted for each (the window shows it too)."""

    shown = Signal(str, str, bool)  # title, text, failed

    def __init__(self, window: QWidget) -> None:
        super().__init__(window)
        self.window = window
        self.tray: QSystemTrayIcon | None = None
        if QSystemTrayIcon.isSystemTrayAvailable():
            self.tray = QSystemTrayIcon(window.windowIcon(), self)
            self.tray.setToolTip("Callback")
            self.tray.show()

    def notify(self, title: str, text: str, failed: bool = False) -> None:
        if self.tray is not None:
            icon = (
                QSystemTrayIcon.MessageIcon.Warning
                if failed
                else QSystemTrayIcon.MessageIcon.Information
            )
            self.tray.showMessage(title, text, icon, 8000)
        QApplication.alert(self.window)
        self.shown.emit(title, text, failed)
