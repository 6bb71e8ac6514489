"""Events as FreeSWITCH builds them, and the bus that hands them to ESL listeners.

An event's headers are: optional leading headers (Event-Subclass, or a sendmsg's own headers),
the core block every event gets (Event-Name .. Event-Sequence), then the event's own data.
Events are only built when some listener wants them, so an idle simulator stays cheap.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol

from esl_callback.simulator.clock import SimClock, gmt_stamp, local_stamp
from esl_callback.switch.protocol import (
    event_message,
    format_event_json,
    format_event_xml,
)
from esl_callback.switch.protocol import url_encode as _url_encode_exact

Headers = list[tuple[str, str]]

# What switch_url_encode leaves alone: printable ASCII except its urlunsafe characters.
_URL_SAFE = "".join(chr(b) for b in range(0x20, 0x7F) if chr(b) not in '\r\n "#%&+:;<=>?@[\\]^`{|}')
_NEEDS_ENCODING = re.compile("[^" + re.escape(_URL_SAFE) + "]")


@lru_cache(maxsize=8192)
def _url_encode_cached(value: str) -> str:
    return _url_encode_exact(value)


def url_encode(value: str) -> str:
    """switch_url_encode, as protocol.url_encode, without its per-byte loop for safe values."""
    if _NEEDS_ENCODING.search(value) is None:
        return value
    return _url_encode_cached(value)


class _LineCache:
    """Encoded header lines by name, then value: most lines of a channel's events are the same
    from one event to the next. Two generations: a line used lately survives a turnover.

    Keyed by name and value apart, not by the (name, value) pair: a pair kept as a key is one
    more object for the garbage collector to walk, and new lines come with every call (its
    UUIDs, its times). One dict per header name is all it tracks here.
    """

    LIMIT = 100_000  # lines per generation
    UNIQUE = frozenset({"Event-Sequence", "Event-Date-Timestamp"})  # new in every event

    def __init__(self) -> None:
        self.young: dict[str, dict[str, str]] = {}
        self.old: dict[str, dict[str, str]] = {}
        self.size = 0  # lines in the young generation

    def lines(self, headers: Headers) -> list[str]:
        young = self.young
        out = []
        for name, value in headers:
            by_value = young.get(name)
            line = None if by_value is None else by_value.get(value)
            out.append(self._miss(name, value) if line is None else line)
        return out

    def _miss(self, name: str, value: str) -> str:
        """The line from the old generation or newly encoded, kept in the young one."""
        by_value = self.old.get(name)
        line = None if by_value is None else by_value.get(value)
        if line is None:
            line = f"{name}: {url_encode(value)}\n"
            if name in self.UNIQUE:
                return line
        if self.size >= self.LIMIT:
            self.old, self.young, self.size = self.young, {}, 0
        self.young.setdefault(name, {})[value] = line
        self.size += 1
        return line


_LINES = _LineCache()


def plain_message(headers: Headers, body: str | None = None) -> bytes:
    """``event_message(format_event_plain(headers, body), "plain")``, faster (see _LineCache)."""
    out = _LINES.lines(headers)
    head = "".join(out).encode("ascii")
    if body:
        raw = body.encode("utf-8", "surrogateescape")
        payload = head + f"Content-Length: {len(raw)}\n\n".encode() + raw
    else:
        payload = head + b"\n"
    return f"Content-Length: {len(payload)}\nContent-Type: text/event-plain\n\n".encode() + payload


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
# The MESSAGE event of the `chat` API (created there, fired once sofia has tried to deliver it).
CHAT_API_CALLING = ("switch_loadable_module.c", "switch_core_chat_send_args", 1039)

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
    """A fired event; its two wire forms are built once and shared by all listeners.

    The channel data after the core headers (``rest``) is built when first needed: a listener
    whose filters are on the core headers (``filter Event-Name ...``) rejects an event without
    it. `EventBus.fire` builds it before the event is delivered.
    """

    __slots__ = ("_headers", "_json", "_plain", "_rest", "body", "name", "subclass", "unique_id")

    def __init__(
        self,
        name: str,
        headers: Headers,
        body: str | None = None,
        subclass: str | None = None,
        unique_id: str | None = None,
        rest: Callable[[], Iterable[tuple[str, str]]] | None = None,
    ) -> None:
        self.name = name
        self._headers = headers
        self._rest = rest
        self.body = body
        self.subclass = subclass
        self.unique_id = unique_id
        self._plain: bytes | None = None
        self._json: bytes | None = None

    @property
    def headers(self) -> Headers:
        """All headers, in wire order."""
        self.complete()
        return self._headers

    def complete(self) -> None:
        """Build the headers after the core ones, if not yet done."""
        if self._rest is not None:
            rest, self._rest = self._rest, None
            self._headers += rest()

    def get(self, name: str) -> str | None:
        """The first value of a header (exact name)."""
        built = self._headers
        for key, value in built:
            if key == name:
                return value
        if self._rest is None:
            return None
        start = len(built)
        for key, value in self.headers[start:]:
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
            self._plain = plain_message(self.headers, self.body)
        return self._plain


class EventSink(Protocol):
    """Anything that receives events: an ESL connection, a test recorder.

    A sink may also have a ``route`` attribute: False when it wants no event at all, a channel
    uuid when it only wants that channel's events, None (or no attribute) when it may want any
    event; the bus then only asks the sinks an event can concern. Call
    :meth:`EventBus.reroute` when the route changes.
    """

    def wants(self, name: str, subclass: str | None, unique_id: str | None) -> bool: ...

    def accepts(self, event: Event) -> bool: ...

    def deliver(self, event: Event) -> None: ...


class EventBus:
    """Numbers, stamps and dispatches events like switch_event_fire."""

    def __init__(self, clock: SimClock, identity: Identity) -> None:
        self.clock = clock
        self.identity = identity
        self._sequence = itertools.count(1)
        self._order = itertools.count()
        self._sinks: dict[EventSink, tuple[int, object]] = {}  # sink -> (order, route)
        self._anything: list[EventSink] = []  # sinks that may want any event
        self._by_uuid: dict[str, list[EventSink]] = {}  # sinks that want one channel's events

    def subscribe(self, sink: EventSink) -> None:
        if sink not in self._sinks:
            self._sinks[sink] = (next(self._order), False)
            self.reroute(sink)

    def unsubscribe(self, sink: EventSink) -> None:
        found = self._sinks.pop(sink, None)
        if found is not None:
            self._unroute(sink, found[1])

    def reroute(self, sink: EventSink) -> None:
        """Take note of a change of the sink's ``route``."""
        found = self._sinks.get(sink)
        if found is None:
            return
        order, old = found
        new = getattr(sink, "route", None)
        if new is old or new == old:
            return
        self._unroute(sink, old)
        self._sinks[sink] = (order, new)
        if new is None:
            self._insert(self._anything, sink)
        elif isinstance(new, str):
            self._insert(self._by_uuid.setdefault(new, []), sink)

    def _insert(self, group: list[EventSink], sink: EventSink) -> None:
        group.append(sink)
        if len(group) > 1:
            group.sort(key=lambda s: self._sinks[s][0])  # subscription order

    def _unroute(self, sink: EventSink, route: object) -> None:
        if route is None:
            self._anything.remove(sink)
        elif isinstance(route, str):
            group = self._by_uuid[route]
            group.remove(sink)
            if not group:
                del self._by_uuid[route]

    def _candidates(self, unique_id: str | None) -> list[EventSink]:
        """The sinks that may want an event of ``unique_id`` (each gets its own copy of the
        event in its own queue, so the order among sinks does not matter)."""
        own = self._by_uuid.get(unique_id) if unique_id is not None else None
        if not own:
            return self._anything
        if not self._anything:
            return own
        return self._anything + own

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

    def stamp(self) -> tuple[int, int]:
        """(sequence, microseconds) of an event created now and fired later: switch_event_create
        gives an event its core headers, which its copies (switch_event_dup) keep. Pass it to
        `fire` as ``created``."""
        return next(self._sequence), self.clock.now_us()

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
        created: tuple[int, int] | None = None,
    ) -> Event | None:
        """Fire an event. ``build`` (the headers after the core ones) is only called when a
        listener takes the event; None when none does. ``created``: the `stamp` of an event
        created earlier (its sequence number and date), by default now."""
        sequence, stamp_us = created or (next(self._sequence), self.clock.now_us())
        sinks = [s for s in self._candidates(unique_id) if s.wants(name, subclass, unique_id)]
        if not sinks:
            return None
        headers = list(lead)
        headers += self.core_headers(name, calling or CALLING[name], sequence, stamp_us)
        event = Event(name, headers, body, subclass, unique_id, rest=build)
        takers = [sink for sink in sinks if sink.accepts(event)]
        if not takers:
            return None
        event.complete()  # the channel's data as it is now, not when a listener reads it
        for sink in takers:
            sink.deliver(event)
        return event
