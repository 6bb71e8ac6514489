"""The sign-in page: the server's address, the portal's username and password."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from esl_callback.desktop.api_client import is_plain_http_off_this_machine, normalise_server


class SignInView(QWidget):
    """Emits `submitted(server, username, password)`; the window answers with `show_error`."""

    submitted = Signal(str, str, str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("page")
        card = QFrame(objectName="signInCard")
        card.setFixedWidth(460)
        title = QLabel("Callback", objectName="signInTitle")
        intro = QLabel("Sign in with the username and password of your web portal.")
        intro.setWordWrap(True)
        intro.setObjectName("hint")
        self.server = QLineEdit(placeholderText="https://portal.example.com")
        self.username = QLineEdit()
        self.password = QLineEdit(echoMode=QLineEdit.EchoMode.Password)
        self.warning = QLabel(objectName="warning", wordWrap=True)
        self.warning.hide()
        self.error = QLabel(objectName="error", wordWrap=True)
        self.error.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.error.hide()
        self.button = QPushButton("Sign in", objectName="primary")
        self.button.setDefault(True)
        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        for text, field in (
            ("Se&rver", self.server),
            ("&Username", self.username),
            ("&Password", self.password),
        ):
            label = QLabel(text)
            label.setBuddy(field)
            form.addRow(label, field)
        inner = QVBoxLayout(card)
        inner.setContentsMargins(28, 24, 28, 24)
        inner.setSpacing(12)
        for widget in (title, intro):
            inner.addWidget(widget)
        inner.addLayout(form)
        inner.addWidget(self.warning)
        inner.addWidget(self.error)
        inner.addWidget(self.button)
        row = QHBoxLayout()  # not an alignment: the card's height then follows its wrapped text
        row.addStretch(1)
        row.addWidget(card)
        row.addStretch(1)
        outer = QVBoxLayout(self)
        outer.addStretch(1)
        outer.addLayout(row)
        outer.addStretch(2)
        self.button.clicked.connect(self.submit)
        for field in (self.server, self.username, self.password):
            field.returnPressed.connect(self.submit)
        self.server.textChanged.connect(self.check_server)

    def prefill(self, server: str, username: str) -> None:
        self.server.setText(server)
        self.username.setText(username)
        self.password.clear()
        first_empty = next((f for f in (self.server, self.username) if not f.text()), None)
        (first_empty or self.password).setFocus()

    def check_server(self, text: str) -> None:
        try:
            plain = is_plain_http_off_this_machine(normalise_server(text))
        except ValueError:
            plain = False
        self.warning.setText(
            "This address is not encrypted (http://): your password would travel in clear. "
            "Use https:// if your provider offers it."
        )
        self.warning.setVisible(plain)

    def submit(self) -> None:
        if not self.button.isEnabled():
            return
        username = self.username.text().strip()
        if not self.server.text().strip():
            self.show_error("Enter the server address, e.g. https://portal.example.com.")
            self.server.setFocus()
        elif not username or not self.password.text():
            self.show_error("Enter your username and password.")
            (self.password if username else self.username).setFocus()
        else:
            self.submitted.emit(self.server.text().strip(), username, self.password.text())

    def set_busy(self, busy: bool) -> None:
        for widget in (self.server, self.username, self.password, self.button):
            widget.setEnabled(not busy)
        self.button.setText("Signing in…" if busy else "Sign in")
        if busy:
            self.error.hide()

    def show_error_of(self, error: Exception) -> None:
        self.show_error(getattr(error, "message", str(error)))

    def show_error(self, message: str) -> None:
        self.set_busy(False)
        self.error.setText(message)
        self.error.show()
        self.password.clear()
        self.password.setFocus()
