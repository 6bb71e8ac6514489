#!/usr/bin/env python3
"""Keep-alive requests per second from the portal's gevent server, with and without TCP_NODELAY.

    .venv/bin/python scripts/web_nodelay.py [--seconds 5] [--connections 10]

For each mode a server process runs the real app (SQLite in a temporary directory, one account
with an API token) through `esl_callback.web.serve_web`; this process then keeps `--connections`
HTTP/1.1 connections busy (each sends its next request as soon as the previous answer is read)
on two paths: a static asset (no database) and GET /api/v1/account (a session lookup and a query).
"""

from __future__ import annotations

import argparse
import http.client
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

PATHS = ("/static/app.css", "/api/v1/account")


def serve(nodelay: bool, directory: str) -> None:
    """The server side: print the port and the token, then serve until killed."""
    import gevent

    from esl_callback import accounts
    from esl_callback.config import settings_from_mapping
    from esl_callback.db import Database
    from esl_callback.models import WebUser
    from esl_callback.web import auth, create_app, serve_web

    database = Database(f"sqlite:///{directory}/bench.db")
    database.init()
    account = accounts.create_account("bench", default_callback_number="4930111111")
    accounts.add_web_user(account, "bench", "bench-password")
    token = auth.issue_token(WebUser.get(WebUser.username == "bench").id)
    settings = settings_from_mapping({"web": {"secret": "b" * 40}}, environ={})
    server = serve_web(create_app(settings, database, None), "127.0.0.1", 0, nodelay=nodelay)
    print(server.server_port, token, flush=True)
    gevent.wait()


def hammer(port: int, path: str, headers: dict[str, str], until: float, counts: list[int]) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    done = 0
    while time.monotonic() < until:
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        response.read()
        if response.status != 200:
            raise SystemExit(f"{path}: HTTP {response.status}")
        done += 1
    connection.close()
    counts.append(done)


def measure(nodelay: bool, seconds: float, connections: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as directory:
        mode = "--nodelay" if nodelay else "--no-nodelay"
        server = subprocess.Popen(
            [sys.executable, __file__, "--serve", mode, "--directory", directory],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            port_text, token = server.stdout.readline().split()
            headers = {"Authorization": f"Bearer {token}"}
            rates = {}
            for path in PATHS:
                counts: list[int] = []
                until = time.monotonic() + seconds
                threads = [
                    threading.Thread(
                        target=hammer, args=(int(port_text), path, headers, until, counts)
                    )
                    for _ in range(connections)
                ]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()
                rates[path] = sum(counts) / seconds
            return rates
        finally:
            server.kill()
            server.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=10)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--nodelay", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--directory", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.nodelay, args.directory)
        return
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    print(f"{args.connections} keep-alive connections, {args.seconds:g} s per path")
    print(f"{'TCP_NODELAY':<12} {'path':<18} {'requests/s':>11} {'ms/request':>11}")
    for nodelay in (False, True):
        for path, rate in measure(nodelay, args.seconds, args.connections).items():
            latency = 1000 * args.connections / rate if rate else float("inf")
            print(f"{'on' if nodelay else 'off':<12} {path:<18} {rate:>11.0f} {latency:>11.1f}")


if __name__ == "__main__":
    main()
