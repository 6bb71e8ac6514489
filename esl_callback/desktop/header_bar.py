"""The bar across the top: who is signed in, the balance (always in view), the portal's pages and
signing out."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from esl_callback.desktop.wording import NOTHING, amount


class HeaderBar(QFrame):
    """Emits `page_wanted("history" | "payments")` and `sign_out_wanted`."""

    page_wanted = Signal(str)
    sign_out_wanted = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent, objectName="header")
        brand = QLabel("Callback", objectName="brand")
        self.who = QLabel(objectName="who")
        caption = QLabel("Balance", objectName="balanceCaption")
        self.balance = QLabel(NOTHING, objectName="balance")
        self.balance.setAccessibleName("Balance")
        money = QVBoxLayout()
        money.setSpacing(0)
        money.addWidget(caption)
        money.addWidget(self.balance)
        self.history = QPushButton("Call &history ↗")
        self.history.setToolTip("Open your call history in the web portal, signed in")
        self.payments = QPushButton("Pa&yments ↗")
        self.payments.setToolTip("Open your payments in the web portal, signed in")
        self.sign_out = QPushButton("Sign &out")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(16, 10, 16, 10)
        layout.setSpacing(10)
        names = QVBoxLayout()
        names.setSpacing(0)
        names.addWidget(brand)
        names.addWidget(self.who)
        layout.addLayout(names)
        layout.addStretch(1)
        layout.addLayout(money)
        layout.addSpacing(14)
        for button in (self.history, self.payments, self.sign_out):
            layout.addWidget(button)
        self.history.clicked.connect(lambda: self.page_wanted.emit("history"))
        self.payments.clicked.connect(lambda: self.page_wanted.emit("payments"))
        self.sign_out.clicked.connect(self.sign_out_wanted)

    def set_account(self, username: str, account: dict) -> None:
        self.who.setText(f"{username} · account {account['name']}")
        self.set_balance(account["balance"], account["currency"])

    def set_balance(self, balance: str | None, currency: str | None) -> None:
        if balance is not None:
            self.balance.setText(amount(balance, currency))
