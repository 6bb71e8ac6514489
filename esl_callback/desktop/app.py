"""`esl-callback-desktop`: the desktop client's entry point.

    esl-callback-desktop [--server URL] [--ca-file PEM] [--config-dir DIR]

The server address given here is filled in on the sign-in page (a different one than last time
asks to sign in again). `--ca-file` trusts a certificate authority besides the system's, for a
portal whose certificate your provider issued itself; certificates are always verified.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from esl_callback.desktop.config import DesktopConfig, default_folder


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="esl-callback-desktop", description="The Callback desktop client."
    )
    parser.add_argument("--server", help="the portal's address, e.g. https://portal.example.com")
    parser.add_argument("--ca-file", help="a certificate authority (PEM) to trust for the portal")
    parser.add_argument("--config-dir", type=Path, help="where settings and the token are kept")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    arguments = parse_arguments(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        from PySide6.QtCore import Qt
        from PySide6.QtGui import QGuiApplication
        from PySide6.QtWidgets import QApplication
    except ImportError:
        print(
            "The desktop client needs Qt for Python: pip install 'esl-callback[desktop]'",
            file=sys.stderr,
        )
        return 2
    from esl_callback.desktop.main_window import MainWindow
    from esl_callback.desktop.theme import STYLE_SHEET
    from esl_callback.desktop.token_store import choose_store

    QGuiApplication.setHighDpiScaleFactorRoundingPolicy(
        Qt.HighDpiScaleFactorRoundingPolicy.PassThrough
    )
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("esl-callback-desktop")
    app.setApplicationDisplayName("Callback")
    app.setStyleSheet(STYLE_SHEET)
    folder = arguments.config_dir or default_folder()
    config = DesktopConfig.load(folder)
    if arguments.server and arguments.server.rstrip("/") != config.server:
        config.server = arguments.server.rstrip("/")
    if arguments.ca_file:
        config.ca_file = arguments.ca_file
    window = MainWindow(config, folder, choose_store(folder))
    window.resize(960, 680)
    window.show()
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
