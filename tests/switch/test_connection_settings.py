"""What an InboundConnection / OutboundServer makes of its settings, before any socket opens."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from esl_callback.switch.commands import UnsafeCommand
from esl_callback.switch.connection import Backoff, InboundConnection, NotConnected
from esl_callback.switch.outbound import OutboundServer


@dataclass
class Node:
    name: str
    host: str
    port: int
    password: str
    user: str | None


def test_backoff_doubles_up_to_the_cap_with_jitter_below_each_step() -> None:
    backoff = Backoff(initial=1.0, maximum=8.0)
    for attempt, step in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (5, 8.0), (60, 8.0)]:
        delays = {backoff.delay(attempt) for _ in range(50)}
        assert all(step / 2 <= d <= step for d in delays)
        assert len(delays) > 1  # jittered, so nodes restarted together do not retry in step


def test_subscription_lists_custom_subclasses_after_custom() -> None:
    conn = InboundConnection(
        host="127.0.0.1",
        password="pw",
        events=["CHANNEL_ANSWER", "sofia::register", "BACKGROUND_JOB", "CHANNEL_ANSWER"],
    )
    assert conn.subscription == "event plain CHANNEL_ANSWER BACKGROUND_JOB CUSTOM sofia::register"


@pytest.mark.parametrize("name", ["ALL\nexit", "CHANNEL ANSWER", ""])
def test_an_event_name_that_could_inject_a_command_is_refused(name: str) -> None:
    with pytest.raises(UnsafeCommand):
        InboundConnection(host="127.0.0.1", password="pw", events=[name])


def test_a_configured_node_object_supplies_the_connection_values() -> None:
    conn = InboundConnection(Node("fs1", "10.0.0.5", 8022, "s3cret", "ctl@default"), events=["ALL"])
    assert (conn.name, conn.host, conn.port) == ("fs1", "10.0.0.5", 8022)
    with pytest.raises(NotConnected, match=r"fs1: not connected to 10\.0\.0\.5:8022"):
        conn.api("status")


def test_a_command_with_a_line_break_is_refused_before_the_connection_is_even_looked_at() -> None:
    conn = InboundConnection(host="127.0.0.1", password="pw", events=["ALL"])
    with pytest.raises(UnsafeCommand):
        conn.api("status\n\nbgapi originate loopback/1 &park()")
    with pytest.raises(UnsafeCommand):
        conn.bgapi("originate x", job_uuid="a\nb")


@pytest.mark.parametrize(
    ("peer", "allowed"),
    [
        ("127.0.0.1", True),
        ("10.1.2.3", True),
        ("10.2.0.1", False),
        ("::ffff:10.1.2.3", True),
        ("::1", False),
        ("fd00::7", True),
        ("not-an-ip", False),
    ],
)
def test_allow_list_takes_addresses_and_networks(peer: str, allowed: bool) -> None:
    server = OutboundServer(
        lambda channel: None, port=0, allow=["127.0.0.1", "10.1.0.0/16", "fd00::/8"]
    )
    assert server.allowed(peer) is allowed
