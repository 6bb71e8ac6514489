"""Draw the desktop client's window (the sign-in page) on a screen scaled by QT_SCALE_FACTOR and
save it; print its logical size, the picture's size and the device pixel ratio.

    QT_SCALE_FACTOR=2 python tests/desktop/high_dpi_window.py OUT.png SETTINGS_DIR
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtWidgets import QApplication

from esl_callback.desktop.config import DesktopConfig
from esl_callback.desktop.main_window import MainWindow
from esl_callback.desktop.theme import STYLE_SHEET
from esl_callback.desktop.token_store import FileTokenStore

app = QApplication(sys.argv[:1])
app.setStyleSheet(STYLE_SHEET)
out, folder = Path(sys.argv[1]), Path(sys.argv[2])
window = MainWindow(
    DesktopConfig(server="https://portal.example.com"), folder, FileTokenStore(folder)
)
window.resize(800, 600)
window.show()
app.processEvents()
picture = window.grab()
picture.save(str(out))
print(
    window.width(), window.height(), picture.width(), picture.height(), picture.devicePixelRatio()
)
window.close()
