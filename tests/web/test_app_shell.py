"""The portal's shell: branding from the configuration, the web app manifest and its icons, the
service worker's script and shell, the offline page. Through Flask's test client; the browser
tests (test_portal_pages.py) install and use the app in chromium."""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from esl_callback import accounts
from esl_callback.config import settings_from_mapping
from esl_callback.db import Database
from esl_callback.web import create_app

PASSWORD = "correct horse battery"
SHELL = re.compile(r"^const SHELL = (\[.*\]);$", re.MULTILINE)


@pytest.fixture
def portal_with(tmp_path: Path) -> Any:
    """A portal (no switch) on a fresh SQLite file, with the given branding section."""
    databases: list[Database] = []

    def start(**branding: Any) -> FlaskClient:
        settings = settings_from_mapping(
            {"web": {"secret": "s" * 40}, "branding": branding}, environ={}
        )
        database = Database(f"sqlite:///{tmp_path / f'shell-{len(databases)}.db'}")
        database.init()
        databases.append(database)
        return create_app(settings, database, None).test_client()

    yield start
    for database in databases:
        database.close()


def log_in(client: FlaskClient) -> None:
    accounts.add_web_user(accounts.create_account("alice"), "alice", PASSWORD)
    page = client.get("/login").text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    answer = client.post(
        "/login", data={"username": "alice", "password": PASSWORD, "csrf_token": csrf}
    )
    assert answer.status_code == 302


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_the_manifest_names_the_product_and_its_png_icons_are_the_sizes_it_says(
    portal_with: Any,
) -> None:
    client = portal_with(product_name="Acme Calls", primary_colour="#1d4d1d")
    answer = client.get("/manifest.webmanifest")
    assert answer.mimetype == "application/manifest+json"
    manifest = json.loads(answer.text)
    assert (manifest["name"], manifest["short_name"]) == ("Acme Calls", "Acme Calls")
    where = (manifest["start_url"], manifest["scope"], manifest["display"])
    assert where == ("/", "/", "standalone")
    assert manifest["theme_color"] == "#1d4d1d"
    pngs = {icon["sizes"]: icon["src"] for icon in manifest["icons"] if icon["type"] == "image/png"}
    assert set(pngs) >= {"192x192", "512x512"}  # what browsers require to install an app
    for sizes, src in pngs.items():
        icon = client.get(src)
        assert (icon.status_code, icon.mimetype) == (200, "image/png")
        assert "x".join(map(str, png_size(icon.data))) == sizes


def test_every_page_links_the_manifest_the_theme_colour_and_the_brand_in_title_and_header(
    portal_with: Any,
) -> None:
    client = portal_with(product_name="Acme Calls", primary_colour="#1d4d1d")
    page = client.get("/login").text
    assert '<link rel="manifest" href="/manifest.webmanifest">' in page
    assert '<meta name="theme-color" content="#1d4d1d">' in page
    assert "<title>Log in · Acme Calls</title>" in page
    assert re.search(r'<a class="brand" href="/">Acme Calls</a>', page)
    brand_css = client.get(re.search(r'<link rel="stylesheet" href="(/brand\.css)">', page)[1])
    assert brand_css.mimetype == "text/css"
    assert "--accent: #1d4d1d;" in brand_css.text and "--brand-accent: #b34700;" in brand_css.text


def test_a_logo_file_is_served_shown_in_the_header_and_is_the_apps_first_icon(
    portal_with: Any, tmp_path: Path
) -> None:
    logo = tmp_path / "acme.svg"
    logo.write_text('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 8 8"/>')
    client = portal_with(logo=str(logo))
    assert '<img src="/brand/logo" alt="" class="logo">' in client.get("/login").text
    served = client.get("/brand/logo")
    assert (served.status_code, served.mimetype, served.data) == (
        200,
        "image/svg+xml",
        logo.read_bytes(),
    )
    icon = json.loads(client.get("/manifest.webmanifest").text)["icons"][0]
    assert icon == {"src": "/brand/logo", "sizes": "any", "type": "image/svg+xml"}
    assert "/brand/logo" in json.loads(SHELL.search(client.get("/sw.js").text)[1])


def test_a_logo_on_the_web_is_allowed_by_the_pages_security_policy_and_nothing_else_is(
    portal_with: Any,
) -> None:
    client = portal_with(logo="https://cdn.example.com/brand/acme.png")
    answer = client.get("/login")
    assert '<img src="https://cdn.example.com/brand/acme.png" alt="" class="logo">' in answer.text
    policy = answer.headers["Content-Security-Policy"]
    assert "img-src 'self' data: https://cdn.example.com;" in policy
    assert "script-src 'self';" in policy and "default-src 'self';" in policy
    assert client.get("/brand/logo").status_code == 404
    plain = portal_with()
    assert "img-src 'self' data:;" in plain.get("/login").headers["Content-Security-Policy"]


def test_the_service_worker_keeps_only_the_shell_which_is_the_same_without_a_session(
    portal_with: Any,
) -> None:
    client = portal_with()
    worker = client.get("/sw.js")
    assert worker.mimetype == "text/javascript"
    assert worker.headers["Cache-Control"] == "no-cache"  # a new version is found at once
    shell = json.loads(SHELL.search(worker.text)[1])
    assert set(shell) == {
        "/offline",
        "/manifest.webmanifest",
        "/brand.css",
        "/static/app.css",
        "/static/app.js",
        "/static/icon.svg",
        "/static/icon-180.png",
        "/static/icon-192.png",
        "/static/icon-512.png",
    }
    anonymous = {path: client.get(path) for path in shell}
    assert {path: answer.status_code for path, answer in anonymous.items()} == dict.fromkeys(
        shell, 200
    )
    log_in(client)
    for path in shell:  # nobody's data: what a signed-in browser gets is the same
        assert client.get(path).data == anonymous[path].data, path


def test_the_offline_page_says_nothing_was_sent_and_shows_no_account(portal_with: Any) -> None:
    client = portal_with(product_name="Acme Calls")
    log_in(client)
    page = client.get("/offline").text
    assert "<h1>You are offline</h1>" in page
    assert "Acme Calls cannot be reached just now" in page
    assert "never later on their own" in page
    assert "alice" not in page and 'id="balance"' not in page


def test_a_new_shell_or_branding_is_a_new_service_worker_version(portal_with: Any) -> None:
    version = re.compile(r'^const VERSION = "(shell-[0-9a-f]{16})";$', re.MULTILINE)
    first = version.search(portal_with().get("/sw.js").text)[1]
    assert version.search(portal_with().get("/sw.js").text)[1] == first
    assert version.search(portal_with(product_name="Acme").get("/sw.js").text)[1] != first


def test_the_login_form_focuses_the_username_then_after_a_failure_the_password(
    portal_with: Any,
) -> None:
    client = portal_with()
    page = client.get("/login").text
    assert re.search(r'<input id="username"[^>]* autofocus>', page)
    assert not re.search(r'<input id="password"[^>]* autofocus', page)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    again = client.post("/login", data={"username": "alice", "password": "x", "csrf_token": csrf})
    assert re.search(r'<input id="password"[^>]* autofocus>', again.text)
    assert not re.search(r'<input id="username"[^>]* autofocus', again.text)
