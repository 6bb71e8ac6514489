"""Caller profiles and their timetable, serialised like switch_caller_profile_event_set_data."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from functools import cache

Headers = list[tuple[str, str]]


@dataclass
class Times:
    """switch_channel_timetable_t, all in epoch microseconds (0 = not yet)."""

    profile_created: int = 0
    created: int = 0
    answered: int = 0
    progress: int = 0
    progress_media: int = 0
    hungup: int = 0
    transferred: int = 0
    resurrected: int = 0
    bridged: int = 0
    last_hold: int = 0
    hold_accum: int = 0


@dataclass
class CallerProfile:
    """The caller profile of one channel (what FreeSWITCH reports as Caller-*)."""

    direction: str
    logical_direction: str
    destination_number: str
    context: str = "default"
    dialplan: str = "xml"
    username: str = ""
    caller_id_name: str = ""
    caller_id_number: str = ""
    orig_caller_id_name: str = ""
    orig_caller_id_number: str = ""
    callee_id_name: str = ""
    callee_id_number: str = ""
    network_addr: str = ""
    ani: str = ""
    aniii: str = ""
    uuid: str = ""
    source: str = ""
    transfer_source: str = ""
    rdnis: str = ""
    chan_name: str = ""
    profile_index: str = ""
    times: Times = field(default_factory=Times)

    def clone(self) -> CallerProfile:
        """switch_caller_profile_clone (the timetable is copied, not shared)."""
        new = copy.copy(self)  # every other field is a string
        new.times = copy.copy(self.times)
        return new

    def headers(self, prefix: str) -> Headers:
        """The ``<prefix>-*`` headers; empty strings are left out like FreeSWITCH does."""
        direction, logical, optional, times, tail = _header_names(prefix)
        out: Headers = [(direction, self.direction), (logical, self.logical_direction)]
        values = (
            self.username,
            self.dialplan,
            self.caller_id_name,
            self.caller_id_number,
            self.orig_caller_id_name,
            self.orig_caller_id_number,
            self.callee_id_name,
            self.callee_id_number,
            self.network_addr,
            self.ani,
            self.aniii,
            self.destination_number,
            self.uuid,
            self.source,
            self.transfer_source,
            self.context,
            self.rdnis,
            self.chan_name,
            self.profile_index,
        )
        out += [(name, value) for name, value in zip(optional, values, strict=True) if value]
        t = self.times
        stamps = (
            t.profile_created,
            t.created,
            t.answered,
            t.progress,
            t.progress_media,
            t.hungup,
            t.transferred,
            t.resurrected,
            t.bridged,
            t.last_hold,
            t.hold_accum,
        )
        out += [(name, str(value)) for name, value in zip(times, stamps, strict=True)]
        out += tail
        return out

    def flip_cid(self) -> None:
        """switch_channel_flip_cid: caller id and callee id swap places."""
        if self.callee_id_name:
            self.caller_id_name, self.callee_id_name = self.callee_id_name, self.caller_id_name
        if self.callee_id_number:
            self.caller_id_number, self.callee_id_number = (
                self.callee_id_number,
                self.caller_id_number,
            )


_OPTIONAL = (
    "Username",
    "Dialplan",
    "Caller-ID-Name",
    "Caller-ID-Number",
    "Orig-Caller-ID-Name",
    "Orig-Caller-ID-Number",
    "Callee-ID-Name",
    "Callee-ID-Number",
    "Network-Addr",
    "ANI",
    "ANI-II",
    "Destination-Number",
    "Unique-ID",
    "Source",
    "Transfer-Source",
    "Context",
    "RDNIS",
    "Channel-Name",
    "Profile-Index",
)
_TIMES = (
    "Profile-Created-Time",
    "Channel-Created-Time",
    "Channel-Answered-Time",
    "Channel-Progress-Time",
    "Channel-Progress-Media-Time",
    "Channel-Hangup-Time",
    "Channel-Transfer-Time",
    "Channel-Resurrect-Time",
    "Channel-Bridged-Time",
    "Channel-Last-Hold",
    "Channel-Hold-Accum",
)


@cache
def _header_names(
    prefix: str,
) -> tuple[str, str, tuple[str, ...], tuple[str, ...], tuple[tuple[str, str], ...]]:
    """The header names of :meth:`CallerProfile.headers` for ``prefix``, built once."""
    return (
        f"{prefix}-Direction",
        f"{prefix}-Logical-Direction",
        tuple(f"{prefix}-{name}" for name in _OPTIONAL),
        tuple(f"{prefix}-{name}" for name in _TIMES),
        (
            (f"{prefix}-Screen-Bit", "true"),
            (f"{prefix}-Privacy-Hide-Name", "false"),
            (f"{prefix}-Privacy-Hide-Number", "false"),
        ),
    )
