"""The portal over real sockets: gevent's WSGI server with TCP_NODELAY, live status to two tabs.

Clients run in real threads (blocking sockets) while this thread's gevent hub serves them.
"""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Callable, Iterator
from typing import Any

import gevent
import gevent.socket
import pytest
from flask import Flask
from web_helpers import RecordingDialer, User

from esl_callback.callback import requests
from esl_callback.callback.requests import State
from esl_callback.models import Leg
from esl_callback.web import serve_web
from esl_callback.web.server import NoDelayWSGIServer


def in_thread(fn: Callable[..., Any], *args: Any) -> gevent.event.AsyncResult:
    """Run a blocking client in a real thread; waiting for it lets the hub serve meanwhile."""
    return gevent.get_hub().threadpool.spawn(fn, *args)


@pytest.fixture
def server(app: Flask) -> Iterator[Any]:
    running = serve_web(app, "127.0.0.1", 0)
    yield running
    running.stop(timeout=1)


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
    app: Flask, server: Any, alice: User, dialer: RecordingDialer
) -> None:
    request = dialer.start_callback(alice.account, "4930111111", "4940222222", "simultaneous")
    path = f"/api/v1/requests/{request.id}/events"
    tabs = [in_thread(follow, server.server_port, path, alice.auth) for _ in range(2)]
    hub = app.extensions["esl_callback"].hub
    wait_for(lambda: hub.subscriber_count(request.id) == 2)

    requests.advance(request.id, State.CALLING_SOURCE)
    for role, number in (("a", "4930111111"), ("b", "4940222222")):
        Leg.create(request=request.id, leg=role, uuid=f"leg-{role}", number=number, state="ringing")
    dialer.notify(request.id)
    gevent.sleep(0.1)
    for uuid, cause in (("leg-b", "USER_BUSY"), ("leg-a", "NORMAL_CLEARING")):
        Leg.update(state="hung_up", hangup_cause=cause, billed=True, billsec=0, cost=0).where(
            Leg.uuid == uuid
        ).execute()
    requests.finish(request.id, State.FAILED, failure_cause="USER_BUSY")
    dialer.notify(request.id)

    seen = [tab.get(timeout=20) for tab in tabs]
    for snapshots in seen:
        states = [(s["state"], [leg["status"] for leg in s["legs"]]) for s in snapshots]
        assert states[0] == ("queued", ["queued", "queued"])
        assert ("calling_source", ["ringing", "ringing"]) in states
        assert states[-1] == ("failed", ["hung_up", "busy"])
    assert [s["legs"] for s in seen[0]][-1] == [s["legs"] for s in seen[1]][-1]
    wait_for(lambda: hub.subscriber_count(request.id) == 0)
