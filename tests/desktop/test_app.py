"""The application as installed: its command, and its window on a high-DPI screen."""

from __future__ import annotations

import configparser
import os
import subprocess
import sys
from pathlib import Path

import pytest
from desktop_helpers import ROOT, SCREENSHOTS

pytestmark = pytest.mark.desktop
HERE = Path(__file__).resolve().parent


def run(*args: str, **env: str) -> subprocess.CompletedProcess:
    environ = {**os.environ, "QT_QPA_PLATFORM": "offscreen", **env}
    environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), environ.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, env=environ, timeout=60
    )


def test_esl_callback_desktop_is_the_desktop_extras_command() -> None:
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    scripts = setup["options.entry_points"]["console_scripts"]
    assert "esl-callback-desktop = esl_callback.desktop.app:main" in scripts
    assert "PySide6-Essentials" in setup["options.extras_require"]["desktop"]
    usage = run("-m", "esl_callback.desktop.app", "--help")
    assert usage.returncode == 0, usage.stderr
    assert "--server" in usage.stdout and "--ca-file" in usage.stdout


def test_the_window_is_drawn_at_twice_the_pixels_on_a_high_dpi_screen(tmp_path: Path) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    picture = SCREENSHOTS / "09-high-dpi-sign-in.png"
    drawn = run(str(HERE / "high_dpi_window.py"), str(picture), str(tmp_path), QT_SCALE_FACTOR="2")
    assert drawn.returncode == 0, drawn.stderr
    width, height, pixels_wide, pixels_high, ratio = drawn.stdout.split()
    assert (int(width), int(height)) == (800, 600)  # the same layout, in logical pixels
    assert (int(pixels_wide), int(pixels_high), float(ratio)) == (1600, 1200, 2.0)
