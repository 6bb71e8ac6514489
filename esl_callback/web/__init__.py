"""The web portal and JSON API (see `app.create_app`), served by `server.serve_web`."""

from esl_callback.web.app import create_app
from esl_callback.web.server import serve_web

__all__ = ["create_app", "serve_web"]
