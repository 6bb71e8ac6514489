"""Events as FreeSWITCH builds them, and the bus that hands them to ESL listeners.

An event's headers are: optional leading headers (Event-Subclass, or a sendmsg's own headers),
the core block every event gets (Event-Name .. Event-Sequence), then the event's own data.
Events are only built when some listener wants them, so an idle simulator stays cheap.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from esl_callback.simulator.clock import SimClock, gmt_stamp, local_stamp
from esl_callback.switch.protocol import (
    event_message,
    format_event_json,
    format_event_plain,
    format_event_xml,
)

Headers = list[tuple[str, str]]

# Source locations FreeSWITCH 1.10.12 reports for each event it fires (from the captures).
CALLING: dict[str, tuple[str, str, int]] = {
    "CHANNEL_CREATE": ("switch_core_state_machine.c", "switch_core_session_run", 626),
    "CHANNEL_ANSWER": ("switch_channel.c", "switch_channel_perform_mark_answered", 3846),
    "CHANNEL_PROGRESS": ("switch_channel.c", "switch_channel_perform_mark_ring_ready_value", 3505),
    "CHANNEL_PROGRESS_MEDIA": (
        "switch_channel.c",
        "switch_channel_perform_mark_pre_answered",
        3707,
    ),
    "CHANNEL_BRIDGE": ("switch_ivr_bridge.c", "switch_ivr_multi_threaded_bridge", 1689),
    "CHANNEL_UNBRIDGE": ("switch_ivr_bridge.c", "switch_ivr_multi_threaded_bridge", 1879),
    "CHANNEL_CALLSTATE": ("switch_channel.c", "switch_channel_perform_set_callstate", 301),
    "CHANNEL_EXECUTE": ("switch_core_session.c", "switch_core_session_exec", 2944),
    "CHANNEL_EXECUTE_COMPLETE": ("switch_core_session.c", "switch_core_session_exec", 2967),
    "CHANNEL_HANGUP": ("switch_channel.c", "switch_channel_perform_hangup", 3445),
    "CHANNEL_HANGUP_COMPLETE": (
        "switch_core_state_machine.c",
        "switch_core_session_reporting_state",
        943,
    ),
    "CHANNEL_DESTROY": ("switch_core_session.c", "switch_core_session_perform_destroy", 1581),
    "CHANNEL_PARK": ("switch_ivr.c", "switch_ivr_park", 1002),
    "CHANNEL_UNPARK": ("switch_ivr.c", "switch_ivr_park", 1213),
    "CHANNEL_STATE": ("switch_channel.c", "switch_channel_perform_set_running_state", 2408),
    "DTMF": ("switch_channel.c", "switch_channel_dequeue_dtmf", 677),
    "PLAYBACK_START": ("switch_ivr_play_say.c", "switch_ivr_play_file", 1646),
    "PLAYBACK_STOP": ("switch_ivr_play_say.c", "switch_ivr_play_file", 2020),
    "PRIVATE_COMMAND": ("switch_ivr.c", "switch_ivr_parse_next_event", 804),
    "BACKGROUND_JOB": ("mod_event_socket.c", "api_exec", 1572),
    "CHANNEL_DATA": ("mod_event_socket.c", "parse_command", 2021),
    "HEARTBEAT": ("switch_core.c", "send_heartbeat", 95),
    "MESSAGE": ("sofia_presence.c", "sofia_presence_handle_sip_i_message", 4889),
}
SENDEVENT_CALLING = ("mod_event_socket.c", "parse_command", 2275)
UUID_BRIDGE_EXECUTE_CALLING = ("switch_ivr_bridge.c", "uuid_bridge_on_soft_execute", 1236)
CHAT_ERROR_CALLING = ("sofia_presence.c", "sofia_presence_chat_send", 276)

# Every event name an ESL client may subscribe to (switch_event.c EVENT_NAMES).
EVENT_NAMES = frozenset(
    [
        "CUSTOM",
        "CLONE",
        "CHANNEL_CREATE",
        "CHANNEL_DESTROY",
        "CHANNEL_STATE",
        "CHANNEL_CALLSTATE",
        "CHANNEL_ANSWER",
        "CHANNEL_HANGUP",
        "CHANNEL_HANGUP_COMPLETE",
        "CHANNEL_EXECUTE",
        "CHANNEL_EXECUTE_COMPLETE",
        "CHANNEL_HOLD",
        "CHANNEL_UNHOLD",
        "CHANNEL_BRIDGE",
        "CHANNEL_UNBRIDGE",
        "CHANNEL_PROGRESS",
        "CHANNEL_PROGRESS_MEDIA",
        "CHANNEL_OUTGOING",
        "CHANNEL_PARK",
        "CHANNEL_UNPARK",
        "CHANNEL_APPLICATION",
        "CHANNEL_ORIGINATE",
        "CHANNEL_UUID",
        "API",
        "LOG",
        "INBOUND_CHAN",
        "OUTBOUND_CHAN",
        "STARTUP",
        "SHUTDOWN",
        "PUBLISH",
        "UNPUBLISH",
        "TALK",
        "NOTALK",
        "SESSION_CRASH",
        "MODULE_LOAD",
        "MODULE_UNLOAD",
        "DTMF",
        "MESSAGE",
        "PRESENCE_IN",
        "NOTIFY_IN",
        "PRESENCE_OUT",
        "PRESENCE_PROBE",
        "MESSAGE_WAITING",
        "MESSAGE_QUERY",
        "ROSTER",
        "CODEC",
        "BACKGROUND_JOB",
        "DETECTED_SPEECH",
        "DETECTED_TONE",
        "PRIVATE_COMMAND",
        "HEARTBEAT",
        "TRAP",
        "ADD_SCHEDULE",
        "DEL_SCHEDULE",
        "EXE_SCHEDULE",
        "RE_SCHEDULE",
        "RELOADXML",
        "NOTIFY",
        "PHONE_FEATURE",
        "PHONE_FEATURE_SUBSCRIBE",
        "SEND_MESSAGE",
        "RECV_MESSAGE",
        "REQUEST_PARAMS",
        "CHANNEL_DATA",
        "GENERAL",
        "COMMAND",
        "SESSION_HEARTBEAT",
        "CLIENT_DISCONNECTED",
        "SERVER_DISCONNECTED",
        "SEND_INFO",
        "RECV_INFO",
        "RECV_RTCP_MESSAGE",
        "SEND_RTCP_MESSAGE",
        "CALL_SECURE",
        "NAT",
        "RECORD_START",
        "RECORD_STOP",
        "PLAYBACK_START",
        "PLAYBACK_STOP",
        "CALL_UPDATE",
        "FAILURE",
        "SOCKET_DATA",
        "MEDIA_BUG_START",
        "MEDIA_BUG_STOP",
        "CONFERENCE_DATA_QUERY",
        "CONFERENCE_DATA",
        "CALL_SETUP_REQ",
        "CALL_SETUP_RESULT",
        "CALL_DETAIL",
        "DEVICE_STATE",
        "TEXT",
        "SHUTDOWN_REQUESTED",
        "ALL",
    ]
)


@dataclass(frozen=True)
class Identity:
    """What every event says about the switch that fired it."""

    core_uuid: str
    hostname: str
    ipv4: str
    ipv6: str


class Event:
    """A fired event; its two wire forms are built once and shared by all listeners."""

    __slots__ = ("_json", "_plain", "body", "headers", "name", "subclass", "unique_id")

    def __init__(
        self,
        name: str,
        headers: Headers,
        body: str | None = None,
        subclass: str | None = None,
        unique_id: str | None = None,
    ) -> None:
        self.name = name
        self.headers = headers
        self.body = body
        self.subclass = subclass
        self.unique_id = unique_id
        self._plain: bytes | None = None
        self._json: bytes | None = None

    def get(self, name: str) -> str | None:
        """The first value of a header (exact name)."""
        for key, value in self.headers:
            if key == name:
                return value
        return None

    def message(self, fmt: str) -> bytes:
        """The complete ESL message (outer headers + body) in ``plain``, ``json`` or ``xml``."""
        if fmt == "xml":  # rarely used: not cached
            return event_message(format_event_xml(self.headers, self.body), "xml")
        if fmt == "json":
            if self._json is None:
                self._json = event_message(format_event_json(self.headers, self.body), "json")
            return self._json
        if self._plain is None:
            self._plain = event_message(format_event_plain(self.headers, self.body), "plain")
        return self._plain


class EventSink(Protocol):
    """Anything that receives events: an ESL connection, a test recorder."""

    def wants(self, name: str, subclass: str | None, unique_id: str | None) -> bool: ...

    def accepts(self, event: Event) -> bool: ...

    def deliver(self, event: Event) -> None: ...


class EventBus:
    """Numbers, stamps and dispatches events like switch_event_fire."""

    def __init__(self, clock: SimClock, identity: Identity) -> None:
        self.clock = clock
        self.identity = identity
        self._sequence = itertools.count(1)
        self._sinks: list[EventSink] = []

    def subscribe(self, sink: EventSink) -> None:
        if sink not in self._sinks:
            self._sinks.append(sink)

    def unsubscribe(self, sink: EventSink) -> None:
        if sink in self._sinks:
            self._sinks.remove(sink)

    def core_headers(
        self, name: str, calling: tuple[str, str, int], sequence: int, stamp_us: int
    ) -> Headers:
        """Event-Name .. Event-Sequence (switch_event_prep_for_delivery)."""
        ident = self.identity
        return [
            ("Event-Name", name),
            ("Core-UUID", ident.core_uuid),
            ("FreeSWITCH-Hostname", ident.hostname),
            ("FreeSWITCH-Switchname", ident.hostname),
            ("FreeSWITCH-IPv4", ident.ipv4),
            ("FreeSWITCH-IPv6", ident.ipv6),
            ("Event-Date-Local", local_stamp(stamp_us)),
            ("Event-Date-GMT", gmt_stamp(stamp_us)),
            ("Event-Date-Timestamp", str(stamp_us)),
            ("Event-Calling-File", calling[0]),
            ("Event-Calling-Function", calling[1]),
            ("Event-Calling-Line-Number", str(calling[2])),
            ("Event-Sequence", str(sequence)),
        ]

    def make(self, name: str, calling: tuple[str, str, int] | None = None) -> Headers:
        """Core headers for an event that is built but not fired (the outbound connect reply)."""
        return self.core_headers(
            name, calling or CALLING[name], next(self._sequence), self.clock.now_us()
        )

    def fire(
        self,
        name: str,
        build: Callable[[], Iterable[tuple[str, str]]] = tuple,
        *,
        lead: Iterable[tuple[str, str]] = (),
        body: str | None = None,
        subclass: str | None = None,
        unique_id: str | None = None,
        calling: tuple[str, str, int] | None = None,
    ) -> Event | None:
        """Fire an event. ``build`` is only called when a listener wants the event."""
        sequence = next(self._sequence)
        sinks = [s for s in self._sinks if s.wants(name, subclass, unique_id)]
        if not sinks:
            return None
        headers = list(lead)
        headers += self.core_headers(name, calling or CALLING[name], sequence, self.clock.now_us())
        headers += build()
        event = Event(name, headers, body, subclass, unique_id)
        for sink in sinks:
            if sink.accepts(event):
                sink.deliver(event)
        return event
