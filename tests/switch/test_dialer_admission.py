"""New callbacks wait while a node is too far behind in its events (freeswitch.max_event_backlog).

FreeSWITCH drops a listener that falls 500 events behind, and with it every call the listener
follows; so above the configured backlog the dialer turns new callbacks away instead. The node
here is a real inbound connection to the simulator whose reader stalls, as a controller that
cannot keep up would: the events the switch sends meanwhile wait unread in its socket.
"""

from __future__ import annotations

import gevent.event
import pytest
from switch_lab import PARKS, SwitchLab, wait_until
from test_inbound_switch import park_leg

from esl_callback import metrics
from esl_callback.callback.dialer import TRY_LATER_CAUSE, Dialer, FlowEnded
from esl_callback.config import settings_from_mapping
from esl_callback.db import Database
from esl_callback.models import CallbackRequest
from esl_callback.switch.connection import InboundConnection
from esl_callback.switch.router import EventRouter

LIMIT = 5


def dialer_with(db: Database, node: InboundConnection, limit: int) -> Dialer:
    settings = settings_from_mapping({"freeswitch": {"max_event_backlog": limit}}, environ={})
    return Dialer(db, settings, nodes=[node], router=EventRouter())


def turned_away(node: str) -> float:
    sample = f"{metrics.PREFIX}_calls_turned_away_total"
    return metrics.REGISTRY.get_sample_value(sample, {"node": node}) or 0.0


def test_a_node_too_far_behind_turns_triggers_away_until_it_catches_up(
    lab: SwitchLab, db: Database
) -> None:
    release = gevent.event.Event()
    behind = lab.connect(["CHANNEL_CREATE"], on_event=lambda event, node: release.wait())
    caller = lab.connect(["BACKGROUND_JOB"])
    assert behind.wait_connected(5) and caller.wait_connected(5)
    dialer = dialer_with(db, behind, LIMIT)
    for n in range(30):
        park_leg(caller, PARKS, str(n))
    wait_until(lambda: behind.queued_events() > LIMIT)
    before = turned_away(behind.name)

    rejected: list[str] = []
    with pytest.raises(FlowEnded) as ended:
        dialer.trigger_call(
            "15550001001", "18005550100", trigger_uuid="t-1", reject=rejected.append
        )

    assert ended.value.cause == "SWITCH_BEHIND"
    assert "freeswitch.max_event_backlog (5)" in ended.value.detail
    assert rejected == [TRY_LATER_CAUSE]  # the caller hears "try again later", not a callback
    assert CallbackRequest.select().count() == 0  # nothing stored, nothing to call back
    assert turned_away(behind.name) == before + 1
    assert dialer_with(db, behind, 0).node_for(None) is behind  # 0: never turned away

    release.set()
    wait_until(lambda: behind.queued_events() == 0)
    assert dialer.node_for(None) is behind
