"""What the desktop client keeps between runs: the server address, the last username, an
optional certificate authority file and the refresh period. Kept as JSON in the user's
configuration folder (`config_dir`), readable by the user only; the token is kept apart
(`token_store`)."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

CONFIG_FILE = "desktop.json"
ENVIRONMENT_DIR = "ESL_CALLBACK_DESKTOP_DIR"


@dataclass
class DesktopConfig:
    server: str = ""
    username: str = ""
    ca_file: str | None = None  # a certificate authority to trust besides the system's
    timeout_seconds: float = 10.0  # each request to the server
    refresh_seconds: int = 60  # the balance and recent calls, while the window is open

    @classmethod
    def load(cls, folder: Path) -> DesktopConfig:
        """The configuration kept in `folder`; the defaults if there is none or it is unreadable."""
        try:
            data = json.loads((folder / CONFIG_FILE).read_text("utf-8"))
        except (OSError, ValueError):
            return cls()
        known = {f.name for f in fields(cls)}
        return (
            cls(**{k: v for k, v in data.items() if k in known})
            if isinstance(data, dict)
            else cls()
        )

    def save(self, folder: Path) -> None:
        """Write it to `folder` (created readable by the user only)."""
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = folder / CONFIG_FILE
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as out:
            json.dump(asdict(self), out, indent=2)


def default_folder() -> Path:
    """$ESL_CALLBACK_DESKTOP_DIR, else the platform's configuration folder for the app."""
    override = os.environ.get(ENVIRONMENT_DIR)
    if override:
        return Path(override)
    from PySide6.QtCore import QStandardPaths

    location = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppConfigLocation)
    return Path(location or Path.home() / ".config" / "esl-callback-desktop")
