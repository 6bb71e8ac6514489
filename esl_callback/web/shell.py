"""The portal's shell as an installable app: the web app manifest, the service worker, the
offline page, and the branding (`config.BrandingSettings`) pages and the app are drawn with.

The service worker (static/service-worker.js, served at /sw.js so that it controls every page)
keeps only the shell listed by `shell_paths` (CSS, JS, icons, the offline page; none of them
depends on who is signed in). Pages are always fetched from the network and never stored; when
the network fails the offline page is shown. Anything else, the API, live status and every form
(POST), never passes through it: no call is placed, queued or replayed offline.
"""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Response, abort, render_template, send_file, url_for

from esl_callback.config import LOGO_TYPES
from esl_callback.web.portal import portal

blueprint = Blueprint("shell", __name__)

STATIC = resources.files("esl_callback.web") / "static"
WORKER = "service-worker.js"
# The PNG icons browsers require of an installable app (192 and 512 pixels), and iOS's.
APP_ICONS = (("icon-192.png", "192x192"), ("icon-512.png", "512x512"))
TOUCH_ICON = "icon-180.png"
STATIC_SHELL = ("app.css", "app.js", "icon.svg", TOUCH_ICON, *(name for name, _ in APP_ICONS))
BACKGROUND = "#ffffff"


def logo_url(branding: Any) -> str | None:
    """Where pages load the configured logo from: this portal (a file) or its https:// address."""
    if branding.logo is None:
        return None
    return url_for("shell.logo") if branding.logo_is_file else branding.logo


def content_security_policy(branding: Any) -> str:
    """The pages' policy: everything from this portal; images also from the logo's web address."""
    images = "'self' data:"
    if branding.logo is not None and not branding.logo_is_file:
        parts = urlsplit(branding.logo)
        images += f" {parts.scheme}://{parts.netloc}"
    return (
        f"default-src 'self'; script-src 'self'; style-src 'self'; img-src {images}; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    )


def shell_paths(branding: Any) -> list[str]:
    """What the service worker keeps: the same for everyone, whoever is signed in."""
    paths = [url_for("shell.offline"), url_for("shell.manifest"), url_for("shell.brand_css")]
    paths += [url_for("static", filename=name) for name in STATIC_SHELL]
    if branding.logo_is_file:
        paths.append(url_for("shell.logo"))
    return paths


@blueprint.get("/manifest.webmanifest")
def manifest() -> Response:
    branding = portal().settings.branding
    icons = [
        {"src": url_for("static", filename=name), "sizes": sizes, "type": "image/png"}
        for name, sizes in APP_ICONS
    ]
    logo = logo_url(branding)
    if logo is not None:
        kind = LOGO_TYPES.get(Path(urlsplit(branding.logo).path).suffix.lower())
        icons.insert(0, {"src": logo, "sizes": "any", **({"type": kind} if kind else {})})
    body = {
        "id": url_for("pages.home"),
        "name": branding.product_name,
        "short_name": branding.product_name,
        "description": f"Call anyone through {branding.product_name}: we call you, then connect.",
        "start_url": url_for("pages.home"),
        "scope": url_for("pages.home"),
        "display": "standalone",
        "background_color": BACKGROUND,
        "theme_color": branding.primary_colour,
        "icons": icons,
    }
    return Response(json.dumps(body, indent=2), mimetype="application/manifest+json")


@blueprint.get("/sw.js")
def service_worker() -> Response:
    """The worker with its shell and version (a digest of the shell: a change installs anew)."""
    branding = portal().settings.branding
    paths = shell_paths(branding)
    digest = hashlib.sha256(json.dumps([paths, repr(branding)]).encode())
    for name in (*STATIC_SHELL, WORKER):
        digest.update((STATIC / name).read_bytes())
    head = (
        f"const VERSION = {json.dumps('shell-' + digest.hexdigest()[:16])};\n"
        f"const SHELL = {json.dumps(paths)};\n"
        f"const OFFLINE = {json.dumps(url_for('shell.offline'))};\n"
    )
    response = Response(head + (STATIC / WORKER).read_text("utf-8"), mimetype="text/javascript")
    response.headers["Cache-Control"] = "no-cache"
    return response


@blueprint.get("/offline")
def offline() -> str:
    """Shown by the service worker when the portal cannot be reached: nobody's data in it."""
    return render_template("offline.html", user=None)


@blueprint.get("/brand.css")
def brand_css() -> Response:
    branding = portal().settings.branding
    css = (
        f":root {{ --accent: {branding.primary_colour}; "
        f"--brand-accent: {branding.accent_colour}; }}\n"
    )
    return Response(css, mimetype="text/css")


@blueprint.get("/brand/logo")
def logo() -> Any:
    branding = portal().settings.branding
    if not branding.logo_is_file:
        abort(404)
    path = Path(branding.logo)
    return send_file(path.resolve(), mimetype=LOGO_TYPES[path.suffix.lower()])
