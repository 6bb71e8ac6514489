"""Fixtures for the desktop client's tests: Qt offscreen, the real platform (`desktop_platform`),
windows signed in as its customers, and screenshots in test-artifacts/desktop/.

Every wait is on a condition (`qtbot.waitUntil`, signals) with a generous timeout: the tests
share a small machine with others.
"""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

if not os.environ.get("CI"):  # in CI (make test installs them) a missing one fails the run
    pytest.importorskip("PySide6", reason="the desktop extra is not installed")
    pytest.importorskip("pytestqt", reason="pytest-qt (the test-desktop extra) is not installed")

sys.path.insert(0, str(Path(__file__).resolve().parent))

import desktop_platform
from desktop_helpers import sign_in
from desktop_platform import Platform
from PySide6.QtWidgets import QApplication

from esl_callback.desktop.config import DesktopConfig
from esl_callback.desktop.main_window import MainWindow
from esl_callback.desktop.theme import STYLE_SHEET
from esl_callback.desktop.token_store import FileTokenStore


@pytest.fixture(scope="session")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    running = desktop_platform.start(tmp_path_factory.mktemp("desktop-platform"))
    yield running
    running.stop()


@pytest.fixture(scope="session", autouse=True)
def styled(qapp: QApplication) -> None:
    qapp.setStyleSheet(STYLE_SHEET)


@pytest.fixture
def open_window(qtbot: Any, tmp_path: Path) -> Iterator[Callable[..., MainWindow]]:
    """A window at 800x600 (the smallest it is made for) with its own settings folder."""
    windows: list[MainWindow] = []

    def make(server: str = "", folder: Path | None = None, **settings: Any) -> MainWindow:
        folder = folder or tmp_path / f"settings-{len(windows)}"
        config = DesktopConfig.load(folder)
        if server:
            config.server = server
        for name, value in settings.items():
            setattr(config, name, value)
        window = MainWindow(config, folder, FileTokenStore(folder))
        qtbot.addWidget(window)
        window.resize(800, 600)
        window.show()
        windows.append(window)
        return window

    yield make
    for window in windows:
        window.close()


@pytest.fixture
def signed_in(
    qtbot: Any, platform: Platform, open_window: Callable[..., MainWindow]
) -> Callable[[str], MainWindow]:
    """A window signed in as one of the platform's customers, its account loaded."""

    def make(username: str) -> MainWindow:
        window = open_window(platform.url)
        sign_in(qtbot, window, username)
        return window

    return make
