"""Caller profiles and their timetable, serialised like switch_caller_profile_event_set_data."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

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
        return copy.deepcopy(self)

    def headers(self, prefix: str) -> Headers:
        """The ``<prefix>-*`` headers; empty strings are left out like FreeSWITCH does."""
        out: Headers = [
            (f"{prefix}-Direction", self.direction),
            (f"{prefix}-Logical-Direction", self.logical_direction),
        ]
        optional = (
            ("Username", self.username),
            ("Dialplan", self.dialplan),
            ("Caller-ID-Name", self.caller_id_name),
            ("Caller-ID-Number", self.caller_id_number),
            ("Orig-Caller-ID-Name", self.orig_caller_id_name),
            ("Orig-Caller-ID-Number", self.orig_caller_id_number),
            ("Callee-ID-Name", self.callee_id_name),
            ("Callee-ID-Number", self.callee_id_number),
            ("Network-Addr", self.network_addr),
            ("ANI", self.ani),
            ("ANI-II", self.aniii),
            ("Destination-Number", self.destination_number),
            ("Unique-ID", self.uuid),
            ("Source", self.source),
            ("Transfer-Source", self.transfer_source),
            ("Context", self.context),
            ("RDNIS", self.rdnis),
            ("Channel-Name", self.chan_name),
            ("Profile-Index", self.profile_index),
        )
        out += [(f"{prefix}-{name}", value) for name, value in optional if value]
        t = self.times
        out += [
            (f"{prefix}-Profile-Created-Time", str(t.profile_created)),
            (f"{prefix}-Channel-Created-Time", str(t.created)),
            (f"{prefix}-Channel-Answered-Time", str(t.answered)),
            (f"{prefix}-Channel-Progress-Time", str(t.progress)),
            (f"{prefix}-Channel-Progress-Media-Time", str(t.progress_media)),
            (f"{prefix}-Channel-Hangup-Time", str(t.hungup)),
            (f"{prefix}-Channel-Transfer-Time", str(t.transferred)),
            (f"{prefix}-Channel-Resurrect-Time", str(t.resurrected)),
            (f"{prefix}-Channel-Bridged-Time", str(t.bridged)),
            (f"{prefix}-Channel-Last-Hold", str(t.last_hold)),
            (f"{prefix}-Channel-Hold-Accum", str(t.hold_accum)),
            (f"{prefix}-Screen-Bit", "true"),
            (f"{prefix}-Privacy-Hide-Name", "false"),
            (f"{prefix}-Privacy-Hide-Number", "false"),
        ]
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
