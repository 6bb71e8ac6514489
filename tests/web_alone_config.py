"""The configuration of `esl-callback web` (the portal run alone) for a test: one writer for the
API tests (tests/e2e) and the browser tests' portal process (tests/web)."""

from __future__ import annotations

from pathlib import Path


def write_web_alone_config(
    path: Path, database_url: str, port: int, secret: str, controller_url: str
) -> Path:
    """A portal on 127.0.0.1:`port`, on serve's database and secret, placing calls through the
    serve whose portal is at `controller_url`; no metrics server."""
    path.write_text(
        f'database:\n  url: "{database_url}"\n'
        f"web:\n  bind: 127.0.0.1\n  port: {port}\n  secret: {secret}\n"
        f"  secure_cookies: false\n  controller_url: {controller_url}\n"
        "metrics:\n  enabled: false\n"
    )
    return path
