"""The portal over real sockets: gevent's WSGI server with TCP_NODELAY, live status to two tabs.

The server is the one the controller starts (`web_helpers.start_platform`), as `serve` runs it.
Clients run in real threads (blocking sockets) while this thread's gevent hub serves them.
"""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Callable
from typing import Any

import gevent
import gevent.socket
import pytest
from flask import Flask
from web_helpers import SILENT, User, WebPlatform

from esl_callback.web.server import NoDelayWSGIServer


def in_thread(fn: Callable[..., Any], *args: Any) -> gevent.event.AsyncResult:
    """Run a blocking client in a real thread; waiting for it lets the hub serve meanwhile."""
    return gevent.get_hub().threadpool.spawn(fn, *args)


@pytest.fixture
def server(platform: WebPlatform) -> Any:
    """The controller's web server."""
    return platform.service.web_server


def keep_alive_gets(port: int, path: str, headers: dict[str, str], count: int) -> list[int]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    statuses = []
    for _ in range(count):
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        response.read()
        statuses.append(response.status)
    connection.close()
    return statuses


def test_accepted_connections_get_tcp_nodelay(app: Flask) -> None:
    listener = gevent.socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    client = gevent.socket.create_connection(listener.getsockname())
    accepted, address = listener.accept()
    assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0
    handler = gevent.spawn(NoDelayWSGIServer(("127.0.0.1", 0), app).handle, accepted, address)
    gevent.sleep(0.05)  # the handler has set the option and now waits for a request
    assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    client.close()
    handler.join(timeout=2)
    listener.close()


def test_the_server_answers_many_requests_on_one_connection(server: Any, alice: User) -> None:
    statuses = in_thread(
        keep_alive_gets, server.server_port, "/api/v1/account", alice.auth, 20
    ).get(timeout=20)
    assert statuses == [200] * 20


def follow(port: int, path: str, headers: dict[str, str]) -> list[dict[str, Any]]:
    """Read a request's event stream until its `end` event; the status snapshots seen."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    connection.request("GET", path, headers=headers)
    response = connection.getresponse()
    assert response.getheader("Content-Type").startswith("text/event-stream")
    seen, name = [], None
    for raw in response:
        line = raw.decode().rstrip("\n")
        if line.startswith("event: "):
            name = line.removeprefix("event: ")
        elif line.startswith("data: ") and name == "status":
            seen.append(json.loads(line.removeprefix("data: ")))
        elif line.startswith("data: ") and name == "end":
            break
    connection.close()
    return seen


def wait_for(condition: Callable[[], bool], timeout: float = 10) -> None:
    with gevent.Timeout(timeout):
        while not condition():
            gevent.sleep(0.01)


def test_two_tabs_following_one_request_see_the_same_changes_live(
    platform_with: Callable[..., WebPlatform], alice: User
) -> None:
    platform = platform_with(callback={"originate_timeout_seconds": 5})
    response = platform.client().post(
        "/api/v1/requests", json={"destination": SILENT}, headers=alice.auth
    )
    request_id = response.json["id"]
    path = f"/api/v1/requests/{request_id}/events"
    tabs = [in_thread(follow, platform.port, path, alice.auth) for _ in range(2)]
    hub = platform.app.extensions["esl_callback"].hub
    wait_for(lambda: hub.subscriber_count(request_id) == 2)

    seen = [tab.get(timeout=20) for tab in tabs]
    for snapshots in seen:
        states = [(s["state"], [leg["status"] for leg in s["legs"]]) for s in snapshots]
        assert ("calling_destination", ["answered", "ringing"]) in states
        assert states[-1] == ("failed", ["hung_up", "no_answer"])
    assert seen[0][-1]["legs"] == seen[1][-1]["legs"]
    wait_for(lambda: hub.subscriber_count(request_id) == 0)
