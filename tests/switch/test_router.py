"""EventRouter: events reach the right call, in order, and no call can stall another."""

from __future__ import annotations

from collections import Counter

import gevent
import gevent.event
import pytest

from esl_callback.switch.protocol import Frame
from esl_callback.switch.router import EventRouter


def event(name: str, unique_id: str = "", **headers: str) -> Frame:
    pairs = [("Event-Name", name)]
    if unique_id:
        pairs.append(("Unique-ID", unique_id))
    pairs.extend((key.replace("__", "-"), value) for key, value in headers.items())
    return Frame(pairs)


def settle(router: EventRouter) -> None:
    with gevent.Timeout(5):
        while not router.idle():
            gevent.sleep(0.001)


def test_events_of_one_call_are_handled_in_arrival_order() -> None:
    router = EventRouter()
    seen: list[str] = []

    def handler(ev: Frame, node: str) -> None:
        gevent.sleep(0.001 if ev.get("Event-Name") == "CHANNEL_CREATE" else 0)  # yields mid-way
        seen.append(f"{node}:{ev.get('Event-Name')}")

    router.register("42", handler)
    router.bind("uuid-a", "42")
    for name in ("CHANNEL_CREATE", "CHANNEL_PROGRESS", "CHANNEL_ANSWER", "CHANNEL_HANGUP"):
        router.dispatch(event(name, "uuid-a"), "fs1")
    settle(router)
    assert seen == [
        "fs1:CHANNEL_CREATE",
        "fs1:CHANNEL_PROGRESS",
        "fs1:CHANNEL_ANSWER",
        "fs1:CHANNEL_HANGUP",
    ]


def test_a_blocked_handler_of_one_call_does_not_stall_another_call() -> None:
    router = EventRouter()
    release = gevent.event.Event()
    handled_b = gevent.event.Event()
    order_a: list[str] = []

    def slow_a(ev: Frame, node: str) -> None:
        release.wait()
        order_a.append(ev.get("Event-Name") or "")

    router.register("a", slow_a)
    router.register("b", lambda ev, node: handled_b.set())
    router.bind("uuid-a", "a")
    router.bind("uuid-b", "b")
    router.dispatch(event("CHANNEL_ANSWER", "uuid-a"))
    router.dispatch(event("CHANNEL_HANGUP", "uuid-a"))
    router.dispatch(event("CHANNEL_ANSWER", "uuid-b"))

    assert handled_b.wait(2), "call b waited for call a's handler"
    assert order_a == []
    assert router.backlog() == 1  # call a's HANGUP waits behind its blocked ANSWER
    release.set()
    settle(router)
    assert order_a == ["CHANNEL_ANSWER", "CHANNEL_HANGUP"]
    assert router.backlog() == 0


def test_an_unbound_channel_is_routed_by_our_request_variable_and_then_bound() -> None:
    router = EventRouter()
    seen: list[tuple[str, str]] = []
    router.register("42", lambda ev, node: seen.append((ev.get("Event-Name"), ev.get("Unique-ID"))))

    router.dispatch(event("CHANNEL_CREATE", "leg-a", variable_callback_request_id="42"))
    router.dispatch(event("CHANNEL_ANSWER", "leg-a"))  # no variable: found by the binding
    router.dispatch(event("CHANNEL_CREATE", "other", variable_callback_request_id="41"))
    settle(router)

    assert seen == [("CHANNEL_CREATE", "leg-a"), ("CHANNEL_ANSWER", "leg-a")]
    assert router.dropped == Counter(CHANNEL_CREATE=1)


def test_a_background_job_reaches_the_call_its_job_uuid_is_bound_to() -> None:
    router = EventRouter()
    seen: list[bytes] = []
    router.register("7", lambda ev, node: seen.append(ev.body))
    router.bind("job-1", "7")
    router.dispatch(Frame([("Event-Name", "BACKGROUND_JOB"), ("Job-UUID", "job-1")], b"+OK x\n"))
    settle(router)
    assert seen == [b"+OK x\n"]


def test_unclaimed_events_go_to_the_handler_of_their_name_or_custom_subclass() -> None:
    router = EventRouter()
    seen: list[str] = []
    router.on("MESSAGE", lambda ev, node: seen.append("message:" + ev.text))
    router.on("sofia::register", lambda ev, node: seen.append("register"))
    router.dispatch(Frame([("Event-Name", "MESSAGE")], b"CALL 4930"))
    router.dispatch(event("CUSTOM", Event__Subclass="sofia::register"))
    router.dispatch(event("CUSTOM", Event__Subclass="sofia::unregister"))
    router.dispatch(event("CHANNEL_CREATE", "stranger"))
    settle(router)
    assert seen == ["message:CALL 4930", "register"]
    assert (router.dispatched, router.dropped.total()) == (2, 2)


def test_a_failing_handler_is_logged_and_the_next_event_still_runs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    router = EventRouter()
    seen: list[str] = []

    def handler(ev: Frame, node: str) -> None:
        if ev.get("Event-Name") == "CHANNEL_ANSWER":
            raise RuntimeError("boom")
        seen.append(ev.get("Event-Name") or "")

    router.register("9", handler)
    router.bind("uuid-9", "9")
    router.dispatch(event("CHANNEL_ANSWER", "uuid-9"), "fs1")
    router.dispatch(event("CHANNEL_HANGUP", "uuid-9"), "fs1")
    settle(router)
    assert seen == ["CHANNEL_HANGUP"]
    assert router.handler_errors == 1
    assert "channel uuid-9" in caplog.text and "call 9" in caplog.text


def test_unregistering_a_call_forgets_its_bindings() -> None:
    router = EventRouter()
    router.register("5", lambda ev, node: None)
    router.bind("uuid-5", "5")
    router.unregister("5")
    router.dispatch(event("CHANNEL_HANGUP", "uuid-5", variable_callback_request_id="5"))
    assert router.dropped == Counter(CHANNEL_HANGUP=1)
    with pytest.raises(KeyError):
        router.bind("uuid-5", "5")


def test_an_inline_call_is_handled_within_dispatch_and_its_errors_are_counted() -> None:
    router = EventRouter()
    seen: list[str] = []

    def handler(ev: Frame, node: str) -> None:
        if ev.get("Event-Name") == "CHANNEL_PROGRESS":
            raise RuntimeError("handler bug")
        seen.append(ev.get("Event-Name") or "")

    router.register("8", handler, inline=True)
    router.bind("uuid-8", "8")
    router.dispatch(event("CHANNEL_ANSWER", "uuid-8"), "fs1")
    assert seen == ["CHANNEL_ANSWER"]  # no greenlet had to run
    router.dispatch(event("CHANNEL_PROGRESS", "uuid-8"), "fs1")
    router.dispatch(event("CHANNEL_HANGUP", "uuid-8"), "fs1")
    assert seen == ["CHANNEL_ANSWER", "CHANNEL_HANGUP"]
    assert router.handler_errors == 1 and router.idle()
