"""The simulator's event bus: a channel's data is built only for an event a listener takes,
and as the channel is when the event fires."""

from __future__ import annotations

from esl_callback.simulator.clock import SimClock
from esl_callback.simulator.events import Event, EventBus, Identity


class Listener:
    """An EventSink that takes the events its `accepts` rule lets through."""

    route = None

    def __init__(self, accepts=lambda event: True) -> None:
        self.rule = accepts
        self.received: list[Event] = []

    def wants(self, name: str, subclass: str | None, unique_id: str | None) -> bool:
        return True

    def accepts(self, event: Event) -> bool:
        return self.rule(event)

    def deliver(self, event: Event) -> None:
        self.received.append(event)


class ChannelData:
    """A channel's data that counts how often it is built."""

    def __init__(self) -> None:
        self.state = "CS_EXECUTE"
        self.builds = 0

    def __call__(self) -> list[tuple[str, str]]:
        self.builds += 1
        return [("Channel-State", self.state), ("Unique-ID", "u1")]


def bus_with(*listeners: Listener) -> EventBus:
    bus = EventBus(SimClock(), Identity("core", "host", "127.0.0.1", "::1"))
    for listener in listeners:
        bus.subscribe(listener)
    return bus


def test_an_event_every_filter_rejects_by_name_is_not_built_and_not_returned() -> None:
    leg_socket = Listener(accepts=lambda event: event.get("Event-Name") == "CHANNEL_HANGUP")
    data = ChannelData()
    assert bus_with(leg_socket).fire("DTMF", data, unique_id="u1") is None
    assert data.builds == 0
    assert leg_socket.received == []


def test_a_filter_on_channel_data_builds_it_once_to_decide() -> None:
    by_uuid = Listener(accepts=lambda event: event.get("Unique-ID") == "u1")
    other = Listener(accepts=lambda event: event.get("Unique-ID") == "u2")
    data = ChannelData()
    event = bus_with(other, by_uuid).fire("DTMF", data, unique_id="u1")
    assert data.builds == 1
    assert by_uuid.received == [event] and other.received == []
    assert event.get("Channel-State") == "CS_EXECUTE"


def test_a_taken_event_holds_the_channel_as_it_was_when_fired() -> None:
    listener = Listener()
    data = ChannelData()
    event = bus_with(listener).fire("CHANNEL_STATE", data, unique_id="u1")
    data.state = "CS_HANGUP"  # the channel moves on before the listener writes the event
    assert listener.received == [event]
    assert event.get("Channel-State") == "CS_EXECUTE"
    assert event.headers[0] == ("Event-Name", "CHANNEL_STATE")
    assert event.headers[-2:] == [("Channel-State", "CS_EXECUTE"), ("Unique-ID", "u1")]
    assert data.builds == 1


def test_a_header_missing_everywhere_is_none_after_building_the_rest_once() -> None:
    listener = Listener(accepts=lambda event: event.get("Variable-Nowhere") is None)
    data = ChannelData()
    event = bus_with(listener).fire("CHANNEL_STATE", data, unique_id="u1")
    assert event.get("Variable-Nowhere") is None
    assert data.builds == 1
