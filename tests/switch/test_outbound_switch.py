"""OutboundServer and OutboundChannel against the simulated FreeSWITCH (real sockets)."""

from __future__ import annotations

import gc
import logging
import time
import weakref
from collections.abc import Callable
from typing import Any

import gevent
import gevent.event
import gevent.socket
import pytest
from switch_lab import HANGS_UP, PARKS, SwitchLab, cycles_of, wait_until

from esl_callback.switch.connection import InboundConnection
from esl_callback.switch.outbound import ChannelGone, Execution, OutboundChannel
from esl_callback.switch.protocol import Frame

Ivr = Callable[[OutboundChannel], Any]


def start_ivr(lab: SwitchLab, ivrs: dict[str, Ivr]) -> dict[str, gevent.event.AsyncResult]:
    """Run `ivrs[request id]` on each leg that connects; each result (or exception) is kept."""
    results = {request_id: gevent.event.AsyncResult() for request_id in ivrs}

    def handler(channel: OutboundChannel) -> None:
        data = channel.connect()
        request_id = data.get("variable_callback_request_id") or ""
        try:
            results[request_id].set(ivrs[request_id](channel))
        except BaseException as exc:
            results[request_id].set_exception(exc)
            raise

    lab.handler = handler
    return results


def inbound(lab: SwitchLab, seen: list[Frame] | None = None) -> InboundConnection:
    received = seen if seen is not None else []
    conn = lab.connect(["CHANNEL_HANGUP"], on_event=lambda event, node: received.append(event))
    assert conn.wait_connected(5)
    return conn


def test_connect_gives_the_decoded_channel_data_with_our_variables(lab: SwitchLab) -> None:
    results = start_ivr(lab, {"42": lambda channel: channel.data})
    leg = lab.leg_a(inbound(lab), PARKS, "42")
    data: Frame = results["42"].get(timeout=5)
    assert data.get("Unique-ID") == leg
    assert data.get("Event-Name") == "CHANNEL_DATA"
    assert data.get("Reply-Text") == "+OK\n"
    assert data.get("Caller-Destination-Number") == PARKS
    assert data.get("variable_callback_request_id") == "42"
    assert data.get("Answer-State") == "answered"


def test_each_execution_gets_the_completion_carrying_its_own_event_uuid(lab: SwitchLab) -> None:
    """Two playbacks at once: the second runs inside the first and completes first."""

    def ivr(channel: OutboundChannel) -> tuple[Frame, Frame, list[str]]:
        channel.myevents()
        long = channel.execute_async("playback", "silence_stream://1500")
        short = channel.execute_async("playback", "silence_stream://200")
        finished: list[str] = []

        def wait_for(name: str, execution: Execution) -> None:
            execution.wait(5)
            finished.append(name)

        waiters = [gevent.spawn(wait_for, "long", long), gevent.spawn(wait_for, "short", short)]
        gevent.joinall(waiters, raise_error=True)
        return long.wait(), short.wait(), finished

    results = start_ivr(lab, {"1": ivr})
    lab.leg_a(inbound(lab), PARKS, "1")
    long_done, short_done, finished = results["1"].get(timeout=10)
    assert long_done.get("Application-Data") == "silence_stream://1500"
    assert short_done.get("Application-Data") == "silence_stream://200"
    assert long_done.get("Application-UUID") != short_done.get("Application-UUID")
    assert finished == ["short", "long"]  # the first completion on the wire was the short one's
    assert int(long_done.get("Event-Sequence") or 0) > int(short_done.get("Event-Sequence") or 0)


def test_a_caller_hanging_up_mid_playback_raises_channel_gone(lab: SwitchLab) -> None:
    def ivr(channel: OutboundChannel) -> dict[str, Any]:
        channel.myevents()
        channel.linger()
        outcome: dict[str, Any] = {}
        with pytest.raises(ChannelGone, match="hung up"):
            channel.execute("playback", "silence_stream://10000", timeout=5)
        started = time.monotonic()
        with pytest.raises(ChannelGone):
            channel.execute("playback", "silence_stream://200", timeout=5)
        outcome["refused_in"] = time.monotonic() - started
        outcome["cause"] = channel.wait_hangup(1).get("Hangup-Cause")
        outcome["api_while_lingering"] = channel.api("version")
        outcome["open_before_exit"] = channel.connected
        channel.exit()
        outcome["open_after_exit"] = channel.connected
        return outcome

    results = start_ivr(lab, {"3": ivr})
    lab.leg_a(inbound(lab), HANGS_UP, "3")
    outcome = results["3"].get(timeout=10)
    assert outcome["refused_in"] < 0.1  # nothing was sent for a channel already gone
    assert outcome["cause"] == "NORMAL_CLEARING"
    assert outcome["api_while_lingering"].startswith("FreeSWITCH Version")
    assert (outcome["open_before_exit"], outcome["open_after_exit"]) == (True, False)


def test_executing_hangup_returns_the_channel_hangup_event(lab: SwitchLab) -> None:
    def ivr(channel: OutboundChannel) -> Frame:
        channel.myevents()
        hangup = channel.execute("hangup", "USER_BUSY", timeout=5)
        wait_until(lambda: not channel.connected, timeout=1)  # closed at the disconnect notice
        return hangup

    results = start_ivr(lab, {"4": ivr})
    leg = lab.leg_a(inbound(lab), PARKS, "4")
    event = results["4"].get(timeout=5)
    assert (event.get("Event-Name"), event.get("Unique-ID")) == ("CHANNEL_HANGUP", leg)
    assert event.get("Hangup-Cause") == "USER_BUSY"


def test_a_finished_session_is_freed_without_the_garbage_collector(lab: SwitchLab) -> None:
    """No reference cycle between a channel and its connection: thousands of calls must not
    wait for full garbage collections (each a pause of every call) to be freed."""
    channels: list[weakref.ref[OutboundChannel]] = []

    def ivr(channel: OutboundChannel) -> None:
        channels.append(weakref.ref(channel))
        channel.myevents()
        channel.execute("hangup", "NORMAL_CLEARING", timeout=5)

    gc.disable()
    try:
        results = start_ivr(lab, {"5": ivr})
        lab.leg_a(inbound(lab), PARKS, "5")
        results["5"].get(timeout=5)
        wait_until(lambda: channels[0]() is None, timeout=2)
    finally:
        gc.enable()


def test_a_playback_cut_short_by_a_hangup_leaves_no_reference_cycle(lab: SwitchLab) -> None:
    """ChannelGone, raised to the IVR when the caller hangs up, is freed at once."""

    def ivr(channel: OutboundChannel) -> str:
        channel.myevents()
        try:
            channel.execute("playback", "silence_stream://10000", timeout=5)
        except ChannelGone as gone:
            return str(gone)
        return "played"

    with cycles_of(ChannelGone) as left:
        results = start_ivr(lab, {"7": ivr})
        lab.leg_a(inbound(lab), HANGS_UP, "7")
        assert "hung up" in results["7"].get(timeout=5)
    assert left == []


def test_a_failing_session_does_not_affect_another(
    lab: SwitchLab, caplog: pytest.LogCaptureFixture
) -> None:
    def failing(channel: OutboundChannel) -> None:
        channel.myevents()
        raise RuntimeError("bug in the IVR")

    def working(channel: OutboundChannel) -> str | None:
        channel.myevents()
        gevent.sleep(0.2)  # the other session fails meanwhile
        return channel.execute("playback", "silence_stream://300", timeout=5).get(
            "Application-Response"
        )

    results = start_ivr(lab, {"5": failing, "6": working})
    conn = inbound(lab)
    failed_leg = lab.leg_a(conn, PARKS, "5")
    lab.leg_a(conn, PARKS, "6")
    assert results["6"].get(timeout=5) == "FILE PLAYED"
    with pytest.raises(RuntimeError):
        results["5"].get(timeout=5)
    wait_until(lambda: lab.server.failed == 1)
    failure = next(r for r in caplog.records if r.levelno == logging.ERROR)
    assert f"outbound handler failed for channel {failed_leg}" in failure.getMessage()
    assert "bug in the IVR" in caplog.text


def test_peers_outside_the_allow_list_are_dropped(caplog: pytest.LogCaptureFixture) -> None:
    lab = SwitchLab(allow=["192.0.2.0/24", "10.0.0.0/8"])
    try:
        handled: list[OutboundChannel] = []
        lab.handler = handled.append
        seen: list[Frame] = []
        leg = lab.leg_a(inbound(lab, seen), PARKS, "7")
        wait_until(lambda: any(e.get("Unique-ID") == leg for e in seen))  # its hangup
        assert handled == []
        assert lab.server.rejected == 1
        assert "dropped connection from 127.0.0.1:" in caplog.text
        assert "not in the allow-list" in caplog.text
    finally:
        lab.close()


def test_graceful_stop_lets_a_live_session_finish(lab: SwitchLab) -> None:
    playing = gevent.event.Event()

    def ivr(channel: OutboundChannel) -> str | None:
        channel.myevents()
        playback = channel.execute_async("playback", "silence_stream://800")
        playing.set()
        return playback.wait(5).get("Application-Response")

    results = start_ivr(lab, {"8": ivr})
    lab.leg_a(inbound(lab), PARKS, "8")
    assert playing.wait(5)
    started = time.monotonic()
    stopper = gevent.spawn(lab.server.stop, 5)
    gevent.sleep(0.1)
    with pytest.raises(ConnectionRefusedError):
        gevent.socket.create_connection(("127.0.0.1", lab.server.port), timeout=1)
    stopper.join(6)
    assert results["8"].get(timeout=0) == "FILE PLAYED"
    assert time.monotonic() - started < 4  # it waited for the session, not for the timeout
    assert lab.server.live_sessions == 0


def test_stop_ends_sessions_still_live_after_its_timeout(
    lab: SwitchLab, caplog: pytest.LogCaptureFixture
) -> None:
    playing = gevent.event.Event()
    ended: list[str] = []

    def ivr(channel: OutboundChannel) -> None:
        channel.myevents()
        try:
            playing.set()
            channel.execute("playback", "silence_stream://30000", timeout=60)
        finally:
            ended.append(channel.uuid)

    start_ivr(lab, {"9": ivr})
    leg = lab.leg_a(inbound(lab), PARKS, "9")
    assert playing.wait(5)
    started = time.monotonic()
    lab.server.stop(timeout=0.3)
    assert time.monotonic() - started < 2
    assert ended == [leg]
    assert lab.server.live_sessions == 0
    assert "1 sessions still live after 0.3 s: killed" in caplog.text
