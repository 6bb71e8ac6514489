"""Our inbound connection fed bytes a real FreeSWITCH sent, and bytes it must refuse."""

from __future__ import annotations

import gevent
import pytest
from greenswitch.esl import InboundESL
from switch_lab import cycles_of
from wire_peer import WIRE, ReplayPeer

from esl_callback.switch.connection import (
    Backoff,
    CommandTimeout,
    ESLError,
    InboundConnection,
    NotConnected,
)
from esl_callback.switch.protocol import Frame

FORGED = (WIRE / "event-plain-forged-display-name.raw").read_bytes()
REAL_UUID = "fa2fd882-aaa2-4668-b942-81f2a26350e5"


def connect(peer: ReplayPeer, seen: list[Frame]) -> InboundConnection:
    conn = InboundConnection(
        name="fs-replay",
        host="127.0.0.1",
        port=peer.port,
        password="ClueCon",
        events=["CHANNEL_CREATE"],
        on_event=lambda event, node: seen.append(event),
        backoff=Backoff(initial=0.05, maximum=0.2),
    ).start()
    assert conn.wait_connected(5)
    return conn


def wait_until(condition, timeout: float = 5.0) -> None:
    with gevent.Timeout(timeout):
        while not condition():
            gevent.sleep(0.01)


def test_greenswitch_alone_lets_a_display_name_forge_the_unique_id(
    replay_peer: ReplayPeer,
) -> None:
    """The fault, shown on the captured bytes: greenswitch 0.0.19 reports the forged UUID."""
    replay_peer.payloads.append(FORGED)
    seen: list[dict[str, str]] = []
    esl = InboundESL("127.0.0.1", replay_peer.port, "ClueCon")
    esl.register_handle("CHANNEL_CREATE", lambda event: seen.append(event.headers))
    esl.connect()
    esl.send("event plain CHANNEL_CREATE")
    try:
        wait_until(lambda: seen)
    finally:
        esl.stop()
    assert seen[0]["Unique-ID"] == "forged-uuid"
    assert seen[0]["Caller-Destination-Number"].startswith("999")  # the real one is 18005550100


def test_a_forged_display_name_cannot_change_the_unique_id_of_a_captured_event(
    replay_peer: ReplayPeer,
) -> None:
    replay_peer.payloads.append(FORGED)
    seen: list[Frame] = []
    conn = connect(replay_peer, seen)
    try:
        wait_until(lambda: seen)
    finally:
        conn.stop()
    event = seen[0]
    assert event.get("Unique-ID") == REAL_UUID
    assert event.get_all("Unique-ID") == [REAL_UUID]
    assert event.get("Caller-Destination-Number") == "18005550100"
    assert event.get("Caller-Caller-ID-Name") == (
        "Bob\nUnique-ID: forged-uuid\nCaller-Destination-Number: 999"
    )


@pytest.mark.parametrize(
    "length",
    [b"-5", b"99999999999", b"12abc", b"", "²".encode()],
    ids=["negative", "absurd", "garbage", "empty", "superscript-digit"],
)
def test_a_bad_content_length_closes_the_connection_and_a_fresh_one_follows(
    replay_peer: ReplayPeer, length: bytes
) -> None:
    bad = b"Content-Length: " + length + b"\nContent-Type: text/event-plain\n\n"
    replay_peer.payloads += [bad + FORGED, FORGED]
    seen: list[Frame] = []
    conn = connect(replay_peer, seen)
    try:
        wait_until(lambda: conn.connections_made == 2 and seen)
    finally:
        conn.stop()
    # Nothing after the bad header was taken for an event; the second connection works.
    assert [event.get("Unique-ID") for event in seen] == [REAL_UUID]
    assert replay_peer.commands[:4] == [
        "auth ClueCon",
        "event plain CHANNEL_CREATE",
        "auth ClueCon",
        "event plain CHANNEL_CREATE",
    ]


def test_userauth_sends_user_at_domain_and_password_and_then_subscribes(
    replay_peer: ReplayPeer,
) -> None:
    replay_peer.users.add("controller@default:s3cret")
    conn = InboundConnection(
        host="127.0.0.1",
        port=replay_peer.port,
        user="controller@default",
        password="s3cret",
        events=["CHANNEL_CREATE"],
    ).start()
    try:
        assert conn.wait_connected(5)
    finally:
        conn.stop()
    assert replay_peer.commands[:2] == [
        "userauth controller@default:s3cret",
        "event plain CHANNEL_CREATE",
    ]


def test_an_event_message_without_a_body_leaves_the_backlog_measurable(
    replay_peer: ReplayPeer,
) -> None:
    replay_peer.payloads.append(b"Content-Length: 0\nContent-Type: text/event-plain\n\n")
    seen: list[Frame] = []
    conn = connect(replay_peer, seen)
    try:
        wait_until(lambda: seen)
        assert conn.queued_events() == 0
    finally:
        conn.stop()


def test_an_exit_the_switch_answers_by_closing_leaves_no_reference_cycle(
    replay_peer: ReplayPeer,
) -> None:
    """Calls end with an `exit` racing the switch's own close: the NotConnected it raises (and
    `close` swallows) must be freed at once, not wait for a garbage collection (a pause of
    every call)."""
    replay_peer.hang_up_on.add("exit")
    conn = connect(replay_peer, [])
    with cycles_of(ESLError) as left:
        conn.stop()
    assert replay_peer.commands[-1] == "exit"
    assert left == []


def test_a_job_whose_result_never_comes_is_given_up_after_its_ttl_without_a_cycle(
    replay_peer: ReplayPeer,
) -> None:
    conn = connect(replay_peer, [])
    conn.job_ttl = 0.05
    try:
        with cycles_of(ESLError) as left:
            lost = conn.bgapi("originate loopback/1 &park()")
            gevent.sleep(0.1)
            young = conn.bgapi("status")  # each bgapi first gives up the jobs past their ttl
            with pytest.raises(CommandTimeout, match=f"job {lost.uuid} got no result in 0.05 s"):
                lost.wait(1)
            assert lost.done and lost.event is None and not lost.ok
            assert conn.pending_jobs() == 1 and not young.done
            del lost  # unreachable now: freed at once unless it is in a cycle
        assert left == []
    finally:
        conn.stop()


def test_stopping_fails_the_jobs_still_waiting_without_a_cycle(replay_peer: ReplayPeer) -> None:
    conn = connect(replay_peer, [])
    job = conn.bgapi("originate loopback/1 &park()")
    with cycles_of(ESLError) as left:
        conn.stop()
        with pytest.raises(NotConnected, match="connection stopped"):
            job.wait(1)
        with pytest.raises(NotConnected):  # a second waiter gets an exception of its own
            job.wait(1)
        del job  # unreachable now: freed at once unless it is in a cycle
    assert conn.pending_jobs() == 0
    assert left == []
