"""Server-Sent Events: the live status of one request, pushed at each change (no polling).

The stream subscribes to the status hub first, then sends the current snapshot, then a new one
each time the dialer reports a change, and after `HEARTBEAT_SECONDS` of silence (so that a dead
client is noticed). It ends with an `end` event once the request has ended and its
legs are billed (or `SETTLE_SECONDS` after it ended, if a leg's bill never comes); a browser's
EventSource that loses the connection before that reconnects by itself and gets a fresh snapshot.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

from flask import Response
from gevent.queue import Empty

from esl_callback.web import history
from esl_callback.web.portal import Portal

HEARTBEAT_SECONDS = 15.0
SETTLE_SECONDS = 30.0
RETRY_MILLISECONDS = 2000


def event(name: str, data: Any) -> str:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def status_events(
    portal: Portal,
    account_id: int,
    request_id: int,
    render: Callable[[dict[str, Any]], Any] = lambda snap: snap,
    heartbeat: float = HEARTBEAT_SECONDS,
) -> Iterator[str]:
    """`status` events (`render(snapshot)` as JSON) for one of the account's requests."""
    with portal.hub.subscribe(request_id) as inbox:
        yield f"retry: {RETRY_MILLISECONDS}\n\n"
        ended_at: float | None = None
        while True:
            snap = portal.run(history.request_status, account_id, request_id)
            if snap["live"] and portal.dialer is not None:
                portal.dialer.follow(request_id)
            yield event("status", render(snap))
            if snap["final"]:
                break
            if not snap["live"]:
                ended_at = ended_at or time.monotonic()
                if time.monotonic() - ended_at > SETTLE_SECONDS:
                    break
            try:
                inbox.get(timeout=heartbeat)
            except Empty:
                continue  # a fresh snapshot doubles as the heartbeat
            while not inbox.empty():  # several changes at once: one fresh snapshot is enough
                inbox.get_nowait()
        yield event("end", {"id": request_id})


def stream(events: Iterator[str]) -> Response:
    return Response(
        events,
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
