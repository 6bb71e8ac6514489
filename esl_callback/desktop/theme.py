"""The window's look: the portal's colours (esl_callback/web/static/app.css) as a Qt style sheet.

Sizes are in points, so the window scales with the screen's DPI. Widgets pick a style by their
object name (`primary`, `danger`, `card`, ...) or a dynamic property (`status`, `kind`)."""

from __future__ import annotations

from PySide6.QtWidgets import QWidget

ACCENT = "#0b57a4"
TEXT = "#1b1b1b"
MUTED = "#4a4a4a"
PANEL = "#f3f5f7"
LINE = "#d5dbe0"
DANGER = "#a4161a"
OK = "#1b6b2f"

STYLE_SHEET = f"""
QWidget {{ color: {TEXT}; font-size: 10pt; }}
QMainWindow, QDialog, #page {{ background: #ffffff; }}
#header {{ background: {ACCENT}; }}
#header QLabel {{ color: #ffffff; }}
#brand {{ font-size: 15pt; font-weight: 700; }}
#who {{ color: #dbe7f5; }}
#balance {{ font-size: 14pt; font-weight: 700; }}
#balanceCaption {{ color: #dbe7f5; font-size: 9pt; }}
QPushButton {{
    padding: 6px 14px; border: 1px solid {ACCENT}; border-radius: 5px;
    background: #ffffff; color: {ACCENT};
}}
QPushButton:hover {{ background: #e8f0f9; }}
QPushButton:focus {{ border: 2px solid {TEXT}; }}
QPushButton:disabled {{ color: #8a949e; border-color: {LINE}; background: {PANEL}; }}
QPushButton#primary {{ background: {ACCENT}; color: #ffffff; font-weight: 600; }}
QPushButton#primary:hover {{ background: #094a8c; }}
QPushButton#primary:disabled {{ background: #9fb6cf; border-color: #9fb6cf; }}
QPushButton#danger {{ background: {DANGER}; color: #ffffff; border-color: {DANGER}; }}
QPushButton#danger:disabled {{ background: #d9a5a7; border-color: #d9a5a7; }}
#header QPushButton {{
    background: transparent; color: #ffffff; border: 1px solid rgba(255, 255, 255, 0.55);
}}
#header QPushButton:hover {{ background: rgba(255, 255, 255, 0.15); }}
#header QPushButton:focus {{ border: 2px solid #ffffff; }}
#card {{ background: {PANEL}; border: 1px solid {LINE}; border-radius: 8px; }}
#card QLabel {{ background: transparent; }}
#cardTitle {{ font-size: 12pt; font-weight: 700; }}
#hint {{ color: {MUTED}; }}
#quote {{ color: {MUTED}; }}
#quote[kind="refused"] {{ color: {DANGER}; font-weight: 600; }}
#error {{ color: {DANGER}; font-weight: 600; }}
#warning {{ color: #7a4b00; }}
QLineEdit, QPlainTextEdit {{
    padding: 5px 6px; border: 1px solid #8a949e; border-radius: 4px; background: #ffffff;
}}
QLineEdit:focus, QPlainTextEdit:focus {{ border: 2px solid {ACCENT}; }}
QComboBox {{ padding: 4px 6px; }}
QTableWidget {{
    border: 1px solid {LINE}; gridline-color: #eef1f4; background: #ffffff;
    selection-background-color: #cfe0f3; selection-color: {TEXT};
    alternate-background-color: #f8fafb;
}}
QHeaderView::section {{
    background: {PANEL}; border: none; border-bottom: 1px solid {LINE}; padding: 5px;
    font-weight: 600;
}}
QTabWidget::pane {{ border: none; }}
QTabBar::tab {{ padding: 7px 16px; color: {MUTED}; border-bottom: 3px solid transparent; }}
QTabBar::tab:selected {{ color: {TEXT}; font-weight: 600; border-bottom: 3px solid {ACCENT}; }}
#banner {{ padding: 8px 12px; border-radius: 5px; }}
#banner[kind="error"] {{ background: #f8dcdc; color: #5c0b0e; }}
#banner[kind="notice"] {{ background: #e6f2e9; color: #14361d; }}
#state {{ font-size: 13pt; font-weight: 700; }}
#state[kind="failed"] {{ color: {DANGER}; }}
#state[kind="ok"] {{ color: {OK}; }}
#timer {{ font-size: 15pt; font-weight: 700; color: {TEXT}; }}
#role {{ font-weight: 600; }}
#facts {{ color: {MUTED}; font-size: 9pt; }}
#badge {{ padding: 2px 10px; border-radius: 9px; background: #dde2e7; }}
#badge[status="answered"], #badge[status="bridged"] {{ background: #d9efe0; color: #14361d; }}
#badge[status="busy"], #badge[status="no_answer"], #badge[status="failed"] {{
    background: #f8dcdc; color: #5c0b0e;
}}
#badge[status="ringing"], #badge[status="early_media"], #badge[status="calling"] {{
    background: #fdeccc; color: #4a2e00;
}}
#signInCard {{ background: {PANEL}; border: 1px solid {LINE}; border-radius: 10px; }}
#signInTitle {{ font-size: 18pt; font-weight: 700; color: {ACCENT}; }}
"""


def restyle(widget: QWidget, **properties: str) -> None:
    """Set dynamic properties the style sheet reads, and apply the style again."""
    for name, value in properties.items():
        widget.setProperty(name, value)
    widget.style().unpolish(widget)
    widget.style().polish(widget)
