"""HTTPS: certificates are verified. A portal whose certificate the computer does not trust is
refused with a sentence before anything is sent; trusting its authority (--ca-file) lets the
client sign in and follow a call's live status over HTTPS."""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from desktop_helpers import WAIT_MS, screenshot, sign_in
from desktop_platform import FRIEND, Platform
from tls_front import TlsFront

from esl_callback.desktop.main_window import MainWindow

pytestmark = pytest.mark.desktop


@pytest.fixture
def front(platform: Platform) -> Iterator[tuple[TlsFront, trustme.CA]]:
    authority = trustme.CA()
    port = urllib.parse.urlsplit(platform.url).port
    assert port
    running = TlsFront(port, authority)
    yield running, authority
    running.close()


def test_a_certificate_the_computer_does_not_trust_is_refused_before_anything_is_sent(
    qtbot: Any, open_window: Callable[..., MainWindow], front: tuple[TlsFront, trustme.CA]
) -> None:
    tls, _ = front
    window = open_window(tls.url)
    page = window.sign_in
    page.username.setText("tls")
    page.password.setText("desktop password")
    page.button.click()
    qtbot.waitUntil(page.error.isVisible, timeout=WAIT_MS)
    assert page.error.text().startswith("The server's certificate is not trusted (")
    assert "the connection was refused and nothing was sent" in page.error.text()
    qtbot.waitUntil(lambda: tls.refused_handshakes == 1, timeout=WAIT_MS)  # its side of it
    assert tls.passed_on == 0
    screenshot(window, "08-certificate-not-trusted")


def test_with_its_authority_trusted_the_client_signs_in_and_follows_a_call_over_https(
    qtbot: Any,
    open_window: Callable[..., MainWindow],
    front: tuple[TlsFront, trustme.CA],
    tmp_path: Path,
) -> None:
    tls, authority = front
    ca_file = tmp_path / "provider-ca.pem"
    authority.cert_pem.write_to_path(str(ca_file))
    window = open_window(tls.url, ca_file=str(ca_file))
    sign_in(qtbot, window, "tls")
    assert window.header.balance.text() == "10.00 EUR"
    ended: list[dict] = []
    window.calls.ended.connect(ended.append)
    window.call_number(FRIEND)
    qtbot.waitUntil(lambda: bool(ended), timeout=60_000)
    assert ended[0]["state"] == "completed"
    assert tls.passed_on >= 3 and tls.refused_handshakes == 0
